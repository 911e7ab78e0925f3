"""Grad-CAM: exact closed form for the last stage, autograd for earlier ones; colour maps and overlays."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image


def normalize_maps(raw: torch.Tensor) -> torch.Tensor:
    """ReLU, then min-max scale each map (over its last two dims) to [0, 1]. A flat map becomes all zeros."""
    maps = torch.relu(raw)
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (maps - lo) / safe, torch.zeros_like(maps))


def last_stage_cams(feats: torch.Tensor, fc_weight: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of the last stage without a backward pass.

    After the last stage come a global average pool over h*w positions and one linear layer, so
    dy_c/dA_k(i, j) = W[c, k] / (h*w) at every position: the Grad-CAM weights are alpha_k = W[c, k] / (h*w).
    feats: (N, C, h, w); fc_weight: (num_classes, C); classes: (N, k) -> maps (N, k, h, w).
    """
    h, w = feats.shape[-2:]
    alpha = fc_weight[classes].to(feats.dtype) / (h * w)  # (N, k, C)
    raw = torch.einsum("nkc,nchw->nkhw", alpha, feats)
    return normalize_maps(raw)


def autograd_cams(
    tail: Callable[[torch.Tensor], torch.Tensor], feats: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM of any stage: gradients of each class logit w.r.t. the stage's activations.

    ``tail`` maps the activations to logits (the rest of the network). One forward of the tail, one
    backward per requested rank. feats: (N, C, h, w); classes: (N, k) -> maps (N, k, h, w).
    """
    with torch.enable_grad():
        acts = feats.detach().requires_grad_(True)
        logits = tail(acts)
        maps = []
        for j in range(classes.shape[1]):
            # Images in a batch are independent in eval mode, so the gradient of the sum is per image.
            score = logits.gather(1, classes[:, j : j + 1]).sum()
            (grad,) = torch.autograd.grad(score, acts, retain_graph=j + 1 < classes.shape[1])
            alpha = grad.mean(dim=(2, 3), keepdim=True)
            maps.append((alpha * acts).sum(dim=1))
        raw = torch.stack(maps, dim=1).detach()
    return normalize_maps(raw)


# ---- colour maps: 256x3 uint8 lookup tables, computed with numpy (no OpenCV or matplotlib) ----

def _jet(x: np.ndarray) -> np.ndarray:
    return np.stack([np.clip(1.5 - np.abs(4 * x - c), 0, 1) for c in (3, 2, 1)], axis=-1)


def _turbo(x: np.ndarray) -> np.ndarray:
    # Polynomial fit of Google's Turbo colour map (Mikhailov, 2019); loosest at its dark-blue end.
    v4 = np.stack([np.ones_like(x), x, x**2, x**3], axis=-1)
    v2 = np.stack([x**4, x**5], axis=-1)
    r = v4 @ [0.13572138, 4.61539260, -42.66032258, 132.13108234] + v2 @ [-152.94239396, 59.28637943]
    g = v4 @ [0.09140261, 2.19418839, 4.84296658, -14.18503333] + v2 @ [4.27729857, 2.82956604]
    b = v4 @ [0.10667330, 12.64194608, -60.58204836, 110.36276771] + v2 @ [-89.90310912, 27.34824973]
    return np.clip(np.stack([r, g, b], axis=-1), 0, 1)


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


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (h, w) float map to ``size`` = (width, height)."""
    img = Image.fromarray(np.ascontiguousarray(cam, dtype=np.float32))
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def overlay(
    photo: np.ndarray,
    cam: np.ndarray,
    rect: tuple[float, float, float, float],
    cmap: str = "jet",
    opacity: float = 0.5,
    heatmap_only: bool = False,
) -> np.ndarray:
    """Blend a map onto ``photo`` (H, W, 3 uint8) inside ``rect`` = (left, top, right, bottom) in photo pixels.

    The map covers exactly the region the model saw (the centre crop), not the whole photo. With
    ``heatmap_only`` the colours are drawn opaque and the rest of the photo is darkened.
    """
    out = np.array(photo, dtype=np.uint8, copy=True)
    H, W = out.shape[:2]
    x0, y0 = max(0, int(round(rect[0]))), max(0, int(round(rect[1])))
    x1, y1 = min(W, int(round(rect[2]))), min(H, int(round(rect[3])))
    if x1 <= x0 or y1 <= y0:
        return out
    heat = colorize(upsample(cam, (x1 - x0, y1 - y0)), cmap).astype(np.float32)
    if heatmap_only:
        out = (out.astype(np.float32) * 0.25).astype(np.uint8)
        out[y0:y1, x0:x1] = heat.astype(np.uint8)
        return out
    a = float(np.clip(opacity, 0.0, 1.0))
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(np.rint((1 - a) * region + a * heat), 0, 255).astype(np.uint8)
    return out
