"""The worker's queue (worker/queue.py): what the user asks for first, batch photos only with a model, and batch
photos and background steps in turn, the library's stored answers before anything computed; every kind of job in
its lane."""

import numpy as np

from resnext_gui.worker.jobs.model import DownloadJob, LoadJob
from resnext_gui.worker.jobs.photo import (
    ClassifyJob,
    FaithfulnessJob,
    RecomputeJob,
    SaveImageJob,
    ScoreCamJob,
    StoredAnswersJob,
    ViewJob,
)
from resnext_gui.worker.jobs.teach import SaveModelJob, TrainJob
from resnext_gui.worker.queue import JobQueue


def test_job_queue_serves_interactive_jobs_first_and_batch_only_with_a_model():
    q = JobQueue()
    assert q.put(ClassifyJob(1, "a.jpg")) is True  # the worker needs waking
    assert q.put(ClassifyJob(2, "b.jpg")) is False  # already awake
    q.put(ViewJob(7, "g.jpg"))
    q.put(LoadJob("w.pth"))
    q.put(RecomputeJob(8, "h.jpg", "layer3"), first=True)
    assert [type(q.take(batch_allowed=False)).__name__ for _ in range(3)] == ["RecomputeJob", "ViewJob", "LoadJob"]
    assert q.take(batch_allowed=False) is None  # batch photos wait for a model
    assert q.wake_if_needed(batch_allowed=True) is True
    assert q.take(batch_allowed=True).item_id == 1
    assert [j.item_id for j in q.drop_batch()] == [2] and q.pending_batch() == 0


def test_batch_photos_and_background_steps_take_turns_after_what_the_user_asks_for():
    q = JobQueue()
    cam = np.zeros((7, 7), np.float32)
    for i in (1, 2, 3):
        q.put(ClassifyJob(i, f"{i}.jpg"))
    q.put(FaithfulnessJob(9, "s.jpg", 0, cam))
    q.put(ViewJob(7, "g.jpg"))
    order = []
    for _ in range(5):
        job = q.take(batch_allowed=True)
        order.append(type(job).__name__)
        if isinstance(job, FaithfulnessJob) and order.count("FaithfulnessJob") < 3:
            q.put(job, first=True)  # one step done, as the runner puts it back
    assert order == ["ViewJob", "FaithfulnessJob", "ClassifyJob", "FaithfulnessJob", "ClassifyJob"]
    assert type(q.take(batch_allowed=True)).__name__ == "FaithfulnessJob"
    assert [type(q.take(batch_allowed=True)).__name__, q.take(batch_allowed=True)] == ["ClassifyJob", None]
    q.put(FaithfulnessJob(9, "s.jpg", 0, cam))
    q.put(ClassifyJob(4, "4.jpg"))
    assert type(q.take(batch_allowed=False)).__name__ == "FaithfulnessJob"  # no model: batch photos wait
    assert q.take(batch_allowed=False) is None


def test_answers_the_library_holds_come_after_what_the_user_asks_for_and_before_anything_computed():
    """A reopened gallery is shown before the score of the photo shown or any batch photo takes the worker,
    waits for a model as batch photos do, and Stop drops it with them."""
    q = JobQueue()
    cam = np.zeros((7, 7), np.float32)
    q.put(ClassifyJob(1, "1.jpg"))
    q.put(FaithfulnessJob(9, "s.jpg", 0, cam))
    q.put(StoredAnswersJob([(2, "2.jpg")]))
    q.put(StoredAnswersJob([(3, "3.jpg")]))
    q.put(ViewJob(7, "g.jpg"))
    assert [type(q.take(batch_allowed=False)).__name__ for _ in range(2)] == ["ViewJob", "FaithfulnessJob"]
    assert q.take(batch_allowed=False) is None and q.pending_batch() == 3  # no model: they wait
    order = [q.take(batch_allowed=True) for _ in range(3)]
    assert [type(j).__name__ for j in order] == ["StoredAnswersJob", "StoredAnswersJob", "ClassifyJob"]
    q.put(StoredAnswersJob([(4, "4.jpg")]))
    q.put(ClassifyJob(5, "5.jpg"))
    assert sorted(type(j).__name__ for j in q.drop_batch()) == ["ClassifyJob", "StoredAnswersJob"]
    assert q.pending_batch() == 0


def test_jobs_of_every_kind_are_interactive_except_batch_photos_and_the_score_of_the_photo_shown():
    assert ClassifyJob.lane == "batch" and FaithfulnessJob.lane == "background" and StoredAnswersJob.lane == "stored"
    assert {kind.lane for kind in (RecomputeJob, ViewJob, LoadJob, DownloadJob, TrainJob, SaveModelJob, SaveImageJob,
                                   ScoreCamJob)} == {"interactive"}
