"""Build torchvision's ResNeXt-50 32x4d, load a checked checkpoint into it, pick the device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.models import ResNet, resnext50_32x4d

from .cam import LAYERS
from .checkpoint import Checkpoint, read_checkpoint
from .errors import DeviceError
from .kinds import Layer
from .weights import WeightsSource

PARAMETER_COUNT = 25_028_904  # the paper's ResNeXt-50 (32x4d), torchvision's resnext50_32x4d


def build_model(num_classes: int = 1000, device: torch.device | str | None = None) -> ResNet:
    """The untrained network; only ever used with a checkpoint loaded into it. On the ``meta`` device it
    has every shape and no data, and costs nothing to make (a random initialisation takes ~0.3 s)."""
    with torch.device(device or "cpu"):
        return resnext50_32x4d(weights=None, num_classes=num_classes)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, else Apple MPS, else CPU. Asking for a device that is not there is a DeviceError."""
    name = (name or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is available (use --device cpu or auto)")
        return torch.device(name)
    if name == "mps":
        if not mps_ok:
            raise DeviceError("Apple MPS was requested but is not available (use --device cpu or auto)")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}: choose auto, cpu, cuda or mps")


def describe_device(device: torch.device) -> str:
    """A short label for the status bar: "CUDA · <GPU name>" or "CPU · N threads"."""
    if device.type == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "MPS · Apple GPU"
    return f"CPU · {torch.get_num_threads()} threads"


@dataclass
class LoadedModel:
    """A ready network on its device, with its class names and where its weights came from."""

    model: ResNet  # torchvision's resnext50_32x4d
    labels: list[str]
    source: WeightsSource
    device: torch.device
    checkpoint: Checkpoint  # the arrays the weights were made from (on the CPU they share its memory)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def load_state(state: dict[str, np.ndarray], device: torch.device | str = "cpu") -> ResNet:
    """torchvision's network with a checked checkpoint's arrays as its weights, on ``device``, in eval mode."""
    # the arrays become the network's weights (assign), sharing their memory on the CPU: no copy is made
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    model = build_model(int(state["fc.weight"].shape[0]), device="meta")
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in tensors:
            tensors[key] = torch.zeros((), dtype=value.dtype)  # a missing BatchNorm step counter starts at 0
    model.load_state_dict(tensors, strict=True, assign=True)
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_model(source: WeightsSource, device: torch.device | str = "cpu") -> LoadedModel:
    """Load and check a checkpoint strictly (``read_checkpoint``), then move the network to ``device`` in eval mode."""
    device = torch.device(device) if isinstance(device, str) else device
    checkpoint = read_checkpoint(source)
    return LoadedModel(load_state(checkpoint.state, device), checkpoint.labels, source, device, checkpoint)


def _check_layer(layer: Layer) -> None:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")


_STAGES = ("layer1", "layer2", "layer3", "layer4")


def forward_to(model: ResNet, x: torch.Tensor, layer: Layer = "layer4") -> torch.Tensor:
    """The network from the input up to and including stage ``layer`` (as in torchvision's ResNet.forward)."""
    _check_layer(layer)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for name in _STAGES[: _STAGES.index(layer) + 1]:
        x = getattr(model, name)(x)
    return x


def forward_from(model: ResNet, feats: torch.Tensor, layer: Layer = "layer4") -> torch.Tensor:
    """The rest of the network after stage ``layer``: later stages, global average pool, classifier."""
    _check_layer(layer)
    x = feats
    for name in _STAGES[_STAGES.index(layer) + 1 :]:
        x = getattr(model, name)(x)
    logits: torch.Tensor = model.fc(torch.flatten(model.avgpool(x), 1))
    return logits
