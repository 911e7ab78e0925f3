"""Build torchvision's ResNeXt-50 32x4d, load a checkpoint safely, find its labels, pick the device."""

from __future__ import annotations

import json
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.models import ResNet, resnext50_32x4d

from .errors import DeviceError, WeightsError
from .labels import imagenet_labels
from .weights import DEFAULT_VARIANT, WeightsSource, not_a_regular_file

PARAMETER_COUNT = 25_028_904  # the paper's ResNeXt-50 (32x4d), torchvision's resnext50_32x4d
LAYERS = ("layer4", "layer3", "layer2")


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


# The official file is 96 MB (25 million float32 numbers); a fine-tune with a much larger head (say 20,000
# classes) stays well under four times that. Anything larger is refused before it is read, so a small file
# that unpacks to gigabytes (a zip bomb) cannot exhaust memory.
MAX_CHECKPOINT_BYTES = 4 * DEFAULT_VARIANT.size_bytes


def _check_size(path: Path, size: int) -> None:
    """Refuse a file whose data, as declared, is more than a ResNeXt-50 checkpoint can need."""
    declared = size
    if path.suffix != ".safetensors":
        try:
            if zipfile.is_zipfile(path):  # torch.save's format: a zip of uncompressed tensor records
                with zipfile.ZipFile(path) as zf:
                    declared = sum(info.file_size for info in zf.infolist())
        except (zipfile.BadZipFile, OSError, ValueError):
            pass  # torch.load will say it is damaged
    if declared > MAX_CHECKPOINT_BYTES:
        raise WeightsError(
            f"refused to load {path}: its data is {declared / 1e6:,.0f} MB when unpacked, more than a "
            f"ResNeXt-50 32x4d checkpoint can need (at most {MAX_CHECKPOINT_BYTES / 1e6:,.0f} MB)"
        )


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], list[str] | None]:
    """Read tensors and any embedded labels without running code from the file."""
    try:
        st = path.stat()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    problem = not_a_regular_file(path, st)
    if problem:
        raise WeightsError(problem)
    if st.st_size == 0:
        raise WeightsError(f"weights file {path} is empty")
    _check_size(path, st.st_size)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():  # torch's remarks on a file's contents are not for the user
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "global" in text.lower():  # torch's safe unpickler met a class or function it won't build
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise WeightsError(
                f"refused to load {path}: besides tensors it holds Python objects{what}, and loading "
                f"them could run code. Only plain state_dicts (or .safetensors) are accepted"
            ) from None
        raise WeightsError(f"weights file {path} is truncated or not a PyTorch checkpoint") from None
    except Exception as exc:  # the safe unpickler raises KeyError, RuntimeError, EOFError... on bad bytes
        first = (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__
        raise WeightsError(f"weights file {path} is truncated or not a PyTorch checkpoint ({first})") from None
    labels = None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        labels = obj.get("labels")
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} is not a state_dict (a mapping of parameter names to tensors)")
    if labels is not None and not (isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)):
        raise WeightsError(f"{path}: 'labels' must be a list of strings")
    return obj, list(labels) if labels is not None else None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], list[str] | None]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"weights file {path} is truncated or not a safetensors file ({exc})") from None
    labels = None
    if "labels" in meta:
        try:
            labels = json.loads(meta["labels"])
        except json.JSONDecodeError:
            labels = meta["labels"].splitlines()
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise WeightsError(f"{path}: the 'labels' metadata must be a JSON list of strings")
    return tensors, labels


def _sidecar_labels(path: Path) -> list[str] | None:
    folder = path.parent
    txt, js = folder / "labels.txt", folder / "labels.json"
    if js.is_file():
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"cannot read {js}: {exc}") from None
        if isinstance(data, dict):  # {"0": "cat", "1": "dog"}: the keys must be exactly 0..N-1
            expected = [str(i) for i in range(len(data))]
            if sorted(data, key=lambda k: (len(k), k)) != expected:
                odd = sorted(set(data) - set(expected), key=str)[:3]
                raise WeightsError(
                    f"{js}: its keys must be the class numbers 0 to {len(data) - 1}, each once "
                    f"(found {', '.join(repr(k) for k in odd)}); otherwise the labels would be shifted"
                )
            data = [data[k] for k in expected]
        if not isinstance(data, list):
            raise WeightsError(f"{js} must hold a list of class names")
        if not all(isinstance(x, str) for x in data):
            bad = next(x for x in data if not isinstance(x, str))
            raise WeightsError(f"{js}: every class name must be a string (found {type(bad).__name__} {bad!r:.40})")
        return data
    if txt.is_file():
        try:
            lines = txt.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise WeightsError(f"cannot read {txt}: {exc}") from None
        return [line.strip() for line in lines if line.strip()]
    return None


def _check_architecture(state: dict[str, torch.Tensor], path: Path) -> int:
    """Compare keys and shapes with resnext50_32x4d; return the number of classes from fc.weight."""
    fc = state.get("fc.weight")
    if fc is None or fc.ndim != 2:
        raise WeightsError(f"{path} is not a ResNeXt-50 32x4d checkpoint: it has no classifier 'fc.weight'")
    num_classes = int(fc.shape[0])
    if num_classes < 1:
        raise WeightsError(f"{path} has a classifier with 0 classes: there is nothing it could predict")
    reference = build_model(num_classes, device="meta").state_dict()
    # BatchNorm's step counter is not needed to run the network; older saves leave it out
    missing = [k for k in reference if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in reference]
    wrong = [
        f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in reference.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing weights (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of the wrong shape (e.g. {wrong[0]})")
        hint = ""
        conv2 = state.get("layer1.0.conv2.weight")
        if conv2 is not None and conv2.ndim == 4 and conv2.shape[1] == conv2.shape[0]:
            hint = " — it looks like a plain ResNet, not a ResNeXt (its 3x3 convolutions are not grouped)"
        raise WeightsError(f"{path} is not a ResNeXt-50 32x4d checkpoint: {'; '.join(parts)}{hint}")
    return num_classes


def _check_tensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """Every tensor must be plain, real, finite data: no meta or sparse tensors, no integers, no NaN/inf."""
    for name, tensor in state.items():
        if tensor.is_meta or tensor.layout != torch.strided or tensor.is_quantized:
            kind = "meta (shape only, no data)" if tensor.is_meta else f"{tensor.layout}".replace("torch.", "")
            raise WeightsError(f"{path}: tensor {name} is a {kind} tensor, not plain weights")
        if name.endswith(".num_batches_tracked"):
            if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
                raise WeightsError(f"{path}: tensor {name} is {tensor.dtype}, expected an integer count")
            continue
        if not tensor.is_floating_point():
            raise WeightsError(f"{path}: tensor {name} is {str(tensor.dtype).replace('torch.', '')}, "
                               "expected floating-point weights")
        if not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{path}: tensor {name} holds NaN or infinite values; the checkpoint is damaged "
                               "(or was saved from a training run that diverged)")


@dataclass
class LoadedModel:
    """A ready network on its device, with its class names and where its weights came from."""

    model: ResNet  # torchvision's resnext50_32x4d
    labels: list[str]
    source: WeightsSource
    device: torch.device

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def load_model(source: WeightsSource, device: torch.device | str = "cpu") -> LoadedModel:
    """Load and check a checkpoint strictly, then move the network to ``device`` in eval mode."""
    device = torch.device(device) if isinstance(device, str) else device
    path = Path(source.path)
    state, labels = _read_state_dict(path)
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    num_classes = _check_architecture(state, path)
    _check_tensors(state, path)
    if labels is None:
        labels = _sidecar_labels(path)
    if labels is None:
        if num_classes == 1000:
            labels = imagenet_labels()
        else:
            labels = [f"class {i}" for i in range(num_classes)]
    if len(labels) != num_classes:
        raise WeightsError(f"{path}: the checkpoint has {num_classes} classes but {len(labels)} labels")
    model = build_model(num_classes, device="meta")  # the checkpoint's tensors become its weights (assign)
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=value.dtype)  # a missing BatchNorm step counter starts at 0
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # fp16/bf16 files run in fp32
    model.load_state_dict(state, strict=True, assign=True)
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedModel(model, labels, source, device)


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")


_STAGES = ("layer1", "layer2", "layer3", "layer4")


def forward_to(model: ResNet, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
    """The network from the input up to and including stage ``layer`` (as in torchvision's ResNet.forward)."""
    _check_layer(layer)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for name in _STAGES[: _STAGES.index(layer) + 1]:
        x = getattr(model, name)(x)
    return x


def forward_from(model: ResNet, feats: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
    """The rest of the network after stage ``layer``: later stages, global average pool, classifier."""
    _check_layer(layer)
    x = feats
    for name in _STAGES[_STAGES.index(layer) + 1 :]:
        x = getattr(model, name)(x)
    logits: torch.Tensor = model.fc(torch.flatten(model.avgpool(x), 1))
    return logits
