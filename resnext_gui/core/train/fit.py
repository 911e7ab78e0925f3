"""Teaching's head: a multinomial logistic regression with L2 on the pooled features, fitted by L-BFGS with a Wolfe line search; the split and the predictions."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

L2 = 1e-3  # weight of the L2 penalty on the head (features scaled to unit root mean square)
PREDICT_ROWS = 2048  # photos scored at once after the fit: memory PREDICT_ROWS x classes, whatever the photo count


# ---- the head: multinomial logistic regression with L2 ----
def split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified: each class gives round(n * fraction) photos to validation, at least one each way when n >= 2."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    order = np.argsort(labels, kind="stable")  # the photos of each class, in their order: one sort, not a pass per class
    _, starts = np.unique(labels[order], return_index=True)
    for idx in np.split(order, starts[1:]) if len(order) else []:
        idx = idx[rng.permutation(len(idx))]
        n_val = 0
        if val_fraction > 0 and len(idx) >= 2:
            n_val = min(len(idx) - 1, max(1, int(round(len(idx) * val_fraction))))
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def _softmax_loss(w: np.ndarray, z: np.ndarray, y: np.ndarray, num_classes: int, l2: float) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``z @ W.T`` plus ``l2 / 2 * |W|^2``, and its gradient, for flat float64 ``w``."""
    weight = w.reshape(num_classes, z.shape[1])
    logits = z @ weight.T
    top = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - top)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(np.mean(np.log(total[:, 0]) + top[:, 0] - logits[rows, y])) + 0.5 * l2 * float(np.dot(w, w))
    p = e / total
    p[rows, y] -= 1.0
    grad = (p.T @ z) / len(y) + l2 * weight
    return loss, grad.ravel()


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _cubic_step(t1: float, f1: float, g1: float, t2: float, f2: float, g2: float, lo: float, hi: float) -> float:
    """The minimiser of the cubic through two points with their slopes, kept within [lo, hi] (the middle if none)."""
    if t1 != t2:
        d1 = g1 + g2 - 3.0 * (f1 - f2) / (t1 - t2)
        square = d1 * d1 - g1 * g2
        if square >= 0.0:
            d2 = np.copysign(np.sqrt(square), t2 - t1)
            denominator = g2 - g1 + 2.0 * d2
            if denominator != 0.0:
                t = t2 - (t2 - t1) * (g2 + d2 - d1) / denominator
                if np.isfinite(t):
                    return float(min(max(t, lo), hi))
    return 0.5 * (lo + hi)


def _wolfe_step(fun: Objective, x: np.ndarray, f0: float, g0: np.ndarray, d: np.ndarray, t: float,
                c1: float = 1e-4, c2: float = 0.9, max_evals: int = 25,
                tol_change: float = 1e-9) -> tuple[float, float, np.ndarray]:
    """A step ``t`` along ``d`` meeting the strong Wolfe conditions (Nocedal & Wright, algorithms 3.5 and 3.6).

    Returns (t, f, gradient) at the step; t = 0 (with f0, g0) when no lower point was found.
    """
    gtd0 = float(g0 @ d)
    scale = float(np.abs(d).max())
    prev = (0.0, f0, gtd0, g0)
    evals = 0
    bracket: tuple[tuple[float, float, float, np.ndarray], tuple[float, float, float, np.ndarray]] | None = None
    while evals < max_evals:
        f, g = fun(x + t * d)
        evals += 1
        gtd = float(g @ d)
        here = (t, f, gtd, g)
        if not np.isfinite(f) or f > f0 + c1 * t * gtd0 or (evals > 1 and f >= prev[1]):
            bracket = (prev, here)  # (low, high): the minimum lies between them
            break
        if abs(gtd) <= -c2 * gtd0:
            return t, f, g
        if gtd >= 0:
            bracket = (here, prev)
            break
        prev, t = here, _cubic_step(prev[0], prev[1], prev[2], t, f, gtd, t * 1.1, t * 10.0)
    if bracket is None:
        return prev[0], prev[1], prev[3]
    low, high = bracket
    while evals < max_evals and abs(high[0] - low[0]) * scale >= tol_change:
        left, right = min(low[0], high[0]), max(low[0], high[0])
        margin = 0.1 * (right - left)
        t = _cubic_step(low[0], low[1], low[2], high[0], high[1], high[2], left + margin, right - margin)
        f, g = fun(x + t * d)
        evals += 1
        gtd = float(g @ d)
        here = (t, f, gtd, g)
        if not np.isfinite(f) or f > f0 + c1 * t * gtd0 or f >= low[1]:
            high = here
            continue
        if abs(gtd) <= -c2 * gtd0:
            return t, f, g
        if gtd * (high[0] - low[0]) >= 0:
            high = low
        low = here
    return low[0], low[1], low[3]


def _lbfgs(fun: Objective, x0: np.ndarray, max_iter: int, tol_grad: float = 1e-6, tol_change: float = 1e-9,
           history: int = 20) -> np.ndarray:
    """Minimise a smooth function with L-BFGS and a strong Wolfe line search; deterministic.

    Stops when the largest gradient entry is at most ``tol_grad``, when the step or the change of the
    value falls below ``tol_change``, or after ``max_iter`` iterations (the criteria of torch.optim.LBFGS).
    """
    x = x0.astype(np.float64, copy=True)
    f, g = fun(x)
    pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=history)
    gamma = 1.0
    for iteration in range(max_iter):
        if float(np.abs(g).max()) <= tol_grad:
            break
        q = -g
        alphas = []
        for s, y, rho in reversed(pairs):
            a = rho * float(s @ q)
            alphas.append(a)
            q = q - a * y
        d = gamma * q
        for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
            d = d + s * (a - rho * float(y @ d))
        if float(g @ d) > -tol_change:  # not a descent direction (rounding): start again from the gradient
            pairs.clear()
            gamma, d = 1.0, -g
        first = min(1.0, 1.0 / float(np.abs(g).sum())) if iteration == 0 else 1.0
        t, f_new, g_new = _wolfe_step(fun, x, f, g, d, first, tol_change=tol_change)
        step = t * d
        if t == 0.0 or float(np.abs(step).max()) <= tol_change:
            break
        change = g_new - g
        curvature = float(change @ step)
        if curvature > 1e-10:
            pairs.append((step, change, 1.0 / curvature))
            gamma = curvature / float(change @ change)
        x = x + step
        done = abs(f_new - f) < tol_change
        f, g = f_new, g_new
        if done:
            break
    return x


def fit_head(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float = L2, max_iter: int = 200,
             overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Weights (C, D) and bias (C,) on the raw pooled features, fitted full-batch with L-BFGS.

    The features are divided by one common scale for the fit (their root mean square), and the weights by
    it afterwards: the head is an ordinary ``fc`` on the network's own features. The bias stays zero: the
    pooled features are non-negative and already carry a constant part, and without a bias the evidence
    for a class lives in its weights, which is what Grad-CAM reads at every position. With L2 the weights
    of all classes sum to zero, so the predicted class always has positive evidence somewhere and its map
    is never empty.

    ``overwrite``: ``x`` (float64) is the caller's scratch copy and is scaled in place, so the fit holds one
    copy of the features, not three.
    """
    z = np.array(x, dtype=np.float64, copy=not (overwrite and isinstance(x, np.ndarray) and x.dtype == np.float64))
    labels = np.asarray(y, dtype=np.int64)
    flat = z.reshape(-1)
    scale = max(float(np.sqrt(np.dot(flat, flat) / flat.size)), 1e-12) if z.size else 1.0
    z /= scale
    w = _lbfgs(lambda w: _softmax_loss(w, z, labels, num_classes, l2), np.zeros(num_classes * z.shape[1]), max_iter)
    weight = (w.reshape(num_classes, z.shape[1]) / scale).astype(np.float32)
    return weight, np.zeros(num_classes, np.float32)


def predict_proba(weight: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, C) float64 class probabilities of the head on pooled features (a softmax safe from overflow)."""
    from ..classifier import softmax

    return softmax(np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T + np.asarray(bias, np.float64))



def predict(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, rows: int = PREDICT_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(class predicted, its probability) of the head for each row of ``x``: scored ``rows`` at a time, so memory
    stays rows x classes whatever the number of photos."""
    pred = np.zeros(len(x), np.int64)
    prob = np.zeros(len(x), np.float64)
    for i in range(0, len(x), rows):
        probs = predict_proba(weight, bias, x[i:i + rows])
        pred[i:i + rows] = probs.argmax(1)
        prob[i:i + rows] = probs[np.arange(len(probs)), pred[i:i + rows]]
    return pred, prob
