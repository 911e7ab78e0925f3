"""Classifier: photos in, plain Prediction objects out (top-k, class activation maps of those classes, crop, timings)."""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import cam as cam_mod
from .cam import DEFAULT_METHOD, LAYERS, METHOD_NAMES, ONE_PASS, check_method
from .checkpoint import Checkpoint, read_checkpoint
from .devices import Device, resolve, torch_installed
from .errors import Cancelled
from .faithfulness import DEFAULT_STEPS, HIDDEN_FRACTION, Faithfulness, finish, measuring
from .kinds import BACKENDS, PRECISIONS, TUNINGS, Backend, Layer, Method, Precision, RuntimeName
from .prediction import Prediction, TopClass, failure
from .preprocess import Prepared, Source, load_and_prepare, source_name
from .runtimes import OpenVINORuntime, Pending, Runtime, openvino_available
from .weights import WeightsSource, find_weights

SCORECAM_BATCH = 16  # masked inputs per forward pass of Score-CAM (as pytorch-grad-cam)
MAX_BATCH = 64  # photos per forward pass at most: larger batches only cost memory (activations grow with it)


_T = TypeVar("_T")


@dataclass
class _InFlight:
    """A batch whose forward pass is under way (classify_many)."""

    items: list[Prepared]
    batch: np.ndarray
    pending: Pending[tuple[np.ndarray, np.ndarray]]
    start: float


class _Inline:
    """An executor that runs each job at once in the calling thread (``decode_workers=0``)."""

    def submit(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        fut: Future[_T] = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # delivered through the future, as a pool would
            fut.set_exception(exc)
        return fut

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, safe from overflow (the row's maximum is subtracted first)."""
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # scores that are not finite give NaN, refused by the caller
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def pooled_float16(feats: np.ndarray) -> list[np.ndarray | None]:
    """Each photo's pooled last-stage activations (the spatial mean of (N, 2048, h, w)) as float16, the form the
    results library keeps; None for a photo whose values are not finite in float16."""
    pooled = np.asarray(feats, dtype=np.float32).mean(axis=(2, 3), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        half = pooled.astype(np.float16)
    return [row if np.isfinite(row).all() else None for row in half]


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, k), class indices (N, k)), highest first; ties keep the lower class index first."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(probs, order, axis=1), order


class Classifier:
    """ResNeXt-50 on one device: classify photos and explain the top-k classes with Grad-CAM.

    Qt-free and single-threaded from the caller's view (decoding may use a small thread pool). On the CPU
    the network runs in OpenVINO and nothing here imports torch; on a GPU (or with ``backend="torch"``)
    PyTorch runs it. ``weights``: a checkpoint file, the lookup's choice of one, or a Checkpoint already read and
    checked (used as it is: a node of a cluster gets the driver's, with no file of its own).
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | WeightsSource | Checkpoint | None = None,
        device: str = "auto",
        layer: Layer = "layer4",
        topk: int = 5,
        fast_decode: bool = True,
        decode_workers: int | None = None,
        precision: Precision = "fp32",
        backend: Backend = "auto",
        progress: Callable[[str], None] | None = None,
        method: Method = DEFAULT_METHOD,
        tuned_for: str = "latency",
        lazy: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if tuned_for not in TUNINGS:
            raise ValueError(f"unknown tuning {tuned_for!r}: choose {' or '.join(TUNINGS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")
        self._check_one_pass(method, layer)
        start = time.perf_counter()
        self.device: Device = resolve(device)
        if isinstance(weights, Checkpoint):  # read and checked already (a cluster's node gets it from the driver)
            self.checkpoint: Checkpoint = weights
            source = weights.source
        else:
            source = weights if isinstance(weights, WeightsSource) else find_weights(weights)
            self.checkpoint = read_checkpoint(source)
        self.preprocessing = source.transforms_variant.preprocessing  # the weights' own resize, crop, mean, std
        self.resize, self.crop_size = self.preprocessing.resize, self.preprocessing.crop
        self.layer = layer
        self.method = method  # the CAM method of predict/classify when none is given (never "scorecam")
        self.topk = max(1, min(int(topk), self.checkpoint.num_classes))
        self.fast_decode = fast_decode
        self.decode_workers = decode_workers  # None: chosen per run, see _decode_workers
        self.precision = precision
        self.tuned_for = tuned_for  # "latency": one photo at a time (the window); "throughput": folders (classify)
        self.note: str | None = None  # why the backend asked for is not the one in use, if it is not
        self._pending_note: str | None = None  # for the next prediction, after a backend fell back mid-run
        self._fc_weight = np.ascontiguousarray(self.checkpoint.state["fc.weight"], dtype=np.float32)
        self._asked: tuple[Backend, Callable[[str], None] | None] = (backend, progress)
        self._runtime: Runtime | None = None if lazy else self._start_runtime(backend, progress)
        self.load_ms = (time.perf_counter() - start) * 1000.0

    @property
    def runtime(self) -> Runtime:
        """The runtime computing the network. ``lazy=True``: started here, on first need (the weights were read and
        checked at once; a run whose photos all come from the results library never prepares a network), and its
        note, if any, said through ``progress`` as "note: …"."""
        if self._runtime is None:
            start = time.perf_counter()
            backend, progress = self._asked
            self._runtime = self._start_runtime(backend, progress)
            self.load_ms += (time.perf_counter() - start) * 1000.0
            if self.note and progress is not None:
                progress(f"note: {self.note}")
        return self._runtime

    @runtime.setter
    def runtime(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @property
    def runtime_started(self) -> bool:
        return self._runtime is not None

    def _start_runtime(self, backend: Backend, progress: Callable[[str], None] | None) -> Runtime:
        """OpenVINO on the CPU when it is importable (``auto``) or asked for; PyTorch otherwise or when it fails."""
        reason = None
        if backend == "torch" and not torch_installed():
            from .errors import BackendError

            raise BackendError("the CPU runtime PyTorch was asked for, but this build of the app has no PyTorch: "
                               "its CPU runtime is OpenVINO (choose auto or openvino).")
        if backend != "torch":
            if self.device.type != "cpu":
                if backend == "openvino":
                    self.note = f"OpenVINO runs on the CPU only; the {self.device.type.upper()} device uses PyTorch"
            elif not openvino_available():
                reason = "OpenVINO is not installed"
            else:
                try:
                    return OpenVINORuntime(self.checkpoint, self.precision, progress=progress, tuned_for=self.tuned_for)
                except Exception as exc:  # BackendError, or anything else the runtime raises: PyTorch gives the answer
                    reason = str(exc)
        if not torch_installed():
            from .errors import BackendError

            raise BackendError(f"{reason or 'OpenVINO is not available'}, and this build of the app has no PyTorch "
                               "to run the network instead.")
        if reason and (backend == "openvino" or "OpenVINO is not installed" not in reason):
            self.note = f"using PyTorch: {reason}" if "not installed" not in reason else f"{reason}; using PyTorch"
        return self._torch_runtime(self.device)

    def _torch_runtime(self, device: Device) -> Runtime:
        from .torch_runtime import TorchRuntime

        return TorchRuntime(self.checkpoint, device, self.precision)

    @property
    def backend(self) -> RuntimeName:
        """The runtime that computes the network now: "openvino" or "torch"."""
        return self.runtime.name

    @property
    def default_batch_size(self) -> int:
        """Photos per forward pass for ``classify``: 1 where the runtime runs several passes at once (OpenVINO's
        streams, each photo on its own core), else 8 (see benchmarks/backends.md)."""
        return 1 if self.runtime.parallel > 1 else 8

    # ---- properties the front ends show ----
    @property
    def labels(self) -> list[str]:
        return self.checkpoint.labels

    @property
    def source(self) -> WeightsSource:
        return self.checkpoint.source

    @property
    def num_classes(self) -> int:
        return self.checkpoint.num_classes

    # ---- single steps ----
    def prepare(self, source: Source) -> Prepared:
        return load_and_prepare(source, self.preprocessing, self.fast_decode)

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The runtime's forward pass; when OpenVINO fails mid-run, PyTorch computes this batch and the next."""
        try:
            return self.runtime.infer(batch)
        except Exception as exc:
            if self.runtime.name != "openvino" or not torch_installed():
                raise
            self.runtime = self._torch_runtime(self.device)
            self.note = self._pending_note = f"ran on PyTorch: {exc}"
            return self.runtime.infer(batch)

    @staticmethod
    def _check_one_pass(method: Method, layer: Layer) -> None:
        check_method(method, layer)
        if method not in ONE_PASS:
            raise ValueError(f"{METHOD_NAMES[method]} needs a forward pass per activation map: it is computed by "
                             "score_cams for one photo, not with every prediction")

    def _maps(self, batch: np.ndarray, feats: np.ndarray, classes: np.ndarray, layer: Layer,
              method: Method = DEFAULT_METHOD) -> np.ndarray:
        """The maps of ``classes`` (N, k): analytic at the last stage, through the runtime's gradients before it
        (Eigen-CAM needs only the activations, which come with them)."""
        if layer == "layer4":
            return cam_mod.last_stage_cams(feats, self._fc_weight, classes, method)
        if method == "eigencam":  # the activations only: the gradient pass for one class, not k
            return cam_mod.stage_cams(method, self._stage_activations(batch, layer), None, k=int(classes.shape[1]))
        acts, grads = self.runtime.gradients(batch, layer, self._fc_weight[classes])
        return cam_mod.stage_cams(method, acts, grads)

    def predict(self, items: list[Prepared], layer: Layer | None = None, method: Method | None = None) -> list[Prediction]:
        """Run the model once over already prepared photos (one batch): top-k and the maps of ``method``."""
        layer = layer or self.layer
        method = method or self.method
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")
        self._check_one_pass(method, layer)
        start = time.perf_counter()
        batch = self._batch(items)
        return self._answers(items, batch, self._infer(batch), layer, method, start)

    @staticmethod
    def _batch(items: list[Prepared]) -> np.ndarray:
        return np.stack([np.asarray(p.tensor, dtype=np.float32) for p in items])

    def _answers(self, items: list[Prepared], batch: np.ndarray, outputs: tuple[np.ndarray, np.ndarray], layer: Layer,
                 method: Method, start: float) -> list[Prediction]:
        """The predictions of one batch from the network's outputs: top-k, the maps, the timings."""
        feats, logits = outputs
        probs, classes = top_k(softmax(logits).astype(np.float32), self.topk)
        finite = np.isfinite(logits).all(axis=1) & np.isfinite(probs).all(axis=1)
        maps = self._maps(batch, feats, classes, layer, method)
        # what the results library keeps, whatever was asked for: the last stage's Grad-CAM, in closed form from
        # the activations every forward pass gives (a few microseconds; no pass more)
        kept = (None if (layer, method) == ("layer4", DEFAULT_METHOD)
                else np.nan_to_num(cam_mod.last_stage_cams(feats, self._fc_weight, classes, DEFAULT_METHOD),
                                   nan=0.0, posinf=1.0, neginf=0.0).astype(np.float32, copy=False))
        note = self.runtime.take_note() or self._pending_note
        self._pending_note = None
        device = "cpu" if note and note.startswith("ran on the CPU") else self.device.type
        infer_ms = (time.perf_counter() - start) * 1000.0 / len(items)
        maps = np.nan_to_num(maps, nan=0.0, posinf=1.0, neginf=0.0).astype(np.float32, copy=False)
        pooled = pooled_float16(feats)
        out = []
        for i, item in enumerate(items):
            if not finite[i]:  # never pass NaN or infinity on as a probability
                out.append(Prediction(
                    path=item.decoded.name, ok=False, device=device,
                    error=f"{item.decoded.name}: the model's scores are not finite numbers (NaN or infinity); "
                          "the checkpoint's weights overflow on this photo",
                ))
                continue
            top = [
                TopClass(rank + 1, int(c), self.labels[int(c)], float(p))
                for rank, (p, c) in enumerate(zip(probs[i].tolist(), classes[i].tolist()))
            ]
            out.append(
                Prediction(
                    path=item.decoded.name,
                    ok=True,
                    top=top,
                    cams=maps[i],
                    layer=layer,
                    method=method,
                    crop=item.crop,
                    image_size=item.decoded.original_size,
                    device=device,
                    ms=item.decode_ms + infer_ms,
                    decode_ms=item.decode_ms,
                    infer_ms=infer_ms,
                    note=note,
                    last_stage_cams=None if kept is None else kept[i],
                    features=pooled[i],
                    dhash=item.dhash,
                )
            )
        return out

    def features(self, items: list[Prepared]) -> np.ndarray:
        """(N, 2048, 7, 7) float32: the last stage's activations, from the same network and precision as ``predict``."""
        return self._infer(self._batch(items))[0]

    def pooled_features(self, items: list[Prepared]) -> np.ndarray:
        """(N, 2, 2048) float32: each photo's globally pooled last-stage features, and those of its mirror image.

        The mirror is the model's input flipped left to right (the centre crop is symmetric, so that is the crop
        of the mirrored photo). Teaching a new head uses these: the backbone stays frozen, only ``fc`` is learnt.
        """
        batch = self._batch(items)
        both = np.concatenate([batch, batch[..., ::-1]])
        pooled = self._infer(np.ascontiguousarray(both))[0].mean(axis=(2, 3), dtype=np.float32)
        n = len(items)
        return np.stack([pooled[:n], pooled[n:]], axis=1)

    def classify(self, source: Source, keep_image: bool = False, layer: Layer | None = None,
                 method: Method | None = None) -> Prediction:
        """One photo, start to finish. Bad input gives ``ok=False`` with the reason, never an exception;
        an unknown ``layer`` or ``method`` (or "scorecam", see score_cams) is a ValueError."""
        self._check_one_pass(method or self.method, layer or self.layer)
        name = source_name(source)
        try:
            item = self.prepare(source)
        except Exception as exc:  # MemoryError, ValueError, OSError...: this photo's answer, not the caller's
            return failure(name, exc)
        try:
            pred = self.predict([item], layer, method)[0]
        except Exception as exc:  # the model itself failed on this photo (out of memory, ...)
            return failure(name, exc, "classified")
        if keep_image:
            pred.image = item.decoded.image
        return pred

    # ---- the slow explanations, for one photo at a time ----
    def _stage_activations(self, batch: np.ndarray, layer: Layer) -> np.ndarray:
        """(N, C, h, w): the activations of ``layer`` (before the last stage through the gradient pass, whose
        gradients are not needed)."""
        if layer == "layer4":
            return self._infer(batch)[0]
        seeds = self._fc_weight[np.zeros((batch.shape[0], 1), np.int64)]  # any one class: (N, 1, 2048)
        return self.runtime.gradients(batch, layer, seeds)[0]

    def score_cams(
        self,
        item: Prepared,
        classes: Sequence[int],
        layer: Layer = "layer4",
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        batch_size: int = SCORECAM_BATCH,
        channels: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Score-CAM (Wang et al., 2020, as pytorch-grad-cam computes it) of ``classes`` for one photo: (k, h, w).

        The input is multiplied by each of the stage's activation maps, upsampled and scaled to [0, 1], and run
        through the network in batches of ``batch_size``: one forward pass per map (layer4: 2048, layer3: 1024,
        layer2: 512), the same passes serving every class. A map's weight is the softmax, over the maps, of the
        class's logit on its masked input. ``progress(done, total)`` after each batch (maps done, all maps);
        ``cancelled()`` before each: True raises core.errors.Cancelled. ``channels``: only these maps (a partial
        Score-CAM, cheaper; the softmax runs over them).
        """
        check_method("scorecam", layer)
        wanted = np.asarray(classes, dtype=np.int64).reshape(-1)
        if wanted.size == 0 or wanted.min() < 0 or wanted.max() >= self.num_classes:
            raise ValueError(f"Score-CAM needs one or more of the model's {self.num_classes} class indices, "
                             f"not {list(classes)!r}")
        tensor = np.asarray(item.tensor, dtype=np.float32)
        acts = self._stage_activations(tensor[None], layer)[0]
        picked = np.arange(acts.shape[0]) if channels is None else np.asarray(channels, dtype=np.int64).reshape(-1)
        if picked.size == 0:
            raise ValueError("Score-CAM needs at least one activation map")
        acts = acts[picked]
        total, step = len(acts), max(1, int(batch_size))
        scores = np.empty((total, len(wanted)), np.float32)
        size = (int(tensor.shape[1]), int(tensor.shape[2]))
        for start in range(0, total, step):
            if cancelled is not None and cancelled():
                raise Cancelled("Score-CAM was cancelled")
            masks = cam_mod.score_masks(acts[start:start + step], size)
            logits = self._infer(np.ascontiguousarray(tensor[None] * masks[:, None]))[1]
            scores[start:start + len(masks)] = logits[:, wanted]
            if progress is not None:
                progress(min(start + step, total), total)
        return cam_mod.score_cam_maps(acts, scores)

    def faithfulness(
        self,
        item: Prepared,
        class_index: int,
        cam: np.ndarray,
        steps: int = DEFAULT_STEPS,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        hidden_fraction: float = HIDDEN_FRACTION,
    ) -> Faithfulness:
        """Deletion and insertion figures of ``cam`` (h, w) for class ``class_index`` on this photo, beside a
        random map's (core/faithfulness.py): four batched passes of ``steps`` + 1 inputs each."""
        return finish(self.faithfulness_passes(item, class_index, cam, steps, seed, hidden_fraction),
                      progress, cancelled)

    def faithfulness_passes(
        self,
        item: Prepared,
        class_index: int,
        cam: np.ndarray,
        steps: int = DEFAULT_STEPS,
        seed: int = 0,
        hidden_fraction: float = HIDDEN_FRACTION,
    ) -> Generator[int, None, Faithfulness]:
        """``faithfulness`` one batched pass at a time (core.faithfulness.measuring): yields the passes done,
        returns the figures. A wrong class index or map is refused at once."""
        c = int(class_index)
        if not 0 <= c < self.num_classes:
            raise ValueError(f"class index {class_index} is not one of the model's {self.num_classes} classes")

        def probability(batch: np.ndarray) -> np.ndarray:
            out: np.ndarray = softmax(self._infer(np.ascontiguousarray(batch))[1])[:, c]
            return out

        return measuring(np.asarray(item.tensor, dtype=np.float32), cam, c, probability, steps=steps, seed=seed,
                         hidden_fraction=hidden_fraction)

    def classify_many(
        self,
        sources: Iterable[Source],
        batch_size: int | None = 1,
        keep_images: bool = False,
        cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[Prediction]:
        """Stream predictions in input order; the next photos decode on worker threads meanwhile, and where the
        runtime runs several passes at once (OpenVINO tuned for throughput) that many batches are under way.

        At most a few photos are decoded ahead, so memory stays flat however long the list is: a queued photo
        holds only its model tensor (the decoded picture too when ``keep_images`` is asked for). Batches are
        at most MAX_BATCH photos (``batch_size`` None: ``default_batch_size``). Whatever goes wrong with one
        photo becomes that photo's ``ok=False`` answer. The runtime is first needed with the first photo: a lazy
        classifier given no photo never starts one.
        """
        sources = iter(sources)
        try:
            first = next(sources)
        except StopIteration:
            return
        sources = itertools.chain([first], sources)
        batch_size = max(1, min(int(self.default_batch_size if batch_size is None else batch_size), MAX_BATCH))
        workers = self._decode_workers(batch_size)
        ahead = batch_size * max(1, self.runtime.parallel) + workers
        pending: deque[tuple[str, Future[Prepared]]] = deque()
        flight: deque[_InFlight | Prediction] = deque()  # in input order: batches under way, and failed photos

        def submit(pool: ThreadPoolExecutor | _Inline) -> None:
            while len(pending) < ahead:
                try:
                    src = next(sources)
                except StopIteration:
                    return
                pending.append((source_name(src), pool.submit(self._prepare_queued, src, keep_images)))

        def running() -> int:
            return sum(isinstance(entry, _InFlight) for entry in flight)

        executor = ThreadPoolExecutor(workers, thread_name_prefix="decode") if workers else _Inline()
        with executor as pool:
            try:
                submit(pool)
                batch: list[Prepared] = []
                while pending:
                    if cancelled and cancelled():
                        return
                    name, fut = pending.popleft()
                    submit(pool)
                    try:
                        batch.append(fut.result())
                        failed = None
                    except Exception as exc:  # any per-photo error, MemoryError included
                        failed = failure(name, exc)
                    if batch and (failed or len(batch) >= batch_size or not pending):
                        while running() >= max(1, self.runtime.parallel):
                            yield from self._collect(flight.popleft(), keep_images)
                        flight.append(self._start(batch))
                        batch = []
                    if failed:
                        flight.append(failed)
                    while flight and (isinstance(flight[0], Prediction) or flight[0].pending.done()):
                        yield from self._collect(flight.popleft(), keep_images)
                while flight:
                    if cancelled and cancelled():
                        return
                    yield from self._collect(flight.popleft(), keep_images)
            finally:
                for _, fut in pending:
                    fut.cancel()
                for entry in flight:  # passes still under way finish before their requests are reused
                    if isinstance(entry, _InFlight):
                        try:
                            entry.pending.result()
                        except Exception:
                            pass

    def _decode_workers(self, batch_size: int) -> int:
        """Threads that decode the next photos while the model runs.

        On a GPU the CPU is free, so decoding overlaps fully. On the CPU the forward pass already uses every
        core: a decode thread pays off beside batches, or beside OpenVINO's streams, which do not wait for each
        other the way one pass's threads do (one decoder for each two streams; the figures:
        benchmarks/results.md, rows 3b).
        """
        if self.decode_workers is not None:
            return max(0, self.decode_workers)
        if self.device.type != "cpu":
            return max(1, min(4, (os.cpu_count() or 2) - 1))
        if self.runtime.parallel > 1:
            return max(1, min(4, self.runtime.parallel // 2))
        return 1 if batch_size > 1 else 0

    def _start(self, items: list[Prepared]) -> _InFlight:
        start = time.perf_counter()
        batch = self._batch(items)
        return _InFlight(items, batch, self.runtime.start(batch), start)

    def _collect(self, entry: _InFlight | Prediction, keep_images: bool) -> list[Prediction]:
        """The answers of a batch under way once it is done (or a failed photo's own); a batch the runtime failed
        on is computed again the careful way (one photo at a time, PyTorch if OpenVINO fails)."""
        if isinstance(entry, Prediction):
            return [entry]
        try:
            preds = self._answers(entry.items, entry.batch, entry.pending.result(), self.layer, self.method, entry.start)
        except Exception:
            return self._finish(entry.items, keep_images)
        if keep_images:
            for pred, item in zip(preds, entry.items):
                pred.image = item.decoded.image
        return preds

    def _prepare_queued(self, source: Source, keep_images: bool) -> Prepared:
        item = self.prepare(source)
        if not keep_images:
            item.decoded.image = None  # the tensor is all the model needs; let the picture go now
        return item

    def _finish(self, batch: list[Prepared], keep_images: bool) -> list[Prediction]:
        try:
            preds = self.predict(batch)
        except Exception as exc:  # out of memory for the whole batch, or one photo the model chokes on
            if len(batch) == 1:
                return [failure(batch[0].decoded.name, exc, "classified")]
            return [p for item in batch for p in self._finish([item], keep_images)]
        for pred, item in zip(preds, batch):
            if keep_images:
                pred.image = item.decoded.image
        return preds
