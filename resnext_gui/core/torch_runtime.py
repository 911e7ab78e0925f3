"""The PyTorch runtime: torchvision's network on the GPU (or the CPU when asked), with the CPU as fallback on out-of-memory."""

from __future__ import annotations

import contextlib
import copy
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from torchvision.models import ResNet

from .checkpoint import Checkpoint
from .devices import Device
from .kinds import Layer, Precision, RuntimeName
from .model import forward_to, load_state
from .runtimes import Pending
from .weights import WeightsSource


def is_out_of_memory(exc: BaseException) -> bool:
    kinds = tuple(k for k in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
                  if isinstance(k, type))
    return isinstance(exc, kinds) or "out of memory" in str(exc).lower()


_LATER = {"layer3": ("layer4",), "layer2": ("layer3", "layer4")}


class TorchRuntime:
    """torchvision's resnext50_32x4d with the checkpoint's tensors, on ``device``."""

    name: RuntimeName = "torch"
    from_cache = False
    parallel = 1  # one batch at a time: ``start`` computes it at once

    def __init__(self, checkpoint: Checkpoint, device: Device, precision: Precision = "fp32") -> None:
        self.device = device
        self.precision = precision
        self.model: ResNet = load_state(checkpoint.state, torch.device(str(device)))
        self._cpu_fallback: ResNet | None = None
        self._note: str | None = None

    @classmethod
    def from_source(cls, source: WeightsSource, device: Device | str = "cpu", precision: Precision = "fp32") -> TorchRuntime:
        from .checkpoint import read_checkpoint

        dev = device if isinstance(device, Device) else Device(*_split(device))
        return cls(read_checkpoint(source), dev, precision)

    def _autocast(self, device: torch.device) -> AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _on_device(self, run: Any, batch: np.ndarray) -> Any:
        """Run on the device; when the GPU runs out of memory, on a CPU copy of the network instead."""
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        try:
            return run(self.model, x.to(str(self.device)))
        except RuntimeError as exc:
            if self.device.type == "cpu" or not is_out_of_memory(exc):
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if self._cpu_fallback is None:
                self._cpu_fallback = copy.deepcopy(self.model).to("cpu")
            self._note = f"ran on the CPU: the {self.device.type.upper()} device ran out of memory"
            return run(self._cpu_fallback, x)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def run(model: ResNet, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode(), self._autocast(x.device):
                feats = forward_to(model, x, "layer4")
                logits = model.fc(torch.flatten(model.avgpool(feats), 1))
            return feats.float().cpu().numpy(), logits.float().cpu().numpy()

        result: tuple[np.ndarray, np.ndarray] = self._on_device(run, batch)
        return result

    def start(self, batch: np.ndarray) -> Pending[tuple[np.ndarray, np.ndarray]]:
        return Pending.now(lambda: self.infer(batch))

    def gradients(self, batch: np.ndarray, layer: Layer, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if layer not in _LATER:
            raise ValueError(f"no gradients needed at {layer!r}")

        def run(model: ResNet, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():
                acts = forward_to(model, x, layer)
            s = torch.from_numpy(np.ascontiguousarray(seeds, dtype=np.float32)).to(x.device)
            grads = []
            with torch.enable_grad():
                a = acts.detach().requires_grad_(True)
                h = a
                for name in _LATER[layer]:
                    h = getattr(model, name)(h)
                pooled = torch.flatten(model.avgpool(h), 1)  # (N, 2048)
                for k in range(s.shape[1]):
                    # photos in a batch are independent in eval mode: the gradient of the sum is per photo
                    score = (pooled * s[:, k]).sum()
                    (g,) = torch.autograd.grad(score, a, retain_graph=k + 1 < s.shape[1])
                    grads.append(g)
            return acts.float().cpu().numpy(), torch.stack(grads, dim=1).float().cpu().numpy()

        result: tuple[np.ndarray, np.ndarray] = self._on_device(run, batch)
        return result

    def take_note(self) -> str | None:
        note, self._note = self._note, None
        return note


def _split(name: str) -> tuple[str, int | None]:
    kind, _, index = name.partition(":")
    return kind, int(index) if index else None
