"""The runtimes that compute the network: OpenVINO on the CPU (no torch), PyTorch for GPUs and as the fallback."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .checkpoint import Checkpoint
from .devices import Device
from .errors import BackendError
from .files import cache_root

BACKENDS = ("auto", "torch", "openvino")
Progress = Callable[[str], None]


class Runtime(Protocol):
    """What the Classifier needs of a runtime. Batches are (N, 3, 224, 224) float32, normalised."""

    name: str  # "openvino" or "torch"
    device: Device
    from_cache: bool  # the compiled network came from OpenVINO's cache (this start skipped compiling)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(last-stage activations (N, 2048, 7, 7), logits (N, classes)), float32."""
        ...

    def gradients(self, batch: np.ndarray, layer: str, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    """

    name = "openvino"

    def __init__(self, checkpoint: Checkpoint, precision: str = "fp32", threads: int | None = None,
                 cache_dir: Path | None = None, progress: Progress | None = None) -> None:
        self.device = Device("cpu")
        self.precision, self.threads = precision, threads
        self.cache_dir = compiled_cache_dir() if cache_dir is None else cache_dir
        self.timings: dict[str, float] = {}
        self._state = checkpoint.state
        self._tag = bytes.fromhex(checkpoint.sha256)
        self._stages: dict[str, _Network] = {}
        say = progress or (lambda _text: None)
        say("Preparing the model for this CPU…")
        self._main = _Network(self, lambda tag: _build("network", lambda ov_net: ov_net.build_network(self._state, tag=tag)))
        self.timings.update(self._main.timings)
        self.from_cache = self._main.from_cache

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            out = self._main.run([np.ascontiguousarray(batch, dtype=np.float32)])
            feats, logits = (np.array(o, dtype=np.float32, copy=True) for o in out[:2])
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"OpenVINO failed while running the model ({_first_line(exc)})") from exc
        if feats.shape[0] != batch.shape[0] or logits.shape[0] != batch.shape[0]:
            raise BackendError(f"OpenVINO returned {logits.shape[0]} answers for {batch.shape[0]} photos")
        return feats, logits

    def gradients(self, batch: np.ndarray, layer: str, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        network = self._stages.get(layer)
        if network is None:
            network = _Network(self, lambda tag: _build(
                f"{layer} gradients", lambda ov_net: ov_net.build_stage_gradients(self._state, layer, tag=tag)))
            self._stages[layer] = network
        try:
            out = network.run([np.ascontiguousarray(batch, dtype=np.float32), np.ascontiguousarray(seeds, dtype=np.float32)])
            return np.array(out[1], dtype=np.float32, copy=True), np.array(out[2], dtype=np.float32, copy=True)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"OpenVINO failed while computing the {layer} gradients ({_first_line(exc)})") from exc

    def take_note(self) -> str | None:
        return None


def _build(what: str, build: Callable[[Any], Any]) -> Any:
    from . import ov_net

    try:
        return build(ov_net)
    except Exception as exc:
        raise BackendError(f"OpenVINO could not build the {what} ({_first_line(exc)})") from exc


class _Network:
    """One compiled graph of a runtime, checked on its first run to be the checkpoint's own (see OpenVINORuntime)."""

    def __init__(self, runtime: OpenVINORuntime, build: Callable[[bytes], Any]) -> None:
        self._runtime, self._graph = runtime, build(runtime._tag)
        self.timings: dict[str, float] = {}
        self._verified = False
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
        start = time.perf_counter()
        try:
            self._compiled = ov_net.compile_network(self._graph, rt.precision, rt.threads, cache)
        except Exception as exc:
            raise BackendError(f"OpenVINO could not compile the model ({_first_line(exc)})") from exc
        self._request = self._compiled.create_infer_request()
        self.timings["compile_ms"] = (time.perf_counter() - start) * 1000
        try:
            self.from_cache = bool(self._compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:  # a runtime that does not report it
            self.from_cache = False

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self._request.infer(inputs)
        values = [out[o] for o in self._compiled.outputs]
        if not self._verified:
            if bytes(np.asarray(values[-1], dtype=np.uint8)) != self._runtime._tag:
                if not self.from_cache:
                    raise BackendError("OpenVINO's compiled network does not carry the checkpoint it was built from")
                _clean_cache(self._runtime.cache_dir, everything=True)  # an entry that answers for another network
                self._compile()
                return self.run(inputs)
            self._verified = True
        return values


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
