"""The Qt-free core: weights, preprocessing, model, Grad-CAM, the Classifier and its output records.

``from resnext_gui.core import Classifier`` works; torch is imported only when the Classifier is first named,
so importing a light module of the core (colours, records) stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Classifier", "Prediction", "TopClass", "cam_overlay"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
