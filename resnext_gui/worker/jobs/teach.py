"""Jobs of Teach New Classes: list the class folders, teach (with progress and Cancel), save the new model where the user chose."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from ..images import display_copy, map_indices
from ..queue import Cancellable, Job, JobFailed
from ..results import Misclassified, TrainOutcome

if TYPE_CHECKING:
    from ...core.classifier import Classifier
    from ...core.train import DataSet
    from ..runner import Context

MAX_EXPLAINED = 24  # misclassified photos given heatmaps right after training (one forward pass each)


@dataclass(eq=False)
class TrainJob(Job[TrainOutcome], Cancellable):
    """Teach new classes with the loaded backbone: a folder of class folders, or a list of class folders."""

    data: str | list[str]
    val_fraction: float = 0.2
    seed: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def run(self, ctx: Context) -> TrainOutcome:
        from ...core import train
        from ...core.errors import ResnextGuiError

        clf = cast("Classifier", ctx.require_classifier("No model is loaded: teaching new classes needs the "
                                                        "ImageNet weights (File → Download ImageNet Weights…)."))
        try:
            result = train.train(clf, self.data, self.val_fraction, self.seed, progress=ctx.progress_of(self),
                                 cancelled=self.cancel.is_set)
            path = train.save(clf, result, train.new_model_path())
        except ResnextGuiError as exc:
            raise JobFailed(str(exc)) from exc
        except OSError as exc:
            raise JobFailed(f"the new model could not be written: {exc.strerror or exc}") from exc
        mistakes = []
        for i, m in enumerate(result.mistakes):
            entry = Misclassified(str(m.path), result.labels[m.true], result.labels[m.predicted], m.prob)
            if i < MAX_EXPLAINED:
                try:
                    item, cams = train.explain(clf, result, m.path, [m.true, m.predicted])
                    width, height = item.decoded.original_size
                    left, top, right, bottom = item.crop
                    entry.display = display_copy(item.decoded.image)
                    entry.maps = map_indices(cams)
                    entry.crop = (left / width, top / height, right / width, bottom / height)
                except Exception:  # the photo went away since: it is still listed, without maps
                    pass
            mistakes.append(entry)
        return TrainOutcome(str(path), result.summary(), list(result.labels), mistakes)


@dataclass(eq=False)
class CountJob(Job["DataSet"]):
    """The classes Teach would learn and each one's photos, listed by name (no photo is read) before training."""

    data: str | list[str]

    def run(self, ctx: Context) -> DataSet:
        from ...core import train
        from ...core.errors import ResnextGuiError

        try:
            return train.scan(self.data)
        except ResnextGuiError as exc:  # too few classes or photos, a folder that can't be read
            raise JobFailed(str(exc)) from exc


@dataclass(eq=False)
class SaveModelJob(Job[str]):
    """Copy a taught model (already written to the cache) to where the user chose; answers the target path."""

    source: str
    target: str

    def run(self, ctx: Context) -> str:
        from ...core.train import copy_model

        try:
            copy_model(self.source, self.target)
        except OSError as exc:  # a full or read-only disk, a folder at that name...
            raise JobFailed(f"Could not save {self.target}: {exc.strerror or exc}") from exc
        except Exception as exc:
            raise JobFailed(f"Could not save {self.target}: {exc}") from exc
        return self.target
