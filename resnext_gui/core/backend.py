"""CPU inference backends: OpenVINO (converted once per checkpoint, cached on disk) with PyTorch as the fallback."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .files import cache_root
from .model import forward_from, forward_to

BACKENDS = ("auto", "torch", "openvino")
CACHE_FORMAT = 1  # bump when the converted network (the wrapper's outputs) changes
Progress = Callable[[str], None]


class BackendError(RuntimeError):
    """OpenVINO could not convert, compile or run the network; the caller uses PyTorch instead."""


def openvino_available() -> bool:
    """Whether the OpenVINO runtime can be imported (it is an optional dependency)."""
    try:
        import openvino  # noqa: F401
    except Exception:  # ImportError, or a broken installation failing to load its libraries
        return False
    return True


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is slower, not faster."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        pass
    cpu = getattr(torch._C, "_cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:
            pass
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Both(nn.Module):
    """The network with two outputs: the last stage's activations (for the analytic Grad-CAM) and the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = forward_to(self.model, x, "layer4")
        return feats, forward_from(self.model, feats, "layer4")


def probe_input(batch: int = 2) -> torch.Tensor:
    """A fixed, image-like input used to check a converted network against PyTorch."""
    gen = torch.Generator().manual_seed(1234)
    return torch.randn(batch, 3, 224, 224, generator=gen)


class OpenVINOBackend:
    """The network compiled by OpenVINO for the CPU: ``infer(batch) -> (layer4 activations, logits)``.

    The converted network (OpenVINO IR) is cached per checkpoint under ``cache_dir``, keyed by the
    checkpoint's sha256, the OpenVINO version and the precision. An entry is written to a temporary folder
    and renamed into place; its files' hashes are checked before every use, and an entry that fails the check
    is rebuilt. A freshly converted network must match PyTorch on a probe input before it is cached or used.
    """

    name = "openvino"

    def __init__(self, model: nn.Module, checkpoint: Path, precision: str = "fp32", threads: int | None = None,
                 cache_dir: Path | None = None, progress: Progress | None = None) -> None:
        import openvino as ov

        self.precision = precision
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "openvino"
        self.converted = False  # True when this load converted the network (no usable cache entry)
        self.timings: dict[str, float] = {}
        say = progress or (lambda _text: None)
        self._core = ov.Core()
        start = time.perf_counter()
        self.key = self._key(checkpoint, ov.get_version())
        self.timings["hash_ms"] = (time.perf_counter() - start) * 1000
        entry = self.cache_dir / self.key
        ir_model = self._read_entry(entry)
        if ir_model is None:
            say("Converting the model for OpenVINO (first use of these weights, a few seconds)…")
            start = time.perf_counter()
            ir_model = self._convert(model)
            self.timings["convert_ms"] = (time.perf_counter() - start) * 1000
            self.converted = True
        say("Compiling the model for this CPU…")
        start = time.perf_counter()
        config: dict[str, str | int] = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",  # OpenVINO's CPU default
                  "PERFORMANCE_HINT": "LATENCY"}                                        # is bf16 where native
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._compiled = self._core.compile_model(ir_model, "CPU", config)
            self._request = self._compiled.create_infer_request()
        except Exception as exc:
            raise BackendError(f"OpenVINO could not compile the model ({_first_line(exc)})") from exc
        self.timings["compile_ms"] = (time.perf_counter() - start) * 1000
        if self.converted:
            self._check_against(model, ir_model)  # a wrong conversion is never cached nor used
            self._write_entry(entry, ir_model)

    # ---- running ----
    def infer(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            out = self._request.infer([np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)])
            feats = torch.from_numpy(np.array(out[self._compiled.outputs[0]], dtype=np.float32, copy=True))
            logits = torch.from_numpy(np.array(out[self._compiled.outputs[1]], dtype=np.float32, copy=True))
        except Exception as exc:
            raise BackendError(f"OpenVINO failed while running the model ({_first_line(exc)})") from exc
        if feats.shape[0] != batch.shape[0] or logits.shape[0] != batch.shape[0]:
            raise BackendError(f"OpenVINO returned {logits.shape[0]} answers for {batch.shape[0]} photos")
        return feats, logits

    # ---- building ----
    def _key(self, checkpoint: Path, version: str) -> str:
        runtime = version.split("-")[0]
        return f"{file_sha256(checkpoint)[:24]}-ov{runtime}-{self.precision}-v{CACHE_FORMAT}"

    def _convert(self, model: nn.Module) -> Any:
        import openvino as ov

        wrapper = _Both(model).eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's remarks on its own deprecation are not for the user
                return ov.convert_model(wrapper, example_input=probe_input(1),
                                        input=[ov.PartialShape([-1, 3, 224, 224])])
        except Exception as exc:
            raise BackendError(f"OpenVINO could not convert the model ({_first_line(exc)})") from exc

    def _check_against(self, model: nn.Module, ir_model: Any) -> None:
        """The converted network must give PyTorch's answers on a probe input (compiled in fp32 for the check)."""
        x = probe_input()
        with torch.inference_mode():
            ref_feats, ref_logits = _Both(model).eval()(x)
        compiled = self._compiled
        if self.precision != "fp32":
            compiled = self._core.compile_model(ir_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = compiled.create_infer_request().infer([x.numpy()])
        feats, logits = (torch.from_numpy(np.asarray(out[compiled.outputs[i]])) for i in (0, 1))
        prob_diff = (torch.softmax(logits, 1) - torch.softmax(ref_logits, 1)).abs().max().item()
        scale = ref_feats.abs().max().item() or 1.0
        feat_diff = (feats - ref_feats).abs().max().item() / scale
        if not (prob_diff <= 1e-5 and feat_diff <= 1e-3):
            raise BackendError(f"the OpenVINO conversion does not match PyTorch (probabilities differ by "
                               f"{prob_diff:.2g}, activations by {feat_diff:.2g} of their range)")

    # ---- the cache ----
    def _read_entry(self, entry: Path) -> Any:
        """The cached network, or None when there is none or it fails its check (it is then removed)."""
        manifest = entry / "manifest.json"
        if not manifest.is_file():
            return None
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            for name in ("model.xml", "model.bin"):
                if file_sha256(entry / name) != meta["files"][name]:
                    raise ValueError(f"{name} does not match its recorded hash")
            if meta.get("key") != self.key:
                raise ValueError("the entry was made for another checkpoint or runtime")
            return self._core.read_model(str(entry / "model.xml"), str(entry / "model.bin"))
        except Exception:  # damaged, truncated, foreign: rebuild it rather than trust it
            shutil.rmtree(entry, ignore_errors=True)
            return None

    def _write_entry(self, entry: Path, ir_model: Any) -> None:
        """Save atomically: into a temporary folder beside the entry, then renamed into place."""
        import openvino as ov

        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{self.key}.", dir=self.cache_dir))
        except OSError:
            return  # a read-only or full cache folder only means converting again next time
        try:
            ov.save_model(ir_model, str(tmp / "model.xml"), compress_to_fp16=False)
            files = {name: file_sha256(tmp / name) for name in ("model.xml", "model.bin")}
            meta = {"key": self.key, "files": files, "precision": self.precision, "format": CACHE_FORMAT}
            (tmp / "manifest.json").write_text(json.dumps(meta), encoding="utf-8")
            for name in ("model.xml", "model.bin", "manifest.json"):
                with open(tmp / name, "rb") as fh:
                    os.fsync(fh.fileno())
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(tmp, entry)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
