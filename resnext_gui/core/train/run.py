"""Teaching from start to finish: scan, features, split, fit, validate; the result and its provenance; the maps of a photo under the new head."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..files import cache_root
from ..records import valid_text
from .data import FEW_PHOTOS, DataSet, TrainingError, check_counts, scan
from .features import FEATURE_DIM, FeatureCache, Progress, backbone_sha256, duplicates_across_classes, extract
from .fit import L2, fit_head, predict, split
from .metrics import metrics

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..preprocess import Prepared

# ---- the whole run ----
@dataclass
class Mistake:
    path: Path
    true: int
    predicted: int
    prob: float  # of the predicted class


@dataclass
class TrainResult:
    labels: list[str]
    weight: np.ndarray  # (C, 2048)
    bias: np.ndarray  # (C,)
    counts: list[int]  # photos used per class
    validation: dict[str, Any]  # metrics() of the validation photos ({} when there are none)
    train_accuracy: float
    mistakes: list[Mistake]
    warnings: list[str]
    unreadable: list[tuple[Path, str]]
    provenance: dict[str, Any]
    cache_hits: int = 0
    computed: int = 0
    extract_ms: float = 0.0
    fit_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON summary the CLI prints."""
        return {
            "classes": self.labels,
            "counts": dict(zip(self.labels, self.counts, strict=True)),
            "validation": self.validation or None,
            "train_accuracy": self.train_accuracy,
            "misclassified": [
                {"path": valid_text(str(m.path)), "true": self.labels[m.true], "predicted": self.labels[m.predicted],
                 "prob": round(m.prob, 4)} for m in self.mistakes
            ],
            "unreadable": [{"path": valid_text(str(p)), "error": e} for p, e in self.unreadable],
            "warnings": self.warnings,
            "features": {"cached": self.cache_hits, "computed": self.computed, "ms": round(self.extract_ms, 1)},
            "fit_ms": round(self.fit_ms, 1),
        }


def require_real_weights(clf: Classifier) -> None:
    """Features of an untrained network are meaningless: refuse to teach without a weights file.

    The Classifier never runs an untrained network: it is built only from a checkpoint found by
    ``find_weights`` (the user's ``--weights``, the environment, the bundled file or the torch hub cache), and
    raises NoWeightsError when there is none. So "real weights" here means "a checkpoint the user has", and
    any such file is taken as the user's word (it may be official, a fine-tune, or, in this project's own
    tests, a seeded stand-in). What can still be told from the network itself is refused: a backbone whose
    features are constant (all-zero weights, say) can't tell photos apart.
    """
    if not Path(clf.source.path).is_file():
        from ..weights import no_weights_message

        raise TrainingError("teaching needs real backbone weights; features of an untrained network are "
                            "meaningless.\n" + no_weights_message())


def _check_features_vary(feats: np.ndarray) -> None:
    if len(feats) >= 2 and float(np.ptp(feats[:, 0], axis=0).max()) == 0.0:
        raise TrainingError("the backbone gives the same features for every photo, so it can't tell them apart: "
                            "are these real weights? Use the official ImageNet weights (resnext-gui weights fetch)")


def train(clf: Classifier, data_dir: str | os.PathLike[str] | list[str] | DataSet, val_fraction: float = 0.2, seed: int = 0,
          cache_dir: str | os.PathLike[str] | None = None, progress: Progress | None = None,
          cancelled: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None,
          l2: float = L2) -> TrainResult:
    """Scan ``data_dir`` (or take the DataSet ``scan`` made of it), extract (or reuse) features with ``clf``'s
    frozen backbone, fit and validate a head."""
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingError(f"the validation fraction must be at least 0 and below 1 (got {val_fraction})")
    require_real_weights(clf)
    say = log or (lambda _m: None)
    data = data_dir if isinstance(data_dir, DataSet) else scan(data_dir)
    for w in data.warnings:
        say(f"warning: {w}")
    say(f"{len(data.files)} photos in {len(data.labels)} classes; computing features…")
    backbone = backbone_sha256(clf)
    cache = FeatureCache(cache_dir if cache_dir is not None else cache_root(), backbone)
    feats = extract(clf, data, cache, progress, cancelled)
    warnings = list(data.warnings)
    if feats.unreadable:
        warnings.append(f"{len(feats.unreadable)} unreadable photo{'s' if len(feats.unreadable) > 1 else ''} skipped")
    dups = duplicates_across_classes(data, feats)
    for w in dups + warnings[len(data.warnings):]:
        say(f"warning: {w}")
    warnings += dups
    counts = np.bincount(feats.labels, minlength=len(data.labels)).tolist()
    warnings = [w for w in warnings if not w.startswith(f"classes with fewer than {FEW_PHOTOS}")]  # recounted:
    check_counts(data.labels, counts, warnings)  # without unreadable photos and repeats
    _check_features_vary(feats.feats)
    train_idx, val_idx = split(feats.labels, val_fraction, seed)
    start = time.perf_counter()
    x = _float64_rows(feats.feats, train_idx).reshape(-1, FEATURE_DIM)  # each photo and its mirror image
    y = np.repeat(feats.labels[train_idx], 2)
    weight, bias = fit_head(x, y, len(data.labels), l2, overwrite=True)
    del x
    fit_ms = (time.perf_counter() - start) * 1000.0
    train_pred, _ = predict(weight, bias, feats.feats[train_idx, 0])
    train_acc = round(float((train_pred == feats.labels[train_idx]).mean()), 4) if len(train_idx) else 0.0
    validation: dict[str, Any] = {}
    mistakes: list[Mistake] = []
    if len(val_idx):
        pred, prob = predict(weight, bias, feats.feats[val_idx, 0])
        validation = metrics(feats.labels[val_idx], pred, data.labels)
        for i, p, pr in zip(val_idx.tolist(), pred.tolist(), prob.tolist(), strict=True):
            if p != feats.labels[i]:
                mistakes.append(Mistake(feats.paths[i], int(feats.labels[i]), int(p), float(pr)))
    source = clf.source
    provenance = {
        "base_weights": {
            "file": valid_text(Path(source.path).name),
            "sha256": clf.checkpoint.sha256,  # of the bytes the backbone was built from
            "variant": source.variant.name if source.variant is not None else None,
        },
        "backbone_sha256": backbone,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "classes": dict(zip(data.labels, counts, strict=True)),
        "validation": {k: validation[k] for k in ("accuracy", "photos", "per_class", "confused")} if validation else None,
        "val_fraction": val_fraction,
        "seed": seed,
        "head": f"multinomial logistic regression, L2 {l2}, L-BFGS, horizontal-flip features",
        "preprocessing": {"resize": clf.resize, "crop": clf.crop_size},
    }
    return TrainResult(data.labels, weight, bias, counts, validation, train_acc, mistakes, warnings,
                       feats.unreadable, provenance, feats.cache_hits, feats.computed, feats.ms, fit_ms)


def _float64_rows(feats: np.ndarray, rows: np.ndarray, step: int = 256) -> np.ndarray:
    """``feats[rows]`` as float64, copied a few rows at a time (no float32 copy of them all on the way)."""
    out = np.empty((len(rows), *feats.shape[1:]), np.float64)
    for i in range(0, len(rows), step):
        out[i:i + step] = feats[rows[i:i + step]]
    return out



def explain(clf: Classifier, result: TrainResult, path: str | os.PathLike[str], classes: list[int]) -> tuple[Prepared, np.ndarray]:
    """(prepared photo, (len(classes), 7, 7) Grad-CAMs in [0, 1]) of the new head for the given classes."""
    from .. import cam as cam_mod

    item = clf.prepare(path)
    feats = clf.features([item])  # (1, 2048, 7, 7)
    maps = cam_mod.last_stage_cams(feats, result.weight, np.array([classes], dtype=np.int64))
    return item, maps[0]
