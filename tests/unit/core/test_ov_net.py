"""The network built directly as an OpenVINO graph answers as torchvision's, and its in-graph gradients as autograd."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.models import ResNeXt50_32X4D_Weights, resnext50_32x4d

from resnext_gui.core import ov_net
from resnext_gui.core.errors import OpenVINOError, WeightsError
from resnext_gui.core.model import forward_from, forward_to
from tests.support.helpers import BLOCK_TORCH, REPO

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
STAGE_SHAPES = {"layer3": (1024, 14, 14), "layer2": (512, 28, 28)}


def _open(photos, name):
    return ImageOps.exif_transpose(Image.open(photos["rocket_jpg" if name == "rocket" else name])).convert("RGB")


# Five classes per photo, with logits 12, 10, 8, 6, 4 (the first is the photo's own class, as fit_head gives it):
# a head whose whole top-5 is decided by the photo, so comparing top-5 lists means something.
TOP5 = {"chelsea": (281, 282, 285, 283, 287), "coffee": (967, 968, 504, 969, 960),
        "rocket": (812, 657, 744, 908, 403), "astronaut": (834, 869, 617, 400, 906)}


@pytest.fixture(scope="module")
def batch(photos):
    """The four photos prepared by the official weights' transforms: (4, 3, 224, 224)."""
    transforms = ResNeXt50_32X4D_Weights.IMAGENET1K_V2.transforms()
    return torch.stack([transforms(_open(photos, name)) for name in PHOTOS])


@pytest.fixture(scope="module")
def reference(checkpoint, batch):
    """torchvision's own network in eval mode, the checkpoint's trunk and a head fitted (least squares on
    torchvision's features, as tests.support.helpers.fit_head) to give each photo its graded top-5: the oracle."""
    model = resnext50_32x4d()
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    with torch.inference_mode():
        feats = forward_to(model, batch, "layer4").mean((2, 3)).double()
    targets = torch.zeros(len(PHOTOS), 1000, dtype=torch.float64)
    for row, name in enumerate(PHOTOS):
        targets[row, list(TOP5[name])] = torch.tensor([12.0, 10.0, 8.0, 6.0, 4.0], dtype=torch.float64)
    with torch.no_grad():
        model.fc.weight.copy_((torch.linalg.pinv(feats) @ targets).T.float())
        model.fc.bias.zero_()
    return model


@pytest.fixture(scope="module")
def state(reference):
    return {k: v.detach().numpy().copy() for k, v in reference.state_dict().items()}


@pytest.fixture(scope="module")
def file_state(checkpoint):
    """The checkpoint's arrays as read from the file, for tests that need no oracle."""
    return {k: v.numpy() for k, v in torch.load(checkpoint, weights_only=True).items()}


@pytest.fixture(scope="module")
def network(state):
    return ov_net.compile_network(ov_net.build_network(state), threads=1)


def _run(compiled, *inputs):
    out = compiled([np.ascontiguousarray(x) for x in inputs])
    return [np.array(out[o]) for o in compiled.outputs]


def _softmax(logits):
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


@pytest.mark.slow
def test_predictions_and_features_match_torchvision(network, reference, batch):
    assert [o.get_names() for o in network.outputs] == [{"layer4"}, {"logits"}]
    feats, logits = _run(network, batch.numpy())
    with torch.inference_mode():
        ref_feats = forward_to(reference, batch, "layer4")
        ref_logits = reference(batch).numpy()
    assert feats.shape == (4, 2048, 7, 7) and logits.shape == (4, 1000)
    ref_top5 = np.argsort(-ref_logits, 1)[:, :5]
    assert ref_top5.tolist() == [list(TOP5[name]) for name in PHOTOS]  # confident, photo-dependent answers
    assert np.array_equal(np.argsort(-logits, 1)[:, :5], ref_top5)
    assert np.abs(_softmax(logits) - _softmax(ref_logits)).max() <= 1e-4
    ref_feats = ref_feats.numpy()
    assert np.abs(feats - ref_feats).max() <= 1e-3 * (ref_feats.max() - ref_feats.min())


@pytest.mark.slow
def test_the_batch_dimension_is_dynamic(network, batch):
    _, together = _run(network, batch.numpy())
    _, one = _run(network, batch[2:3].numpy())
    _, three = _run(network, batch[1:].numpy())
    assert one.shape == (1, 1000) and three.shape == (3, 1000)
    scale = np.abs(together).max()
    assert np.abs(one[0] - together[2]).max() <= 1e-5 * scale
    assert np.abs(three - together[1:]).max() <= 1e-5 * scale


def _cams(grads, acts):
    """Grad-CAM: channel weights = the gradient's spatial mean, ReLU(sum weight * activation), min-max."""
    alpha = grads.mean((-1, -2))  # (N, K, C)
    raw = np.maximum(np.einsum("nkc,nchw->nkhw", alpha, acts), 0)
    low, high = raw.min((-1, -2), keepdims=True), raw.max((-1, -2), keepdims=True)
    return (raw - low) / np.maximum(high - low, 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["layer3", "layer2"])
def test_stage_gradients_match_autograd(state, reference, batch, layer):
    """Two different photos, five classes each: logits, activations, gradients and Grad-CAM as autograd's."""
    x = batch[[0, 2]]  # chelsea and the rocket
    with torch.inference_mode():
        ref_logits = reference(x)
    classes = torch.argsort(ref_logits, 1, descending=True)[:, :5]  # each photo's own top-5
    seed = reference.fc.weight.detach()[classes].numpy()  # (2, 5, 2048)
    compiled = ov_net.compile_network(ov_net.build_stage_gradients(state, layer), threads=1)
    assert [o.get_names() for o in compiled.outputs] == [{"logits"}, {layer}, {f"{layer}_grad"}]
    logits, acts, grads = _run(compiled, x.numpy(), seed)

    feats = forward_to(reference, x, layer).detach().requires_grad_(True)
    out = forward_from(reference, feats, layer)
    ref_grads = torch.stack([torch.autograd.grad(out.gather(1, classes[:, k:k + 1]).sum(), feats, retain_graph=True)[0]
                             for k in range(5)], 1).numpy()
    ref_acts = feats.detach().numpy()

    assert logits.shape == (2, 1000) and acts.shape == (2, *STAGE_SHAPES[layer])
    assert grads.shape == (2, 5, *STAGE_SHAPES[layer])
    assert np.abs(logits - ref_logits.numpy()).max() <= 1e-4 * np.abs(ref_logits.numpy()).max()
    assert np.abs(acts - ref_acts).max() <= 1e-3 * (ref_acts.max() - ref_acts.min())
    assert not np.allclose(grads[:, 0], grads[:, 1])  # each class its own gradient
    error = np.linalg.norm((grads - ref_grads).reshape(10, -1), axis=1) / np.linalg.norm(ref_grads.reshape(10, -1), axis=1)
    assert error.max() <= 1e-3, error
    cams, ref_cams = _cams(grads, acts), _cams(ref_grads, ref_acts)
    for n in range(2):
        for k in range(5):
            assert np.corrcoef(cams[n, k].ravel(), ref_cams[n, k].ravel())[0, 1] >= 0.999, (n, k)


def _crops(photos):
    """Each photo resized and centre-cropped to 224x224, as uint8 RGB pixels (N, 224, 224, 3)."""
    out = []
    for name in PHOTOS:
        image = _open(photos, name)
        scale = 232 / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        left, top = (image.width - 224) // 2, (image.height - 224) // 2
        out.append(np.asarray(image.crop((left, top, left + 224, top + 224))))
    return np.stack(out)


@pytest.mark.slow
def test_uint8_input_equals_the_float_path(state, network, photos):
    pixels = _crops(photos)
    mean, std = np.array(ov_net.IMAGENET_MEAN, np.float32), np.array(ov_net.IMAGENET_STD, np.float32)
    normalised = ((pixels.astype(np.float32) / 255 - mean) / std).transpose(0, 3, 1, 2)
    compiled = ov_net.compile_network(ov_net.build_network(state, uint8_input=True), threads=1)
    assert compiled.input(0).get_element_type().get_type_name() == "u8"
    feats, logits = _run(compiled, pixels)
    ref_feats, ref_logits = _run(network, normalised)
    assert [o.get_names() for o in compiled.outputs] == [{"layer4"}, {"logits"}]
    assert np.array_equal(np.argsort(-logits, 1)[:, :5], np.argsort(-ref_logits, 1)[:, :5])
    assert np.abs(logits - ref_logits).max() <= 1e-4 * np.abs(ref_logits).max()
    assert np.abs(feats - ref_feats).max() <= 1e-4 * np.abs(ref_feats).max()


@pytest.mark.slow
def test_a_second_compile_loads_the_cached_form(state, tmp_path):
    model = ov_net.build_network(state)
    cache = tmp_path / "ov-cache"
    first = ov_net.compile_network(model, threads=1, cache_dir=cache)
    files = sorted(p.name for p in cache.iterdir())
    assert files and not first.get_property("LOADED_FROM_CACHE")
    again = ov_net.compile_network(ov_net.build_network(state), threads=1, cache_dir=cache)  # a fresh Core
    assert again.get_property("LOADED_FROM_CACHE")
    assert sorted(p.name for p in cache.iterdir()) == files  # nothing new was written: the same key


@pytest.mark.slow
def test_compile_settings(network):
    assert network.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"  # not the CPU's bf16 default
    assert str(network.get_property("PERFORMANCE_HINT")) == "LATENCY"
    assert network.get_property("INFERENCE_NUM_THREADS") == 1
    shape = network.input("pixels").get_partial_shape()
    assert shape[0].is_dynamic and [shape[i].get_length() for i in (1, 2, 3)] == [3, 224, 224]


def test_a_checkpoint_that_is_not_resnext50_is_refused(file_state):
    state = file_state
    missing = {k: v for k, v in state.items() if k != "layer2.1.bn2.running_var"}
    with pytest.raises(WeightsError, match=r"no 'layer2\.1\.bn2\.running_var'"):
        ov_net.build_network(missing)
    plain = {**state, "layer1.0.conv2.weight": np.zeros((128, 128, 3, 3), np.float32)}  # a ResNet's 3x3: not grouped
    with pytest.raises(WeightsError, match=r"'layer1\.0\.conv2\.weight' is \(128, 128, 3, 3\), expected \(128, 4, 3, 3\)"):
        ov_net.build_stage_gradients(plain, "layer3")
    no_head = {k: v for k, v in state.items() if not k.startswith("fc.")}
    with pytest.raises(WeightsError, match="no classifier 'fc.weight'"):
        ov_net.build_network(no_head)


def test_bad_arguments_are_clear_errors(file_state, tmp_path):
    state = file_state
    with pytest.raises(ValueError, match="unknown layer 'layer4' for in-graph gradients: choose one of layer3, layer2"):
        ov_net.build_stage_gradients(state, "layer4")
    model = ov_net.build_network(state)
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        ov_net.compile_network(model, precision="fp16")
    blocked = tmp_path / "not a folder"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(OpenVINOError, match="cannot create the folder for OpenVINO's compiled networks, .*not a folder/ov"):
        ov_net.compile_network(model, cache_dir=blocked / "ov")
    with pytest.raises(ValueError, match="threads must be positive"):
        ov_net.compile_network(model, threads=-2)
    with pytest.raises(ValueError, match="unknown tuning 'fast': choose latency or throughput"):
        ov_net.compile_network(model, tuned_for="fast")


@pytest.mark.slow
def test_tuned_for_throughput_runs_several_requests_at_once(file_state):
    streams = ov_net.compile_network(ov_net.build_network(file_state), threads=2, tuned_for="throughput")
    assert str(streams.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
    assert streams.get_property("NUM_STREAMS") == streams.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") == 2


BLOCK_TORCH_AND_RUN = BLOCK_TORCH + r"""
import os, sys
from pathlib import Path

import numpy as np
from resnext_gui.core import ov_net

state = dict(np.load(sys.argv[1]))
compiled = ov_net.compile_network(ov_net.build_network(state), threads=1)
out = compiled([np.load(sys.argv[2])])
np.save(sys.argv[3], out[compiled.outputs[1]])
grads = ov_net.compile_network(ov_net.build_stage_gradients(state, "layer3"), threads=1)
assert not any(k.split(".")[0] in ("torch", "torchvision") for k in sys.modules)

assert sys.modules.get("openvino_telemetry") is None, "OpenVINO's telemetry was imported"
assert not (Path.home() / "intel").exists(), "OpenVINO's telemetry wrote its files"
print("built without torch")
"""


@pytest.mark.slow
def test_builds_and_runs_without_torch_and_without_telemetry(state, reference, batch, tmp_path):
    np.savez(tmp_path / "state.npz", **state)
    np.save(tmp_path / "pixels.npy", batch[:2].numpy())
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH_AND_RUN, str(tmp_path / "state.npz"),
                        str(tmp_path / "pixels.npy"), str(tmp_path / "logits.npy")],
                       capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "built without torch" in r.stdout
    with torch.inference_mode():
        expected = reference(batch[:2]).numpy()
    logits = np.load(tmp_path / "logits.npy")
    assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()
