"""Colour maps for heatmaps as 256x3 uint8 lookup tables, computed with numpy alone (no torch, OpenCV or matplotlib)."""

from __future__ import annotations

import numpy as np


def _jet(x: np.ndarray) -> np.ndarray:
    return np.stack([np.clip(1.5 - np.abs(4 * x - c), 0, 1) for c in (3, 2, 1)], axis=-1)


def _turbo(x: np.ndarray) -> np.ndarray:
    # Polynomial fit of Google's Turbo colour map (Mikhailov, 2019); loosest at its dark-blue end.
    v4 = np.stack([np.ones_like(x), x, x**2, x**3], axis=-1)
    v2 = np.stack([x**4, x**5], axis=-1)
    r = v4 @ [0.13572138, 4.61539260, -42.66032258, 132.13108234] + v2 @ [-152.94239396, 59.28637943]
    g = v4 @ [0.09140261, 2.19418839, 4.84296658, -14.18503333] + v2 @ [4.27729857, 2.82956604]
    b = v4 @ [0.10667330, 12.64194608, -60.58204836, 110.36276771] + v2 @ [-89.90310912, 27.34824973]
    out: np.ndarray = np.clip(np.stack([r, g, b], axis=-1), 0, 1)
    return out


def _hot(x: np.ndarray) -> np.ndarray:
    return np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], axis=-1)


def _gray(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x, x], axis=-1)


_COLORMAP_FUNCS = {"jet": _jet, "turbo": _turbo, "hot": _hot, "gray": _gray}
COLORMAPS = tuple(_COLORMAP_FUNCS)
_LUTS: dict[str, np.ndarray] = {}


def colormap(name: str) -> np.ndarray:
    """The (256, 3) uint8 lookup table of a colour map."""
    if name not in _COLORMAP_FUNCS:
        raise ValueError(f"unknown colour map {name!r}: choose one of {', '.join(COLORMAPS)}")
    if name not in _LUTS:
        x = np.linspace(0.0, 1.0, 256)
        _LUTS[name] = np.rint(_COLORMAP_FUNCS[name](x) * 255).astype(np.uint8)
    return _LUTS[name]


def colorize(cam: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """A map in [0, 1] of shape (h, w) -> (h, w, 3) uint8 colours."""
    idx = np.clip(np.rint(np.asarray(cam, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    return colormap(cmap)[idx]
