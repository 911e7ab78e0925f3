"""Class activation maps (Grad-CAM and its relatives, Eigen-CAM, Score-CAM's arithmetic) in numpy, colour maps and overlays.

Every method is defined as pytorch-grad-cam 1.5.7 computes it for a classifier's logit, at the stage's own
resolution: the method's raw map, then ReLU, then min-max scaling to [0, 1] per map.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image

from .colormap import colorize
from .kinds import DEFAULT_METHOD, LAYERS, METHODS, Layer, Method

__all__ = ["DEFAULT_METHOD", "LAYERS", "METHODS", "Layer", "Method"]  # and the functions below
METHOD_NAMES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM", "gradcam++": "Grad-CAM++", "xgradcam": "XGrad-CAM",
                "layercam": "Layer-CAM", "eigencam": "Eigen-CAM", "scorecam": "Score-CAM"}
ONE_PASS = tuple(m for m in METHODS if m != "scorecam")  # from the one forward pass (+ the stage's gradients)
# Score-CAM runs one forward pass per activation map of the stage: 2048 at layer4, 1024 at layer3, 512 at layer2.
# Every stage is offered: with progress and Cancel it is the user's choice to wait (see README).
SCORECAM_LAYERS = LAYERS
STAGE_CHANNELS = {"layer4": 2048, "layer3": 1024, "layer2": 512}
_GRADCAM_PP_EPS = 1e-6  # pytorch-grad-cam's constants, so the maps agree with it where a denominator is tiny
_XGRADCAM_EPS = 1e-7
_SCORECAM_EPS = 1e-8


def method_layers(method: Method) -> tuple[Layer, ...]:
    """The stages ``method`` is offered at."""
    check_method(method)
    return SCORECAM_LAYERS if method == "scorecam" else LAYERS


def check_method(method: Method, layer: Layer | None = None) -> None:
    """A ValueError with a message for the user when ``method`` (at ``layer``) is not one the app computes."""
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}: choose one of {', '.join(METHODS)}")
    if layer is not None:
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")
        offered = SCORECAM_LAYERS if method == "scorecam" else LAYERS
        if layer not in offered:
            raise ValueError(f"{METHOD_NAMES[method]} is offered at {', '.join(offered)}, not at {layer}")


def normalize_maps(raw: np.ndarray) -> np.ndarray:
    """ReLU, then min-max scale each map (over its last two dims) to [0, 1]. A flat map becomes all zeros."""
    maps = np.maximum(np.asarray(raw, dtype=np.float32), np.float32(0.0))
    lo = maps.min(axis=(-2, -1), keepdims=True)
    hi = maps.max(axis=(-2, -1), keepdims=True)
    span = hi - lo
    safe = np.where(span > 0, span, np.float32(1.0))
    out: np.ndarray = np.where(span > 0, (maps - lo) / safe, np.float32(0.0)).astype(np.float32)
    return out


def _weighted(weights: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """sum_c weights[n, k, c] * acts[n, c]: (N, k, C) x (N, C, h, w) -> (N, k, h, w)."""
    n, c, h, w = acts.shape
    raw = np.matmul(weights.astype(np.float32, copy=False), acts.reshape(n, c, h * w))
    out: np.ndarray = raw.reshape(n, -1, h, w)
    return out


def _gradcam_pp_weights(grads: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Grad-CAM++'s alpha (eq. 19 of Chattopadhyay et al.) with the higher derivatives taken as powers of the
    gradient, as pytorch-grad-cam does: a = g^2 / (2 g^2 + sum(A) g^3 + eps), zero where g = 0, then
    weight = sum over positions of ReLU(g) * a. ``grads`` (N, k, C, ...positions), ``sums`` broadcastable."""
    g2 = grads * grads
    g3 = g2 * grads
    aij = g2 / (np.float32(2.0) * g2 + sums * g3 + np.float32(_GRADCAM_PP_EPS))
    aij = np.where(grads != 0, aij, np.float32(0.0))
    out: np.ndarray = (np.maximum(grads, np.float32(0.0)) * aij).astype(np.float32)
    return out


def eigen_cams(acts: np.ndarray) -> np.ndarray:
    """Eigen-CAM, one map per photo (N, h, w), not yet scaled: the activations (positions x channels), centred
    per channel, projected on their first right singular vector. The sign is the SVD's own (numpy's LAPACK),
    as in pytorch-grad-cam: it is not corrected, and the ReLU that follows keeps the positive side."""
    acts = np.nan_to_num(np.asarray(acts, dtype=np.float32))
    n, c, h, w = acts.shape
    out = np.empty((n, h, w), np.float32)
    for i in range(n):
        x = acts[i].reshape(c, h * w).T
        x = x - x.mean(axis=0)
        vt = np.linalg.svd(x, full_matrices=False)[2]  # the same first vector as full_matrices=True, cheaper
        out[i] = (x @ vt[0]).reshape(h, w)
    return out


# ---- each one-pass method's formula, one function per method ----
# Before the last stage: the raw map (N, k, h, w) from a stage's gradients g (N, k, C, h, w) and activations
# acts (N, C, h, w).
StageFormula = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _channel_sums(acts: np.ndarray) -> np.ndarray:
    """Each channel's activations summed over positions, shaped to broadcast against the gradients."""
    sums: np.ndarray = acts.sum(axis=(2, 3), dtype=np.float32)[:, None, :, None, None]
    return sums


def _stage_gradcam(g: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """Grad-CAM: the channels weighted by the gradient's mean over positions."""
    return _weighted(g.mean(axis=(3, 4), dtype=np.float32), acts)


def _stage_hirescam(g: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """HiResCAM: sum over channels of gradient times activation, position by position."""
    out: np.ndarray = (g * acts[:, None]).sum(axis=2, dtype=np.float32)
    return out


def _stage_layercam(g: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """Layer-CAM: sum over channels of the positive gradient times activation, position by position."""
    out: np.ndarray = (np.maximum(g, np.float32(0.0)) * acts[:, None]).sum(axis=2, dtype=np.float32)
    return out


def _stage_xgradcam(g: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """XGrad-CAM: the channels weighted by sum(g * A) / sum(A)."""
    weights = (g * acts[:, None] / (_channel_sums(acts) + np.float32(_XGRADCAM_EPS))).sum(axis=(3, 4), dtype=np.float32)
    return _weighted(weights, acts)


def _stage_gradcam_pp(g: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """Grad-CAM++: the channels weighted by the summed alpha-scaled positive gradients (_gradcam_pp_weights)."""
    return _weighted(_gradcam_pp_weights(g, _channel_sums(acts)).sum(axis=(3, 4), dtype=np.float32), acts)


STAGE_FORMULAS: dict[Method, StageFormula] = {
    "gradcam": _stage_gradcam, "hirescam": _stage_hirescam, "gradcam++": _stage_gradcam_pp,
    "xgradcam": _stage_xgradcam, "layercam": _stage_layercam,
}

# At the last stage the gradient is the same at every position: g = W[c] / (h*w), (N, k, C). Each method is a
# channel weighting (N, k, C) from g and the stage's activations feats (N, C, h, w).
LastStageFormula = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _last_gradcam(g: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Grad-CAM and HiResCAM (equal here): the gradient itself."""
    return g


def _last_layercam(g: np.ndarray, feats: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(g, np.float32(0.0))
    return out


def _last_xgradcam(g: np.ndarray, feats: np.ndarray) -> np.ndarray:
    sums = feats.sum(axis=(2, 3), dtype=np.float32)[:, None, :]
    out: np.ndarray = g * sums / (sums + np.float32(_XGRADCAM_EPS))
    return out


def _last_gradcam_pp(g: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Grad-CAM++: its sum over positions is h*w equal terms."""
    sums = feats.sum(axis=(2, 3), dtype=np.float32)[:, None, :]
    out: np.ndarray = _gradcam_pp_weights(g, sums) * np.float32(feats.shape[2] * feats.shape[3])
    return out


LAST_STAGE_FORMULAS: dict[Method, LastStageFormula] = {
    "gradcam": _last_gradcam, "hirescam": _last_gradcam, "gradcam++": _last_gradcam_pp,
    "xgradcam": _last_xgradcam, "layercam": _last_layercam,
}


def _one_pass(method: Method) -> None:
    if method not in ONE_PASS:
        raise ValueError(f"{method!r} is not computed from one pass: choose one of {', '.join(ONE_PASS)}")


def stage_cams(method: Method, acts: np.ndarray, grads: np.ndarray | None, k: int = 1) -> np.ndarray:
    """The maps of a one-pass ``method`` at any stage from its activations (N, C, h, w) and each class's
    gradients there (N, k, C, h, w): (N, k, h, w) float32 in [0, 1] (STAGE_FORMULAS). Eigen-CAM needs no
    gradients (``grads`` may be None, then ``k`` copies of the map are returned)."""
    _one_pass(method)
    acts = np.asarray(acts, dtype=np.float32)
    if method == "eigencam":
        kk = k if grads is None else int(grads.shape[1])
        return np.repeat(normalize_maps(eigen_cams(acts))[:, None], kk, axis=1)
    if grads is None:
        raise ValueError(f"{METHOD_NAMES[method]} needs the stage's gradients")
    return normalize_maps(STAGE_FORMULAS[method](np.asarray(grads, dtype=np.float32), acts))


def last_stage_cams(feats: np.ndarray, fc_weight: np.ndarray, classes: np.ndarray, method: Method = DEFAULT_METHOD) -> np.ndarray:
    """The maps of a one-pass ``method`` at the last stage without a backward pass (LAST_STAGE_FORMULAS).

    After the last stage come a global average pool over h*w positions and one linear layer, so
    dy_c/dA_k(i, j) = W[c, k] / (h*w) at every position: every gradient-based method follows from the
    activations and W (HiResCAM then equals Grad-CAM; Grad-CAM++'s sum over positions is h*w equal terms).
    feats: (N, C, h, w); fc_weight: (num_classes, C); classes: (N, k) ints -> maps (N, k, h, w), float32.
    """
    _one_pass(method)
    feats = np.asarray(feats, dtype=np.float32)
    n, c, h, w = feats.shape
    classes = np.asarray(classes, dtype=np.int64)
    if method == "eigencam":
        return stage_cams(method, feats, None, k=int(classes.shape[1]))
    g = np.asarray(fc_weight, dtype=np.float32)[classes] / np.float32(h * w)  # (N, k, C): the same at every position
    return normalize_maps(_weighted(LAST_STAGE_FORMULAS[method](g, feats), feats))


def grad_cams(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM of any stage from its activations (N, C, h, w) and each class's gradients there (N, k, C, h, w):
    alpha_k = the gradient's mean over positions, map = ReLU(sum_k alpha_k A_k), min-max scaled."""
    return stage_cams("gradcam", acts, grads)


def _bilinear_matrix(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in): bilinear interpolation with the corners aligned (torch's UpsamplingBilinear2d)."""
    m = np.zeros((size_out, size_in), np.float64)
    if size_in == 1:
        m[:, 0] = 1.0
        return m.astype(np.float32)
    pos = np.arange(size_out, dtype=np.float64) * (size_in - 1) / max(size_out - 1, 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), size_in - 2)
    frac = pos - lo
    rows = np.arange(size_out)
    m[rows, lo] = 1.0 - frac
    m[rows, lo + 1] += frac
    return m.astype(np.float32)


def score_masks(acts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Score-CAM's masks: each activation map (C, h, w) upsampled bilinearly (corners aligned) to ``size`` =
    (height, width), then min-max scaled to [0, 1] (a flat map gives zeros): (C, height, width) float32."""
    acts = np.asarray(acts, dtype=np.float32)
    _, h, w = acts.shape
    up = np.matmul(np.matmul(_bilinear_matrix(size[0], h), acts), _bilinear_matrix(size[1], w).T)
    lo = up.min(axis=(1, 2), keepdims=True)
    hi = up.max(axis=(1, 2), keepdims=True)
    out: np.ndarray = ((up - lo) / (hi - lo + np.float32(_SCORECAM_EPS))).astype(np.float32)
    return out


def score_cam_maps(acts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Score-CAM from a stage's activations (C, h, w) and each masked input's logits of the k classes (C, k):
    the weights are the softmax of those scores over the C maps (pytorch-grad-cam's ScoreCAM), then
    ReLU(sum_c weight_c A_c), min-max scaled: (k, h, w) float32."""
    acts = np.asarray(acts, dtype=np.float32)
    z = np.asarray(scores, dtype=np.float64).T  # (k, C)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    weights = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return normalize_maps(_weighted(weights[None], acts[None])[0])


@functools.lru_cache(maxsize=128)
def _resize_weights(n: int, m: int) -> np.ndarray:
    """(m, n) float32: Pillow's bilinear resize of a length-n line to length m, as a matrix (each column is
    what Pillow makes of one input pixel alone; the resize is linear, so these columns are the whole operator)."""
    basis = Image.fromarray(np.eye(n, dtype=np.float32))  # row i: pixel i alone
    out = np.asarray(basis.resize((m, n), Image.Resampling.BILINEAR), dtype=np.float32)  # row i: its resized line
    weights: np.ndarray = np.ascontiguousarray(out.T)
    weights.setflags(write=False)
    return weights


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (h, w) float map — or of (..., h, w) maps, each on its own — to ``size`` = (width,
    height): Pillow's resize (one pass per axis) as two small matrix products, the same numbers in a fraction
    of the time (tests/core/test_cam.py)."""
    cam = np.asarray(cam, dtype=np.float32)
    width, height = size
    out: np.ndarray = _resize_weights(cam.shape[-2], height) @ cam @ _resize_weights(cam.shape[-1], width).T
    return out.astype(np.float32, copy=False)


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
