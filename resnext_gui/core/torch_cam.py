"""Grad-CAM of any stage with PyTorch's autograd (the torch backend's earlier layers)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def normalize_maps(raw: torch.Tensor) -> torch.Tensor:
    """ReLU, then min-max scale each map (over its last two dims) to [0, 1]. A flat map becomes all zeros.

    The same as ``cam.normalize_maps``, on tensors of any device.
    """
    maps = torch.relu(raw)
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (maps - lo) / safe, torch.zeros_like(maps))


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
