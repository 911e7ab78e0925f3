"""The Qt bridge: one QThread owns the classifier and runs jobs in three lanes; each job answers its caller once.

``runner`` (the thread, its queue's use and the ``Worker`` facade; it imports no job), ``queue`` (the Job contract
and the lanes), ``results`` (what jobs answer), ``images`` (QImage and PNG helpers), ``keeper`` (the results library
on the worker thread), ``scanner`` (folders listed on a thread of their own) and ``jobs/`` by subject: photo,
model, teach, library. A caller sends ``worker.submit(job, on_done, on_fail)``: the job and its answer are read
in one place.
"""
