"""ResNeXt-50 32x4d built directly as an OpenVINO graph from a checkpoint's arrays: predictions and Grad-CAM gradients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# OpenVINO's telemetry never runs: the package __init__ makes openvino_telemetry unimportable first.
import openvino as ov
import openvino.opset1 as ops1  # MaxPool-1: one output, the values
import openvino.opset13 as ops

from .errors import OpenVINOError, WeightsError
from .kinds import Layer, Precision

BN_EPS = 1e-5  # torchvision's BatchNorm2d default
GROUPS = 32  # the "32" of 32x4d: cardinality of every 3x3 convolution
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (stage, blocks, planes, stride of its first block): torchvision's resnext50_32x4d
STAGES = (("layer1", 3, 64, 1), ("layer2", 4, 128, 2), ("layer3", 6, 256, 2), ("layer4", 3, 512, 2))
GRADIENT_LAYERS = ("layer3", "layer2")
FEATURES = 2048  # channels of layer4, the classifier's input
PRECISIONS = {"fp32": "f32", "f32": "f32", "bf16": "bf16"}  # ours -> OpenVINO's INFERENCE_PRECISION_HINT
TUNINGS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}  # ours -> OpenVINO's PERFORMANCE_HINT


@dataclass(frozen=True)
class _Conv:
    """A convolution with its BatchNorm folded in: torch's weight layout [out, in/groups, k, k] and a bias."""

    weight: np.ndarray
    bias: np.ndarray
    stride: int
    pad: int
    groups: int

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1])

    def out_size(self, size: int) -> int:
        return (size + 2 * self.pad - self.kernel) // self.stride + 1

    def filters(self) -> np.ndarray:
        """OpenVINO's filter layout: [out, in, k, k], or [groups, out/groups, in/groups, k, k] when grouped.
        The same array serves the input-gradient (backprop-data) op, whose first axes read [in, out]; each op
        gets its own constant: with one shared, OpenVINO 2026.4's CPU plugin got this graph's gradients wrong."""
        if self.groups == 1:
            return self.weight
        out, per_group, k, _ = self.weight.shape
        return self.weight.reshape(self.groups, out // self.groups, per_group, k, k)


@dataclass(frozen=True)
class _Block:
    """One bottleneck block as built: its convolutions, the ReLU outputs backpropagation masks with, and the
    spatial size of its input."""

    conv1: _Conv
    conv2: _Conv
    conv3: _Conv
    down: _Conv | None
    h1: ov.Node
    h2: ov.Node
    out: ov.Node
    size_in: int


@dataclass(frozen=True)
class _Forward:
    logits: ov.Node
    stages: dict[str, ov.Node]
    blocks: dict[str, list[_Block]]


def _array(state: Mapping[str, np.ndarray], key: str, shape: Sequence[int]) -> np.ndarray:
    try:
        value = state[key]
    except KeyError:
        raise WeightsError(f"the checkpoint has no {key!r}: it is not a ResNeXt-50 32x4d") from None
    array = np.asarray(value, dtype=np.float32)
    if array.shape != tuple(shape):
        raise WeightsError(f"the checkpoint's {key!r} is {tuple(array.shape)}, expected {tuple(shape)}: "
                           "it is not a ResNeXt-50 32x4d")
    return array


def _fold(state: Mapping[str, np.ndarray], conv: str, bn: str, shape: tuple[int, int, int, int],
          stride: int, pad: int, groups: int = 1) -> _Conv:
    """The convolution ``conv`` followed by the BatchNorm ``bn`` (eval mode) as one convolution with a bias."""
    weight = _array(state, f"{conv}.weight", shape)
    out = shape[0]
    gamma, beta = _array(state, f"{bn}.weight", (out,)), _array(state, f"{bn}.bias", (out,))
    mean, var = _array(state, f"{bn}.running_mean", (out,)), _array(state, f"{bn}.running_var", (out,))
    scale = (gamma / np.sqrt(var + np.float32(BN_EPS))).astype(np.float32)
    folded = (weight * scale[:, None, None, None]).astype(np.float32)
    bias = (beta - mean * scale).astype(np.float32)
    return _Conv(np.ascontiguousarray(folded), bias, stride, pad, groups)


def _const(array: np.ndarray | Sequence[int] | Sequence[float], dtype: type = np.float32) -> ov.Node:
    return ops.constant(np.ascontiguousarray(np.asarray(array, dtype=dtype)))


def _conv(x: ov.Node, conv: _Conv) -> ov.Node:
    """Forward: the folded convolution plus its bias."""
    stride, pad = [conv.stride] * 2, [conv.pad] * 2
    if conv.groups == 1:
        y = ops.convolution(x, _const(conv.filters()), stride, pad, pad, [1, 1])
    else:
        y = ops.group_convolution(x, _const(conv.filters()), stride, pad, pad, [1, 1])
    return ops.add(y, _const(conv.bias.reshape(1, -1, 1, 1)))


def _conv_input_grad(g: ov.Node, conv: _Conv, size_in: int) -> ov.Node:
    """Backward: the gradient at the convolution's input from the one at its output (the bias drops out).
    A stride-2 convolution maps two input sizes to one output size; output_padding restores the right one."""
    stride, pad = [conv.stride] * 2, [conv.pad] * 2
    size_out = conv.out_size(size_in)
    extra = size_in - ((size_out - 1) * conv.stride - 2 * conv.pad + conv.kernel)
    op = ops.convolution_backprop_data if conv.groups == 1 else ops.group_convolution_backprop_data
    return op(g, _const(conv.filters()), stride, pads_begin=pad, pads_end=pad, dilations=[1, 1],
              auto_pad="explicit", output_padding=[extra, extra])


def _pixels(uint8_input: bool, mean: Sequence[float], std: Sequence[float]) -> tuple[ov.Node, ov.Node]:
    """The input parameter and the normalised NCHW float tensor the network starts from."""
    if not uint8_input:
        param = ops.parameter([-1, 3, INPUT_SIZE, INPUT_SIZE], np.float32, name="pixels")
        param.output(0).get_tensor().set_names({"pixels"})
        return param, param
    param = ops.parameter([-1, INPUT_SIZE, INPUT_SIZE, 3], np.uint8, name="pixels")
    param.output(0).get_tensor().set_names({"pixels"})
    x = ops.divide(ops.convert(param, "f32"), _const([255.0]))  # as ToTensor, then Normalize
    x = ops.divide(ops.subtract(x, _const(mean)), _const(std))
    return param, ops.transpose(x, _const([0, 3, 1, 2], np.int64))


def _forward(state: Mapping[str, np.ndarray], x: ov.Node) -> _Forward:
    fc_weight = np.asarray(state.get("fc.weight", np.zeros((0, 0), np.float32)))
    if fc_weight.ndim != 2 or fc_weight.shape[0] < 1:
        raise WeightsError("the checkpoint has no classifier 'fc.weight' (classes x 2048): it is not a ResNeXt-50 32x4d")
    classes = int(fc_weight.shape[0])
    stem = _fold(state, "conv1", "bn1", (64, 3, 7, 7), stride=2, pad=3)
    x = ops.relu(_conv(x, stem))
    x = ops1.max_pool(x, [2, 2], [1, 1], [1, 1], [3, 3], rounding_type="floor")
    size = (stem.out_size(INPUT_SIZE) + 2 - 3) // 2 + 1
    inplanes = 64
    stages: dict[str, ov.Node] = {}
    blocks: dict[str, list[_Block]] = {}
    for layer, count, planes, first_stride in STAGES:
        width, outplanes = planes * GROUPS * 4 // 64, planes * 4
        blocks[layer] = []
        for i in range(count):
            name, stride = f"{layer}.{i}", first_stride if i == 0 else 1
            c1 = _fold(state, f"{name}.conv1", f"{name}.bn1", (width, inplanes, 1, 1), 1, 0)
            c2 = _fold(state, f"{name}.conv2", f"{name}.bn2", (width, width // GROUPS, 3, 3), stride, 1, GROUPS)
            c3 = _fold(state, f"{name}.conv3", f"{name}.bn3", (outplanes, width, 1, 1), 1, 0)
            down = None
            if i == 0:  # the first block changes the channels (and the size): its shortcut is a 1x1 conv + BN
                down = _fold(state, f"{name}.downsample.0", f"{name}.downsample.1", (outplanes, inplanes, 1, 1), stride, 0)
            h1 = ops.relu(_conv(x, c1))
            h2 = ops.relu(_conv(h1, c2))
            shortcut = x if down is None else _conv(x, down)
            out = ops.relu(ops.add(_conv(h2, c3), shortcut))
            blocks[layer].append(_Block(c1, c2, c3, down, h1, h2, out, size))
            x, size, inplanes = out, c2.out_size(size), outplanes
        stages[layer] = x
    pooled = ops.reduce_mean(x, _const([2, 3], np.int64), keep_dims=False)
    weight = _array(state, "fc.weight", (classes, FEATURES))
    bias = _array(state, "fc.bias", (classes,))
    logits = ops.add(ops.matmul(pooled, _const(weight), False, True), _const(bias))
    return _Forward(logits, stages, blocks)


def _output(node: ov.Node, name: str) -> ov.Node:
    node.output(0).get_tensor().set_names({name})
    return ops.result(node, name=name)


def _tagged(results: list[ov.Node], tag: bytes | None) -> list[ov.Node]:
    """``tag`` as a last, constant output "tag" (uint8): compiled into the network, so a compiled network read
    back from a cache can show which checkpoint it was built from."""
    if tag is None:
        return results
    return [*results, _output(_const(np.frombuffer(tag, np.uint8), np.uint8), "tag")]


def build_network(state: Mapping[str, np.ndarray], uint8_input: bool = False,
                  mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                  tag: bytes | None = None) -> ov.Model:
    """torchvision's resnext50_32x4d in eval mode, its BatchNorms folded into the convolutions.

    Input "pixels": float32 [N, 3, 224, 224], normalised as the weights' transforms do; with ``uint8_input``
    uint8 [N, 224, 224, 3] RGB instead, scaled and normalised (``mean``, ``std``) inside the graph.
    Outputs: [0] "layer4", the last stage's activations [N, 2048, 7, 7]; [1] "logits" [N, classes]; with
    ``tag``, [2] "tag" (see _tagged). A checkpoint that is not a ResNeXt-50 32x4d is a WeightsError.
    """
    param, x = _pixels(uint8_input, mean, std)
    net = _forward(state, x)
    results = [_output(net.stages["layer4"], "layer4"), _output(net.logits, "logits")]
    return ov.Model(_tagged(results, tag), [param], "resnext50_32x4d")


def _mask(g: ov.Node, activation: ov.Node, nk: ov.Node, tail: Sequence[int]) -> ov.Node:
    """ReLU's backward: ``g`` (one row per photo and class, [N*K, C, h, w]) where the forward output
    ``activation`` ([N, C, h, w]) is positive, else 0."""
    positive = ops.unsqueeze(ops.convert(ops.greater(activation, _const([0.0])), "f32"), _const([1], np.int64))
    per_class = ops.reshape(g, ops.concat([nk, _const(tail, np.int64)], 0), special_zero=False)
    return ops.reshape(ops.multiply(per_class, positive), _const([-1, *tail], np.int64), special_zero=False)


def _block_input_grad(g: ov.Node, block: _Block, nk: ov.Node) -> ov.Node:
    """The gradient at a bottleneck block's input from the one at its output."""
    size_out = block.conv2.out_size(block.size_in)
    out_ch, width = int(block.conv3.weight.shape[0]), int(block.conv1.weight.shape[0])
    g = _mask(g, block.out, nk, (out_ch, size_out, size_out))
    through = _mask(_conv_input_grad(g, block.conv3, size_out), block.h2, nk, (width, size_out, size_out))
    through = _mask(_conv_input_grad(through, block.conv2, block.size_in), block.h1, nk,
                    (width, block.size_in, block.size_in))
    through = _conv_input_grad(through, block.conv1, block.size_in)
    shortcut = g if block.down is None else _conv_input_grad(g, block.down, block.size_in)
    return ops.add(through, shortcut)


def build_stage_gradients(state: Mapping[str, np.ndarray], layer: Layer, uint8_input: bool = False,
                          mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                          tag: bytes | None = None) -> ov.Model:
    """The network plus Grad-CAM's gradients at an earlier stage, by backpropagation inside the graph.

    Inputs: "pixels" as in build_network; "seed" float32 [N, K, 2048], the classifier rows of the K classes
    asked for, per photo. Outputs: [0] "logits" [N, classes]; [1] the stage's activations ``layer`` [N, Cs, h, w]
    (layer3: 1024x14x14, layer2: 512x28x28); [2] "<layer>_grad" [N, K, Cs, h, w], the gradient of
    ``seed[n, k] . avgpool(layer4)`` with respect to them: d logit_c / d activations when seed is fc.weight[c].
    With ``tag``, [3] "tag" (see _tagged).
    """
    if layer not in GRADIENT_LAYERS:
        raise ValueError(f"unknown layer {layer!r} for in-graph gradients: choose one of {', '.join(GRADIENT_LAYERS)}")
    param, x = _pixels(uint8_input, mean, std)
    seed = ops.parameter([-1, -1, FEATURES], np.float32, name="seed")
    seed.output(0).get_tensor().set_names({"seed"})
    net = _forward(state, x)
    nk = ops.shape_of(seed, "i64")
    nk = ops.gather(nk, _const([0, 1], np.int64), ops.constant(np.int64(0)))  # [N, K]
    last = net.blocks["layer4"][-1]
    size = last.conv2.out_size(last.size_in)
    # global average pool, then the classifier: every position of layer4 gets seed / (h * w)
    g = ops.divide(ops.unsqueeze(seed, _const([3, 4], np.int64)), _const([float(size * size)]))
    g = ops.broadcast(g, ops.concat([nk, _const([FEATURES, size, size], np.int64)], 0))
    g = ops.reshape(g, _const([-1, FEATURES, size, size], np.int64), special_zero=False)
    names = [name for name, *_ in STAGES]
    channels = {name: planes * 4 for name, _, planes, _ in STAGES}
    for later in reversed(names[names.index(layer) + 1:]):
        for block in reversed(net.blocks[later]):
            g = _block_input_grad(g, block, nk)
    first = net.blocks[names[names.index(layer) + 1]][0]
    tail = (channels[layer], first.size_in, first.size_in)
    grad = ops.reshape(g, ops.concat([nk, _const(tail, np.int64)], 0), special_zero=False)
    results = [_output(net.logits, "logits"), _output(net.stages[layer], layer), _output(grad, f"{layer}_grad")]
    return ov.Model(_tagged(results, tag), [param, seed], f"resnext50_32x4d_{layer}_gradients")


def compile_network(model: ov.Model, precision: Precision = "fp32", threads: int | None = None,
                    cache_dir: Path | None = None, tuned_for: str = "latency") -> ov.CompiledModel:
    """Compile for the CPU in float32 (OpenVINO's default there is bf16 where the CPU has it) or bf16.

    ``tuned_for="latency"``: one stream using every core, each request as soon as possible (one photo shown);
    ``"throughput"``: OpenVINO's streams, several requests at once on their own cores (a folder of photos).
    With ``cache_dir`` OpenVINO keeps the compiled form there, keyed by the graph, its weights and these
    settings, and a later compile of the same network loads it instead. Failures are an OpenVINOError."""
    hint = PRECISIONS.get(precision)
    if hint is None:
        raise ValueError(f"unknown precision {precision!r}: choose fp32 or bf16")
    tuning = TUNINGS.get(tuned_for)
    if tuning is None:
        raise ValueError(f"unknown tuning {tuned_for!r}: choose {' or '.join(TUNINGS)}")
    if threads is not None and threads < 0:
        raise ValueError(f"the number of threads must be positive (or None for OpenVINO's choice), not {threads}")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": tuning}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir is not None:
        try:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OpenVINOError(f"cannot create the folder for OpenVINO's compiled networks, {cache_dir} "
                                f"({exc.strerror or exc})") from exc
    try:
        core = ov.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        if "ENABLE_CPU_PINNING" in core.get_property("CPU", "SUPPORTED_PROPERTIES"):
            # Unpinned: photos decode on a thread beside the network, and a pinned worker thread that the decoder
            # preempts holds up every layer; unpinned, the scheduler moves it (benchmarks/backends.md)
            config["ENABLE_CPU_PINNING"] = False
        return core.compile_model(model, "CPU", config)
    except Exception as exc:  # OpenVINO raises RuntimeError (sometimes others) with its own text
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise OpenVINOError(f"OpenVINO could not compile the network for this CPU ({first})") from exc
