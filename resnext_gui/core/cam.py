"""Grad-CAM: exact closed form for the last stage, autograd for earlier ones; colour maps and overlays."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from .colormap import colorize


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
