"""Grad-CAM of the last stage in closed form (numpy), colour maps and overlays."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .colormap import colorize

LAYERS = ("layer4", "layer3", "layer2")  # the stages a map can be computed at: 7x7, 14x14, 28x28


def normalize_maps(raw: np.ndarray) -> np.ndarray:
    """ReLU, then min-max scale each map (over its last two dims) to [0, 1]. A flat map becomes all zeros."""
    maps = np.maximum(np.asarray(raw, dtype=np.float32), np.float32(0.0))
    lo = maps.min(axis=(-2, -1), keepdims=True)
    hi = maps.max(axis=(-2, -1), keepdims=True)
    span = hi - lo
    safe = np.where(span > 0, span, np.float32(1.0))
    out: np.ndarray = np.where(span > 0, (maps - lo) / safe, np.float32(0.0)).astype(np.float32)
    return out


def last_stage_cams(feats: np.ndarray, fc_weight: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Grad-CAM of the last stage without a backward pass.

    After the last stage come a global average pool over h*w positions and one linear layer, so
    dy_c/dA_k(i, j) = W[c, k] / (h*w) at every position: the Grad-CAM weights are alpha_k = W[c, k] / (h*w).
    feats: (N, C, h, w); fc_weight: (num_classes, C); classes: (N, k) ints -> maps (N, k, h, w), float32.
    """
    feats = np.asarray(feats, dtype=np.float32)
    n, c, h, w = feats.shape
    alpha = np.asarray(fc_weight, dtype=np.float32)[np.asarray(classes, dtype=np.int64)] / np.float32(h * w)  # (N, k, C)
    raw = np.matmul(alpha, feats.reshape(n, c, h * w))  # (N, k, h*w)
    return normalize_maps(raw.reshape(n, -1, h, w))


def grad_cams(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM of any stage from its activations (N, C, h, w) and each class's gradients there (N, k, C, h, w):
    alpha_k = the gradient's mean over positions, map = ReLU(sum_k alpha_k A_k), min-max scaled."""
    alpha = grads.mean(axis=(3, 4), dtype=np.float32)  # (N, k, C)
    raw = np.einsum("nkc,nchw->nkhw", alpha, acts, optimize=True)
    return normalize_maps(raw.astype(np.float32, copy=False))


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
