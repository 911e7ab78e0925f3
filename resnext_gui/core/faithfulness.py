"""Whether a map is faithful to the model: deletion and insertion curves (Petsiuk et al., RISE, 2018) beside a random map's.

The map, at 8 bits (as the results library keeps it and the window draws it, so a map read back from the library
gives the figures it gave when it was computed), upsampled to the model's input (bilinear), ranks its pixels,
brightest first (ties in raster order).
Deletion replaces the top pixels, step by step, with the baseline: zero after normalisation, i.e. the weights'
mean colour. Insertion starts from a blurred copy of the input (Gaussian, sigma 5 px, an 11x11 window, as RISE)
and reveals the top pixels of the original. At each step the class's probability is read; each curve is one
batched forward pass, and its area (trapezoid rule on [0, 1]) is one number: a low deletion area and a high
insertion area mean the model depends on the pixels the map highlights. A random map of the same size (the
layer's own: 7x7 at the last stage), from a fixed seed, gives the same figures for comparison: the same photo,
class, map and model always give the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cam import upsample
from .errors import Cancelled

DEFAULT_STEPS = 20  # points at 0, 5 %, 10 %, ... 100 % of the pixels
HIDDEN_FRACTION = 0.2
PASSES = 4  # batched passes: the map's deletion and insertion, then the random map's
BLUR_SIGMA, BLUR_RADIUS = 5.0, 5  # RISE's insertion baseline: gaussian_filter-like blur, 11 taps


def eight_bit(cam: np.ndarray) -> np.ndarray:
    """``cam`` (values in [0, 1]) rounded to 1/255 steps, exactly as the results library stores maps (uint8) and
    reads them back: a map and its stored copy are the same map to the score."""
    levels = np.clip(np.rint(np.nan_to_num(np.asarray(cam, dtype=np.float32)) * 255.0), 0, 255).astype(np.uint8)
    out: np.ndarray = levels.astype(np.float32) / np.float32(255.0)
    return out


def ranking(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pixel order of a (h, w) map upsampled to ``size`` = (height, width): flat indices, brightest first,
    ties in raster order (a stable sort)."""
    sal = upsample(np.asarray(cam, dtype=np.float32), (size[1], size[0]))
    order: np.ndarray = np.argsort(-sal.ravel(), kind="stable")
    return order


def counts(pixels: int, steps: int) -> np.ndarray:
    """Pixels changed at each of the ``steps`` + 1 points: round(i * pixels / steps), i = 0..steps."""
    return np.rint(np.arange(steps + 1) * pixels / steps).astype(np.int64)


def gaussian_kernel(sigma: float = BLUR_SIGMA, radius: int = BLUR_RADIUS) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    out: np.ndarray = (k / k.sum()).astype(np.float32)
    return out


def blur(image: np.ndarray, sigma: float = BLUR_SIGMA, radius: int = BLUR_RADIUS) -> np.ndarray:
    """A separable Gaussian blur of a (3, H, W) tensor, edges mirrored (reflect, the edge pixel not repeated)."""
    k = gaussian_kernel(sigma, radius)
    x = np.asarray(image, dtype=np.float32)
    pad = np.pad(x, ((0, 0), (0, 0), (radius, radius)), mode="reflect")
    x = sum(k[i] * pad[:, :, i:i + x.shape[2]] for i in range(k.size))
    pad = np.pad(x, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    out: np.ndarray = sum(k[i] * pad[:, i:i + image.shape[1], :] for i in range(k.size)).astype(np.float32)
    return out


def deletion_batch(image: np.ndarray, order: np.ndarray, steps: int) -> np.ndarray:
    """(steps + 1, 3, H, W): ``image`` with its first ``counts`` pixels of ``order`` set to the baseline 0."""
    c, h, w = image.shape
    out = np.repeat(np.asarray(image, np.float32)[None], steps + 1, axis=0).reshape(steps + 1, c, h * w)
    for i, n in enumerate(counts(h * w, steps)):
        out[i][:, order[:n]] = 0.0
    return out.reshape(steps + 1, c, h, w)


def insertion_batch(image: np.ndarray, order: np.ndarray, steps: int) -> np.ndarray:
    """(steps + 1, 3, H, W): the blurred ``image`` with its first ``counts`` pixels of ``order`` restored."""
    c, h, w = image.shape
    flat = np.asarray(image, np.float32).reshape(c, h * w)
    out = np.repeat(blur(image)[None], steps + 1, axis=0).reshape(steps + 1, c, h * w)
    for i, n in enumerate(counts(h * w, steps)):
        out[i][:, order[:n]] = flat[:, order[:n]]
    return out.reshape(steps + 1, c, h, w)


def auc(curve: np.ndarray | list[float]) -> float:
    """The area under a curve sampled at equal steps on [0, 1] (trapezoid rule)."""
    y = np.asarray(curve, dtype=np.float64)
    return float((y.sum() - (y[0] + y[-1]) / 2) / (len(y) - 1))


def _pct(p: float) -> str:
    value = 100.0 * p
    if 0 < value < 0.5:
        return "<1 %"
    return f"{value:.0f} %"


@dataclass
class Faithfulness:
    """The figures of one map for one class (see the module's docstring)."""

    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float
    prob: float  # the class's probability on the unchanged input
    prob_hidden: float  # after hiding the map's brightest ``hidden_fraction`` of the pixels
    random_prob_hidden: float  # the same for the random map
    hidden_fraction: float = HIDDEN_FRACTION
    class_index: int = -1
    deletion: list[float] = field(default_factory=list)  # the curves, at steps + 1 equal steps from 0 to 1
    insertion: list[float] = field(default_factory=list)
    random_deletion: list[float] = field(default_factory=list)
    random_insertion: list[float] = field(default_factory=list)

    def sentence(self, label: str) -> str:
        """In plain words: "hiding the brightest 20 % of this map drops tabby from 49 % to 4 % (a random map: to 41 %)"."""
        share = f"{100 * self.hidden_fraction:.0f} %"
        if self.prob_hidden < self.prob:
            verb = "drops"
        elif self.prob_hidden > self.prob:
            verb = "raises"
        else:
            verb = "leaves"
        change = (f"leaves {label} at {_pct(self.prob)}" if verb == "leaves"
                  else f"{verb} {label} from {_pct(self.prob)} to {_pct(self.prob_hidden)}")
        return f"hiding the brightest {share} of this map {change} (a random map: to {_pct(self.random_prob_hidden)})"

    def to_record(self) -> dict[str, Any]:
        """The figures as written by ``classify --faithfulness`` and the window's export (rounded)."""
        def r(x: float) -> float:
            return round(float(x), 4)

        return {
            "class_index": self.class_index,
            "deletion_auc": r(self.deletion_auc), "insertion_auc": r(self.insertion_auc),
            "random_deletion_auc": r(self.random_deletion_auc), "random_insertion_auc": r(self.random_insertion_auc),
            "prob": r(self.prob), "prob_hidden": r(self.prob_hidden), "random_prob_hidden": r(self.random_prob_hidden),
            "hidden_fraction": self.hidden_fraction,
            "deletion": [r(v) for v in self.deletion], "insertion": [r(v) for v in self.insertion],
        }


def random_map(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """The comparison map: uniform noise of the map's own size, from ``seed``."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def measure(
    image: np.ndarray,
    cam: np.ndarray,
    class_index: int,
    probability: Callable[[np.ndarray], np.ndarray],
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    hidden_fraction: float = HIDDEN_FRACTION,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Faithfulness:
    """The figures of ``cam`` (h, w, at the layer's own size; taken at 8 bits) on the model input ``image``
    (3, H, W, normalised).

    ``probability(batch)`` runs the model on a batch (N, 3, H, W) and gives the class's probabilities (N,).
    Four batched passes (the map's and the random map's deletion and insertion), each of ``steps`` + 1 inputs;
    ``progress(done, 4)`` after each, ``cancelled()`` before each (then core.errors.Cancelled).
    """
    return finish(measuring(image, cam, class_index, probability, steps, seed, hidden_fraction), progress, cancelled)


def finish(passes: Generator[int, None, Faithfulness], progress: Callable[[int, int], None] | None = None,
           cancelled: Callable[[], bool] | None = None) -> Faithfulness:
    """Run ``measuring``'s passes to the end: ``cancelled()`` before each (then core.errors.Cancelled),
    ``progress(done, 4)`` after each."""
    while True:
        if cancelled is not None and cancelled():
            passes.close()
            raise Cancelled("the faithfulness figures were cancelled")
        try:
            done = next(passes)
        except StopIteration as end:
            figures: Faithfulness = end.value
            return figures
        if progress is not None:
            progress(done, PASSES)


def measuring(
    image: np.ndarray,
    cam: np.ndarray,
    class_index: int,
    probability: Callable[[np.ndarray], np.ndarray],
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    hidden_fraction: float = HIDDEN_FRACTION,
) -> Generator[int, None, Faithfulness]:
    """``measure`` one batched pass at a time, for a caller that does other work in between (the window's worker
    serves what the user asks for between two passes): yields the passes done so far (1..4), returns the figures.
    The arguments are checked at once, before the first pass."""
    steps = int(steps)
    if steps < 1:
        raise ValueError("the faithfulness curves need at least one step")
    hidden_step = hidden_fraction * steps
    if not 0 < hidden_fraction < 1 or abs(hidden_step - round(hidden_step)) > 1e-9:
        raise ValueError(f"hidden_fraction {hidden_fraction} must be one of the steps (a multiple of 1/{steps})")
    image = np.asarray(image, dtype=np.float32)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"the map must be 2-D (h, w), not of shape {cam.shape}")
    cam = eight_bit(cam)
    return _passes(image, cam, class_index, probability, steps, seed, hidden_fraction)


def _passes(image: np.ndarray, cam: np.ndarray, class_index: int, probability: Callable[[np.ndarray], np.ndarray],
            steps: int, seed: int, hidden_fraction: float) -> Generator[int, None, Faithfulness]:
    size = (int(image.shape[1]), int(image.shape[2]))
    orders = [ranking(cam, size), ranking(random_map(cam.shape, seed), size)]
    curves: list[list[float]] = []
    for order in orders:  # PASSES in all
        for build in (deletion_batch, insertion_batch):
            probs = np.asarray(probability(build(image, order, steps)), dtype=np.float64).reshape(-1)
            curves.append([float(p) for p in probs])
            yield len(curves)
    deletion, insertion, r_deletion, r_insertion = curves
    hidden = int(round(hidden_fraction * steps))
    return Faithfulness(
        deletion_auc=auc(deletion), insertion_auc=auc(insertion),
        random_deletion_auc=auc(r_deletion), random_insertion_auc=auc(r_insertion),
        prob=deletion[0], prob_hidden=deletion[hidden], random_prob_hidden=r_deletion[hidden],
        hidden_fraction=float(hidden_fraction), class_index=int(class_index),
        deletion=deletion, insertion=insertion, random_deletion=r_deletion, random_insertion=r_insertion,
    )
