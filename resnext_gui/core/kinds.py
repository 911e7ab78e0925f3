"""The choices the app offers, each named once: a Literal type and the tuple of its values (methods, layers, devices, runtimes, precisions)."""

from __future__ import annotations

from typing import Literal, TypeVar, get_args

Method = Literal["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam", "scorecam"]
METHODS: tuple[Method, ...] = get_args(Method)  # the CAM methods (core/cam.py)
DEFAULT_METHOD: Method = "gradcam"

Layer = Literal["layer4", "layer3", "layer2"]
LAYERS: tuple[Layer, ...] = get_args(Layer)  # the stages a map can be computed at: 7x7, 14x14, 28x28
DEFAULT_LAYER: Layer = "layer4"

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[DeviceChoice, ...] = get_args(DeviceChoice)  # what --device and Device → take ("cuda:1" too)

Backend = Literal["auto", "torch", "openvino"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)  # the CPU runtime asked for; "auto": OpenVINO where it runs

RuntimeName = Literal["openvino", "torch"]  # the runtime that computes the network

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

Tuning = Literal["latency", "throughput"]  # one photo at a time (the window), or folders (classify)
TUNINGS: tuple[Tuning, ...] = get_args(Tuning)

_T = TypeVar("_T", bound=str)


def choice(value: object, choices: tuple[_T, ...]) -> _T:
    """``value`` as one of ``choices`` (typed as they are); a ValueError naming them when it is none of them."""
    for option in choices:
        if value == option:
            return option
    raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
