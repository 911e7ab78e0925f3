"""The 1000 ImageNet class names of the official checkpoints, shipped with the package."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    text = resources.files("resnext_gui.core").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def imagenet_labels() -> list[str]:
    """The ImageNet-1K class names in the official checkpoints' order (torchvision's ``meta["categories"]``)."""
    return list(_names())
