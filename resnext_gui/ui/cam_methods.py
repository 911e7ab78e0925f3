"""The CAM method beyond the one pass: Score-CAM of the photo shown (progress, Cancel) and the faithfulness
score of the map shown, both computed by the worker while the window goes on; stale answers are dropped."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from ..core.cam import METHOD_NAMES
from ..core.kinds import DEFAULT_METHOD, Layer, Method
from ..core.time_left import TimeLeft, say_time_left
from ..worker.jobs.photo import FaithfulnessJob, ScoreCamJob
from ..worker.results import ScoreCamMaps
from ..worker.runner import WorkerLike
from .gallery import GalleryModel, Photo, Status
from .messages import Messages
from .progress_bar import CancelBar
from .text import sentence

if TYPE_CHECKING:
    from ..core.faithfulness import Faithfulness
    from .controller import BatchController

SCORECAM: Method = "scorecam"
FaithKey = tuple[int, int, Method, Layer]  # photo, class index, method, layer: the map a score is about
COMPUTING = "Faithfulness: computing…"


def scorecam_computing(shown: str) -> str:
    return f"Computing Score-CAM for this photo (progress in the status bar); until then, the {shown} map is shown."
RECOMPUTING = "Computing the new map…"


def method_name(method: Method) -> str:
    return METHOD_NAMES.get(method, method)


def faithfulness_text(f: Faithfulness, label: str) -> tuple[str, str]:
    """The panel's line about a map's faithfulness, and its tooltip with the figures behind it."""
    line = f.sentence(label)
    text = sentence(f"Faithfulness: {line}")
    tip = (f"Deletion: the pixels the map rates highest are hidden step by step; the area under the class's "
           f"probability curve is {f.deletion_auc:.2f} (a random map: {f.random_deletion_auc:.2f}). Lower than "
           f"random means the map found pixels the answer depends on.\n"
           f"Insertion: the same pixels revealed on a blurred photo: {f.insertion_auc:.2f} "
           f"(a random map: {f.random_insertion_auc:.2f}); higher than random is better.\n"
           "The score says whether the map points at what the model used, not whether the model is right.")
    return text, tip


class CamMethods(QObject):
    """The chosen method's slow parts for the photo shown. ``want`` and ``shown`` are called by the presenter
    each time it shows a photo (often for the same one: both ask the worker once per photo and map)."""

    scoreProgress = Signal(int, int)  # Score-CAM of the photo shown: done, total; (0, 0): none running
    faithText = Signal(str, str)  # the panel's line about the map shown ("" when none), and its tooltip

    def __init__(self, photos: GalleryModel, worker: WorkerLike, messages: Messages, batch: BatchController,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.photos, self.worker, self.messages, self.batch = photos, worker, messages, batch
        self.method: Method = DEFAULT_METHOD
        self._score: ScoreCamJob | None = None  # the Score-CAM being computed (for the photo shown)
        self._declined: tuple[int, Layer] | None = None  # (photo, layer): the user cancelled it; asked again once
        self._score_failed: set[tuple[int, Layer]] = set()  # another photo was shown in between, or the method chosen
        self._faith_job: FaithfulnessJob | None = None
        self._faith_key: FaithKey | None = None  # the map whose score is on its way
        self._shown: FaithKey | None = None  # the map the panel shows now
        self._faith: dict[FaithKey, Faithfulness] = {}  # scores that came back for the map shown then
        self._faith_failed: dict[FaithKey, str] = {}  # not asked again (the file went away...): what went wrong
        batch.cleared.connect(self.forget)

    # ---- the method ----
    def set_method(self, method: Method) -> None:
        self.method = method
        self._declined = None
        self._score_failed.clear()  # a new choice: each photo gets one try again
        if method != SCORECAM:
            self.cancel_score(quiet=True)

    # ---- Score-CAM of the photo shown ----
    def score_pending(self, photo: Photo) -> bool:
        job = self._score
        return job is not None and job.item_id == photo.item_id and not job.cancel.is_set()

    def want(self, photo: Photo | None) -> None:
        """With Score-CAM chosen, the photo shown gets its Score-CAM maps (once); any other photo's stops."""
        job = self._score
        if job is not None and (photo is None or job.item_id != photo.item_id):
            self.cancel_score(quiet=True)  # superseded: computed for the photo shown only
        if photo is None or self._declined is not None and self._declined[0] != photo.item_id:
            self._declined = None  # the user moved on: showing the photo again asks again
        if self.method != SCORECAM or photo is None or photo.status is not Status.DONE or photo.source is None:
            return
        res, layer = photo.result, self.batch.layer
        if (res is None or not res.ok or not res.top or (res.method == SCORECAM and res.layer == layer)
                or self.batch.recompute_pending(photo) or self._declined == (photo.item_id, layer)
                or (photo.item_id, layer) in self._score_failed):
            return
        if self.score_pending(photo) and self._score is not None and self._score.layer == layer:
            return
        self.cancel_score(quiet=True)
        job = self._score = ScoreCamJob(photo.item_id, photo.source, layer, tuple(t.index for t in res.top))
        self.worker.submit(job, partial(self._on_score, job), partial(self._on_score_failed, job),
                           partial(self._on_score_progress, job))
        self.scoreProgress.emit(0, 1)

    def cancel_score(self, quiet: bool = False) -> None:
        """Stop the Score-CAM being computed (Cancel, Esc); ``quiet``: superseded, nothing to tell."""
        job, self._score = self._score, None
        if job is None:
            return
        self.worker.cancel(job)
        self.scoreProgress.emit(0, 0)
        if not quiet:
            self._declined = (job.item_id, job.layer)
            photo = self.photos.get(job.item_id)
            if photo is not None and photo.result is not None:
                self.photos.set_note(photo, f"Score-CAM cancelled: showing {self._shown_map(photo)}. "
                                            "Show the photo again to compute it.")
                self.batch.updated.emit(photo)

    def _shown_map(self, photo: Photo) -> str:
        res = photo.result
        return method_name(res.method) if res is not None else "the one-pass map"

    def _on_score_progress(self, job: ScoreCamJob, done: int, total: int) -> None:
        if job is self._score:
            self.scoreProgress.emit(done, max(1, total))

    def _on_score(self, job: ScoreCamJob, maps: ScoreCamMaps) -> None:
        if job is self._score:
            self._score = None
            self.scoreProgress.emit(0, 0)
        photo = self.photos.get(job.item_id)
        res = photo.result if photo is not None else None
        if (photo is None or res is None or photo.status is not Status.DONE or self.method != SCORECAM
                or job.layer != self.batch.layer or tuple(t.index for t in res.top) != job.classes):
            return  # the photo, its answer or the choice changed meanwhile: these maps are of nothing shown
        record = {**res.record, "cam_method": SCORECAM}  # as classify --cam-method scorecam records it
        record.pop("faithfulness", None)  # the figures were of the map replaced
        new = dataclasses.replace(res, maps=maps.maps, cams=maps.cams, method=SCORECAM, layer=job.layer, display=None, thumb=None,
                                  encoded=None, record=record)
        if self.photos.set_recomputed(new) is not None:
            self.batch.updated.emit(photo)

    def _on_score_failed(self, job: ScoreCamJob, message: str) -> None:
        if job is self._score:
            self._score = None
            self.scoreProgress.emit(0, 0)
        if job.cancel.is_set():
            return  # cancelled: said when it was
        self._score_failed.add((job.item_id, job.layer))  # not asked again: the note says which map is shown
        photo = self.photos.get(job.item_id)
        if photo is not None and photo.result is not None:
            self.photos.set_note(photo, f"Could not compute Score-CAM: {sentence(message)} "
                                        f"Showing {self._shown_map(photo)}.")
            self.batch.updated.emit(photo)

    # ---- the faithfulness score of the map shown ----
    def shown(self, photo: Photo | None, rank: int) -> None:
        """The panel shows ``photo``'s map of class ``rank`` (None: no map): its score, or it is asked for."""
        res = photo.result if photo is not None else None
        if (photo is None or res is None or photo.status is not Status.DONE or not res.ok or res.maps is None
                or res.cams is None or not 0 < rank <= min(len(res.top), len(res.maps), len(res.cams))
                or photo.source is None
                or self.batch.layer_pending(photo) or self.score_pending(photo)):
            self._shown = None  # nothing, or a map about to be replaced: its score would be of the wrong one
            self._cancel_faith()
            if photo is not None and self.score_pending(photo):
                self.faithText.emit(scorecam_computing(self._shown_map(photo)), "")
            elif photo is not None and self.batch.layer_pending(photo):
                self.faithText.emit(RECOMPUTING, "")
            else:
                self.faithText.emit("", "")
            return
        top = res.top[rank - 1]
        key: FaithKey = (photo.item_id, top.index, res.method, res.layer)
        self._shown = key
        known = self._faith.get(key)
        if known is not None:
            self._cancel_faith()
            self.faithText.emit(*faithfulness_text(known, top.label))
            return
        if key in self._faith_failed:
            self._cancel_faith()
            self.faithText.emit(self._faith_failed[key], "")
            return
        if self._faith_key != key:
            self._cancel_faith()
            # the map at the layer's own size, as classify scores it (a map read back from the library is the same
            # map: the figures are the same); never the view's upsampled copy, whose random map would be another
            cam = res.cams[rank - 1]
            job = self._faith_job = FaithfulnessJob(photo.item_id, photo.source, top.index, cam, res.method, res.layer)
            self.worker.submit(job, partial(self._on_faith, job), partial(self._on_faith_failed, job))
            self._faith_key = key
        self.faithText.emit(COMPUTING, "Computed in the background; the window does not wait for it.")

    def _cancel_faith(self) -> None:
        if self._faith_job is not None:
            self.worker.cancel(self._faith_job)
        self._faith_job, self._faith_key = None, None

    @staticmethod
    def _key_of(job: FaithfulnessJob) -> FaithKey:
        return (job.item_id, job.class_index, job.method, job.layer)

    def _on_faith(self, job: FaithfulnessJob, figures: Faithfulness) -> None:
        if job is self._faith_job:
            self._faith_job, self._faith_key = None, None
        key = self._key_of(job)
        photo = self.photos.get(job.item_id)
        res = photo.result if photo is not None else None
        if key != self._shown or photo is None or res is None:
            return  # stale: another photo, class or map is shown by now
        self._faith[key] = figures
        label = next((t.label for t in res.top if t.index == job.class_index), "")
        if res.top and res.top[0].index == job.class_index:  # Export carries the top class's figures, as classify does
            res.record["faithfulness"] = {"method": job.method, "layer": job.layer, "label": label,
                                          **figures.to_record(), "sentence": figures.sentence(label)}
        self.faithText.emit(*faithfulness_text(figures, label))

    def _on_faith_failed(self, job: FaithfulnessJob, message: str) -> None:
        if job is self._faith_job:
            self._faith_job, self._faith_key = None, None
        if job.cancel.is_set():
            return
        key = self._key_of(job)
        self._faith_failed[key] = text = sentence(f"The faithfulness score could not be computed: {message}")
        if key == self._shown:
            self.faithText.emit(text, "")

    def forget(self) -> None:
        """Clear, or another model: nothing computed before is about the photos shown from now."""
        self.cancel_score(quiet=True)
        self._cancel_faith()
        self._faith.clear()
        self._faith_failed.clear()
        self._score_failed.clear()
        self._declined, self._shown = None, None


class ScoreCamBar(CancelBar):
    """The status bar's Score-CAM progress with its Cancel button and the time left (at the rate of the passes
    so far, on ``clock``); hidden while none runs."""

    def __init__(self, parent: QWidget | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("Score-CAM", "%p%",
                         "Stop computing Score-CAM for this photo (Esc); its one-pass map stays", parent)
        self.time_left = TimeLeft(clock)

    def show_progress(self, done: int, total: int) -> None:
        """(0, n): a Score-CAM begins; (done, total) as its passes go; (0, 0): none runs."""
        if not done:  # begun (or ended): the time left is measured afresh from its first pass
            self.time_left.reset()
            left = ""
        else:
            left = say_time_left(self.time_left.update(done, total))
        self.label.setText(f"Score-CAM · {left}" if left else "Score-CAM")
        if total:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        self.setVisible(bool(total))
