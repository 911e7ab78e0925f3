"""The runtimes that compute the network: OpenVINO on the CPU (no torch), PyTorch for GPUs and as the fallback."""

from __future__ import annotations

import hashlib
import stat
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from .checkpoint import Checkpoint
from .devices import Device
from .errors import BackendError
from .files import cache_root
from .kinds import Layer, Precision, RuntimeName

Progress = Callable[[str], None]
Outputs = tuple[np.ndarray, np.ndarray]
_V = TypeVar("_V")


class Pending(Generic[_V]):
    """A forward pass under way, or done: ``result()`` waits for it (once), then gives its answer or raises its
    error, as often as asked."""

    def __init__(self, fetch: Callable[[], _V], ready: Callable[[], bool] | None = None) -> None:
        self._fetch: Callable[[], _V] | None = fetch
        self._ready = ready
        self._value: _V | None = None
        self._error: BaseException | None = None

    @classmethod
    def now(cls, compute: Callable[[], _V]) -> Pending[_V]:
        """A pass computed at once, in the calling thread (its error, if any, is kept for ``result``)."""
        pending = cls(compute)
        try:
            pending.result()
        except Exception:
            pass
        return pending

    def done(self) -> bool:
        """Whether ``result`` would answer without waiting."""
        return self._fetch is None or self._ready is None or self._ready()

    def result(self) -> _V:
        if self._fetch is not None:
            fetch, self._fetch = self._fetch, None
            try:
                self._value = fetch()
            except Exception as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


class Runtime(Protocol):
    """What the Classifier needs of a runtime. Batches are (N, 3, 224, 224) float32, normalised."""

    name: RuntimeName
    device: Device
    from_cache: bool  # the compiled network came from OpenVINO's cache (this start skipped compiling)

    @property
    def parallel(self) -> int:
        """Forward passes worth having under way at once through ``start`` (1: one at a time)."""
        ...

    def infer(self, batch: np.ndarray) -> Outputs:
        """(last-stage activations (N, 2048, 7, 7), logits (N, classes)), float32."""
        ...

    def start(self, batch: np.ndarray) -> Pending[Outputs]:
        """``infer`` begun, to be collected with ``result()``: up to ``parallel`` passes run at once, so the caller
        can decode the next photos and read the last answers meanwhile. A runtime that computes one batch at a
        time answers at once."""
        ...

    def gradients(self, batch: np.ndarray, layer: Layer, seeds: np.ndarray) -> Outputs:
        """(activations of ``layer`` (N, C, h, w), d(seed_k · pooled last stage)/d(activations) (N, K, C, h, w)).

        With ``seeds[n, k] = fc.weight[c]`` that is the gradient of class c's logit (the bias does not move it).
        """
        ...

    def take_note(self) -> str | None:
        """Something that happened during the last call the user should know (say, ran on the CPU), once."""
        ...


def openvino_available() -> bool:
    """Whether the OpenVINO runtime can be imported (it is optional in the source install)."""
    try:
        import openvino  # noqa: F401
    except Exception:  # ImportError, or a broken installation failing to load its libraries
        return False
    return True


def compiled_cache_dir() -> Path:
    """OpenVINO's cache of compiled networks (keyed by OpenVINO itself on the graph, its weights and the settings)."""
    return cache_root() / "openvino-compiled"


def _index_dir(cache: Path) -> Path:
    """Beside OpenVINO's cache: which compiled networks it holds, by this app's own key (see ``prepared_before``)."""
    return cache.with_name(cache.name + "-index")


def network_key(what: str, tag: bytes, precision: str, threads: int | None, tuned_for: str) -> str:
    """This app's name for one compiled network: the graph (which network of which checkpoint), its settings, the
    OpenVINO and app versions and the CPU's instruction set: what OpenVINO's own key depends on, as far as it is
    known before the graph is built."""
    import openvino as ov

    from .. import __version__
    from .devices import cpu_capability

    parts = [what, tag.hex(), precision, str(threads or 0), tuned_for, str(ov.get_version()), __version__,
             cpu_capability()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _cache_files(cache: Path) -> set[str]:
    try:
        return {p.name for p in cache.iterdir() if p.is_file()}
    except OSError:
        return set()


def prepared_before(cache: Path | None, key: str) -> bool:
    """Whether OpenVINO's cache holds the network of ``key`` already (compiled by an earlier start and still
    there), so that this start only loads it: a quick look, before the graph is built. Only decides whether
    "Preparing the model for this CPU…" is worth saying; what is loaded is checked on its first run."""
    if cache is None:
        return False
    try:
        names = (_index_dir(cache) / key).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(names) and all((cache / name).is_file() for name in names)


def _remember_prepared(cache: Path, key: str, before: set[str]) -> None:
    """Note the cache files this network's compile wrote (all of them when it was loaded from the cache)."""
    files = _cache_files(cache)
    written = (files - before) or files
    if not written:
        return
    try:
        index = _index_dir(cache)
        index.mkdir(parents=True, exist_ok=True)
        (index / key).write_text("\n".join(sorted(written)), encoding="ascii")
    except (OSError, UnicodeEncodeError):  # a read-only cache: the message is said again next time, nothing worse
        pass


def _clean_cache(folder: Path, everything: bool = False) -> None:
    """Remove whatever in the cache folder is not a plain file (a FIFO or a link to /dev/zero would hang the
    runtime reading it), or with ``everything`` all of it. OpenVINO rebuilds what is missing."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if everything or not stat.S_ISREG(entry.lstat().st_mode):
                entry.unlink()
        except OSError:
            pass


class OpenVINORuntime:
    """The network built as an OpenVINO graph straight from the checkpoint's arrays, compiled for this CPU.

    Nothing is converted, and only OpenVINO's compiled form is cached, keyed by OpenVINO on the graph, all its
    weights and the settings. The graph carries the checkpoint's sha256 as a constant output, so a compiled
    network read back from the cache proves, on its first run, which checkpoint it was built from; one that
    shows another (a planted or mixed-up entry) is thrown away with the cache and compiled afresh. The
    earlier-stage gradient graphs are built on first use, the same way.

    ``tuned_for="latency"`` (the window): one photo at a time, every core on it. ``"throughput"`` (classify over
    a folder): OpenVINO's streams, one per core or so, each running its own photo; ``parallel`` passes are
    worth having under way, and ``infer`` spreads a batch over them. The earlier-stage gradients, needed for
    one photo at a time, are always tuned for latency.
    """

    name: RuntimeName = "openvino"

    def __init__(self, checkpoint: Checkpoint, precision: Precision = "fp32", threads: int | None = None,
                 cache_dir: Path | None = None, progress: Progress | None = None, tuned_for: str = "latency") -> None:
        self.device = Device("cpu")
        self.precision, self.threads = precision, threads
        self.cache_dir = compiled_cache_dir() if cache_dir is None else cache_dir
        self.timings: dict[str, float] = {}
        self._state = checkpoint.state
        self._tag = bytes.fromhex(checkpoint.sha256)
        self._stages: dict[str, _Network] = {}
        say = progress or (lambda _text: None)
        key = network_key("network", self._tag, precision, threads, tuned_for)
        if not prepared_before(self.cache_dir, key):  # building and compiling take seconds; loading it, a moment
            say("Preparing the model for this CPU…")
        self._main = _Network(self, lambda tag: _build("network", lambda ov_net: ov_net.build_network(self._state, tag=tag)),
                              tuned_for, key)
        self.timings.update(self._main.timings)
        self.from_cache = self._main.from_cache

    @property
    def parallel(self) -> int:
        return self._main.requests

    def infer(self, batch: np.ndarray) -> Outputs:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if len(x) < 2 or self.parallel < 2:
            return self._answer(lambda: self._main.run([x]), len(x))
        parts = [self.start(part) for part in np.array_split(x, min(self.parallel, len(x)))]
        answers = [part.result() for part in parts]
        return np.concatenate([a[0] for a in answers]), np.concatenate([a[1] for a in answers])

    def start(self, batch: np.ndarray) -> Pending[Outputs]:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if not self._main.verified:  # the first pass proves the compiled network's checkpoint: run it through
            return Pending.now(lambda: self._answer(lambda: self._main.run([x]), len(x)))
        try:
            request = self._main.start([x])
        except Exception as exc:
            error = BackendError(f"OpenVINO failed while running the model ({_first_line(exc)})")
            return Pending.now(lambda: _raise(error))
        return Pending(lambda: self._answer(request.result, len(x)), request.done)

    def _answer(self, values: Callable[[], list[np.ndarray]], n: int) -> Outputs:
        try:
            out = values()
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"OpenVINO failed while running the model ({_first_line(exc)})") from exc
        feats, logits = (np.asarray(o, dtype=np.float32) for o in out[:2])
        if feats.shape[0] != n or logits.shape[0] != n:
            raise BackendError(f"OpenVINO returned {logits.shape[0]} answers for {n} photos")
        return feats, logits

    def gradients(self, batch: np.ndarray, layer: Layer, seeds: np.ndarray) -> Outputs:
        network = self._stages.get(layer)
        if network is None:
            network = _Network(self, lambda tag: _build(
                f"{layer} gradients", lambda ov_net: ov_net.build_stage_gradients(self._state, layer, tag=tag)))
            self._stages[layer] = network
        try:
            out = network.run([np.ascontiguousarray(batch, dtype=np.float32), np.ascontiguousarray(seeds, dtype=np.float32)])
            return np.asarray(out[1], dtype=np.float32), np.asarray(out[2], dtype=np.float32)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"OpenVINO failed while computing the {layer} gradients ({_first_line(exc)})") from exc

    def take_note(self) -> str | None:
        return None


def _raise(error: BaseException) -> Outputs:
    raise error


def _build(what: str, build: Callable[[Any], Any]) -> Any:
    from . import ov_net

    try:
        return build(ov_net)
    except Exception as exc:
        raise BackendError(f"OpenVINO could not build the {what} ({_first_line(exc)})") from exc


class _Network:
    """One compiled graph of a runtime, checked on its first run to be the checkpoint's own (see OpenVINORuntime),
    with the infer requests its tuning asks for."""

    def __init__(self, runtime: OpenVINORuntime, build: Callable[[bytes], Any], tuned_for: str = "latency",
                 key: str | None = None) -> None:
        self._runtime, self._graph, self._tuned_for, self._key = runtime, build(runtime._tag), tuned_for, key
        self.timings: dict[str, float] = {}
        self.verified = False
        self._compile()

    def _compile(self) -> None:
        from . import ov_net

        rt = self._runtime
        cache: Path | None = rt.cache_dir
        try:
            assert cache is not None
            cache.mkdir(parents=True, exist_ok=True)
            _clean_cache(cache)
        except (OSError, AssertionError):
            cache = None  # a read-only or odd cache folder only means compiling again next time
        before = _cache_files(cache) if cache is not None else set()
        start = time.perf_counter()
        try:
            self._compiled = ov_net.compile_network(self._graph, rt.precision, rt.threads, cache, self._tuned_for)
            self.requests = max(1, int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except Exception as exc:
            raise BackendError(f"OpenVINO could not compile the model ({_first_line(exc)})") from exc
        self._free = deque(self._compiled.create_infer_request() for _ in range(self.requests))
        self._busy: deque[Pending[list[np.ndarray]]] = deque()
        self.timings["compile_ms"] = (time.perf_counter() - start) * 1000
        try:
            self.from_cache = bool(self._compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:  # a runtime that does not report it
            self.from_cache = False
        if cache is not None and self._key is not None:
            _remember_prepared(cache, self._key, before)

    def start(self, inputs: list[np.ndarray]) -> Pending[list[np.ndarray]]:
        """Begin a pass on a free request (when all are busy, the oldest pass is collected first); its outputs are
        copied out when it is collected, and the request given back."""
        while not self._free:
            try:
                self._busy[0].result()
            except Exception:  # its error stays with it, for whoever started it
                pass
        request = self._free.popleft()
        try:
            request.start_async(inputs)
        except Exception:
            self._free.append(request)
            raise

        def collect() -> list[np.ndarray]:
            try:
                request.wait()
                return [np.array(request.get_tensor(o).data, copy=True) for o in self._compiled.outputs]
            finally:
                self._busy.remove(started)
                self._free.append(request)

        started = Pending(collect, lambda: bool(request.wait_for(0)))
        self._busy.append(started)
        return started

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        values = self.start(inputs).result()
        if not self.verified:
            if bytes(np.asarray(values[-1], dtype=np.uint8)) != self._runtime._tag:
                if not self.from_cache:
                    raise BackendError("OpenVINO's compiled network does not carry the checkpoint it was built from")
                _clean_cache(self._runtime.cache_dir, everything=True)  # an entry that answers for another network
                self._compile()
                return self.run(inputs)
            self.verified = True
        return values


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
