"""The worker's jobs by subject: photo (classify, recompute, Score-CAM, faithfulness, view, save), model (load, download), teach, library."""
