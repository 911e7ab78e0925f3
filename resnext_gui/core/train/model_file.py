"""A taught model as a file: the backbone with the new head and its labels in safetensors, written atomically; where the window keeps it."""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..files import atomic_file, cache_root, file_kind, open_regular
from ..records import valid_text
from .data import TrainingError
from .features import backbone_state

if TYPE_CHECKING:
    from ..classifier import Classifier
    from .run import TrainResult

MODEL_SUFFIX = ".safetensors"  # the format of the model files teaching writes
KEEP_MODELS = 5  # models taught in the window and not saved elsewhere: the newest few are kept in the cache


def checkpoint_state(clf: Classifier, result: TrainResult) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The backbone's tensors with the new ``fc``, and the file's metadata: the labels and the provenance (JSON)."""
    # np.asarray, not np.ascontiguousarray: that makes the 0-d counters (num_batches_tracked) 1-d
    state = {k: np.asarray(v, order="C") for k, v in backbone_state(clf).items() if not k.startswith("fc.")}
    state["fc.weight"] = np.ascontiguousarray(result.weight, dtype=np.float32)
    state["fc.bias"] = np.ascontiguousarray(result.bias, dtype=np.float32)
    metadata = {
        "labels": json.dumps(list(result.labels), ensure_ascii=False),
        "provenance": json.dumps(_plain(result.provenance), ensure_ascii=False),
    }
    return state, metadata


def _plain(value: Any) -> Any:
    """Only str, int, float, bool, None, lists and dicts: what JSON writes and reads back as it was."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def model_path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a model can't be written to ``path`` (a folder, a pipe or device such as /dev/null, a name not ending
    in .safetensors); None if it can."""
    target = Path(path)
    if target.is_dir():
        return f"{target} is a folder; give a file name for the model (e.g. {target / ('model' + MODEL_SUFFIX)})"
    try:
        mode = os.stat(target).st_mode  # through a link: a link to /dev/null is refused as /dev/null is
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        return (f"{valid_text(str(target))} is {file_kind(mode)}, not a regular file; a model is saved only as an "
                "ordinary file: give a new file name")
    if target.suffix.lower() != MODEL_SUFFIX:
        return (f"{target.name}: models are saved in the safetensors format; give a name ending in {MODEL_SUFFIX} "
                f"(e.g. {target.with_suffix(MODEL_SUFFIX).name})")
    return None


def save(clf: Classifier, result: TrainResult, out: str | os.PathLike[str]) -> Path:
    """Write the model (``.safetensors``) atomically: a temporary file in the same folder, renamed into place."""
    from safetensors.numpy import save as safetensors_bytes

    target = Path(out)
    problem = model_path_problem(target)
    if problem:
        raise TrainingError(problem)
    state, metadata = checkpoint_state(clf, result)
    data = safetensors_bytes(state, metadata=metadata)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target, shared=True, keep_mode=True) as fh:  # an ordinary file; an existing one's mode kept
        fh.write(data)
    return target



def new_model_path(folder: str | os.PathLike[str] | None = None) -> Path:
    """A fresh file name for a model taught in the window (``<cache>/models/taught-<time>.safetensors``); older ones
    pruned (``.pth`` ones too, from versions that wrote those)."""
    models = Path(folder) if folder is not None else cache_root() / "models"
    models.mkdir(parents=True, exist_ok=True)
    old = sorted([*models.glob(f"taught-*{MODEL_SUFFIX}"), *models.glob("taught-*.pth")])
    for path in old[: max(0, len(old) - (KEEP_MODELS - 1))]:
        try:
            path.unlink()
        except OSError:
            pass
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return models / f"taught-{stamp}{MODEL_SUFFIX}"


def copy_model(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy a saved model to where the user chose, atomically (a temporary file renamed into place)."""
    import shutil

    target = Path(target)
    problem = model_path_problem(target)
    if problem:
        raise TrainingError(problem)
    with atomic_file(target, shared=True, keep_mode=True) as out, open_regular(source) as src:
        shutil.copyfileobj(src, out, 1 << 20)
    return target
