"""What the worker's jobs answer the window: plain data built on the worker thread (photos as QImage, maps as colour-map indices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtGui import QImage

from ..core.kinds import DEFAULT_LAYER, DEFAULT_METHOD, Backend, Layer, Method, Precision, RuntimeName

if TYPE_CHECKING:
    from ..core.prediction import TopClass


# ---- the model ----
@dataclass
class ModelInfo:
    device: str  # "CPU · 2 threads · OpenVINO", "CUDA · <GPU name> · PyTorch"
    device_type: str
    weights: str  # a full description of the weights in use
    weights_short: str
    num_classes: int
    cuda_available: bool
    load_ms: float
    versions: dict[str, str] = field(default_factory=dict)
    note: str | None = None  # e.g. the device asked for was not available
    model_key: str | None = None  # which model answers (core.answers.key_of): answers of another are marked
    backend: RuntimeName = "torch"  # the runtime in use
    backend_choice: Backend = "auto"  # the CPU runtime it was loaded with (another, if the one asked for cannot run here)
    precision: Precision = "fp32"
    bf16_native: bool = False  # whether this CPU computes bfloat16 natively (the bf16 option is offered)


@dataclass
class ModelMissing:
    """A load found no weights (or none it could use, with no model yet): photos wait until there are some."""

    reason: str


# ---- photos ----
@dataclass
class PhotoResult:
    item_id: int
    ok: bool
    name: str
    error: str | None = None
    top: list[TopClass] = field(default_factory=list)  # the core's own TopClass objects
    maps: np.ndarray | None = None  # (k, MAP_SIDE, MAP_SIDE) uint8 colour-map indices
    cams: np.ndarray | None = None  # (k, h, w) float32 in [0, 1]: the same maps at the layer's own size (faithfulness)
    crop: tuple[float, float, float, float] | None = None  # (left, top, right, bottom), fractions of width and height
    display: QImage | None = None  # the photo at view size (at most DISPLAY_MAX_SIDE)
    thumb: QImage | None = None
    ms: float = 0.0
    device: str = ""
    layer: Layer = DEFAULT_LAYER
    method: Method = DEFAULT_METHOD  # the CAM method of ``maps``
    note: str | None = None
    record: dict[str, Any] = field(default_factory=dict)  # the core's output record (what `classify` prints)
    encoded: bytes | None = None  # for image data without a file: the PNG the worker made of it
    size: tuple[int, int] | None = None  # (width, height) of the photo itself, as oriented
    cached: bool = False  # answered from the results library (no forward pass)
    model: str | None = None  # the key of the model that answered (ModelInfo.model_key); None: not known

    @classmethod
    def failure(cls, item_id: int, name: str, message: str) -> PhotoResult:
        """A photo whose job failed: listed as not classified, with the reason (as `classify` records it)."""
        return cls(item_id, False, name, error=message, record={"path": name, "ok": False, "error": message})


@dataclass
class ScoreCamMaps:
    """Score-CAM maps of one photo's classes, as PhotoResult.maps are sent."""

    item_id: int
    layer: Layer
    classes: tuple[int, ...]
    maps: np.ndarray  # (k, MAP_SIDE, MAP_SIDE) uint8 colour-map indices, one per class of ``classes``
    cams: np.ndarray  # (k, h, w) float32 in [0, 1], at the layer's own size


# ---- teaching ----
@dataclass
class Misclassified:
    """A validation photo the new model got wrong, with the maps of its true and its predicted class."""

    path: str
    true: str
    predicted: str
    prob: float
    display: QImage | None = None  # the photo at view size; None when it was not explained
    maps: np.ndarray | None = None  # (2, MAP_SIDE, MAP_SIDE) colour-map indices: true class, predicted class
    crop: tuple[float, float, float, float] | None = None  # fractions of the photo, as PhotoResult.crop


@dataclass
class TrainOutcome:
    model_path: str  # the new model, written to the user's cache; "Use" loads it, "Save…" copies it
    summary: dict[str, Any]  # what `resnext-gui train` prints
    labels: list[str]
    mistakes: list[Misclassified]


# ---- the results library ----
@dataclass
class LibraryInfo:
    """What the library holds now; ``available`` is False when there is none (not kept, or it could not open)."""

    path: str = ""
    count: int = 0
    size_bytes: int = 0
    available: bool = False
    changed: int = 0  # entries a Forget or Clear removed
    note: str | None = None  # something the library has to say (set aside, kept in memory only): said once


@dataclass
class Restored:
    """Last time's gallery: the files still there, in order, and those that are gone."""

    paths: list[str]
    missing: list[str]
    info: LibraryInfo  # its note: a damaged library set aside, or one that could not be opened


@dataclass
class LibraryMatch:
    """One photo the library search found."""

    path: str
    label: str
    prob: float
    classified_at: float
    exists: bool
    thumb: QImage | None = None


@dataclass
class KeywordPhoto:
    item_id: int
    path: str | None  # None: image data without a file
    name: str
    top: list[dict[str, Any]]  # [{"rank", "index", "label", "prob"}]


@dataclass
class KeywordsOutcome:
    written: list[tuple[int, str]] = field(default_factory=list)  # (photo, the sidecar written)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (photo, its name, why)
