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


def _clean_cache(folder: Path) -> None:
    """Remove whatever in the cache folder is not a plain file (a FIFO or a link to /dev/zero would hang the
    runtime reading it). OpenVINO checks each blob against its key and rebuilds what does not match."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if not stat.S_ISREG(entry.lstat().st_mode):
                entry.unlink()
        except OSError:
            pass


class OpenVINORuntime:
    """The network built as an OpenVINO graph straight from the checkpoint's arrays, compiled for this CPU.

    Nothing is converted and nothing but OpenVINO's compiled form is cached: its cache key is computed by
    OpenVINO from the graph and all its weights, so an entry can only ever answer for the same network.
    The earlier-stage gradient graphs are built on first use.
    """

    name = "openvino"

    def __init__(self, checkpoint: Checkpoint, precision: str = "fp32", threads: int | None = None,
                 cache_dir: Path | None = None, progress: Progress | None = None) -> None:
        from . import ov_net

        self.device = Device("cpu")
        self.precision, self.threads = precision, threads
        self.cache_dir = compiled_cache_dir() if cache_dir is None else cache_dir
        self.timings: dict[str, float] = {}
        self._state = checkpoint.state
        self._stages: dict[str, Any] = {}
        say = progress or (lambda _text: None)
        say("Preparing the model for this CPU…")
        start = time.perf_counter()
        try:
            graph = ov_net.build_network(checkpoint.state)
        except Exception as exc:
            raise BackendError(f"OpenVINO could not build the network ({_first_line(exc)})") from exc
        self.timings["build_ms"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        self._compiled = self._compile(graph)
        self._request = self._compiled.create_infer_request()
        self.timings["compile_ms"] = (time.perf_counter() - start) * 1000
        try:
            self.from_cache = bool(self._compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:  # a runtime that does not report it
            self.from_cache = False

    def _compile(self, graph: Any) -> Any:
        from . import ov_net

        cache: Path | None = self.cache_dir
        try:
            assert cache is not None
            cache.mkdir(parents=True, exist_ok=True)
            _clean_cache(cache)
        except (OSError, AssertionError):
            cache = None  # a read-only or odd cache folder only means compiling again next time
        try:
            return ov_net.compile_network(graph, self.precision, self.threads, cache)
        except Exception as exc:
            raise BackendError(f"OpenVINO could not compile the model ({_first_line(exc)})") from exc

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            out = self._request.infer([np.ascontiguousarray(batch, dtype=np.float32)])
            feats = np.array(out[self._compiled.outputs[0]], dtype=np.float32, copy=True)
            logits = np.array(out[self._compiled.outputs[1]], dtype=np.float32, copy=True)
        except Exception as exc:
            raise BackendError(f"OpenVINO failed while running the model ({_first_line(exc)})") from exc
        if feats.shape[0] != batch.shape[0] or logits.shape[0] != batch.shape[0]:
            raise BackendError(f"OpenVINO returned {logits.shape[0]} answers for {batch.shape[0]} photos")
        return feats, logits

    def gradients(self, batch: np.ndarray, layer: str, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from . import ov_net

        compiled = self._stages.get(layer)
        if compiled is None:
            try:
                compiled = self._compile(ov_net.build_stage_gradients(self._state, layer))
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"OpenVINO could not build the {layer} gradients ({_first_line(exc)})") from exc
            self._stages[layer] = compiled
        try:
            out = compiled.create_infer_request().infer(
                [np.ascontiguousarray(batch, dtype=np.float32), np.ascontiguousarray(seeds, dtype=np.float32)])
            acts = np.array(out[compiled.outputs[1]], dtype=np.float32, copy=True)
            grads = np.array(out[compiled.outputs[2]], dtype=np.float32, copy=True)
        except Exception as exc:
            raise BackendError(f"OpenVINO failed while computing the {layer} gradients ({_first_line(exc)})") from exc
        return acts, grads

    def take_note(self) -> str | None:
        return None


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
