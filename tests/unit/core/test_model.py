"""The network is torchvision's resnext50_32x4d, checkpoints load strictly and safely, labels are found."""

import json
import pickle

import pytest
import torch
from torchvision.models import resnet50, resnext50_32x4d

from resnext_gui.core.errors import DeviceError, WeightsError
from resnext_gui.core.model import PARAMETER_COUNT, build_model, load_model, resolve_device
from resnext_gui.core.weights import WeightsSource


def src(path):
    return WeightsSource(path, "--weights", None)


def test_architecture_is_the_papers_resnext50_32x4d():
    model = build_model()
    # Xie et al., Table 1: 25.0 million parameters (torchvision documents 25,028,904 for resnext50_32x4d)
    assert sum(p.numel() for p in model.parameters()) == 25_028_904 == PARAMETER_COUNT
    # every block: one grouped 3x3 convolution of cardinality 32, 4 channels per group at the first stage,
    # the width doubling at each stage; 3, 4, 6, 3 blocks; bottleneck output 4x wider than the grouped conv
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (128, 256, 512, 1024)), start=1):
        layer = getattr(model, f"layer{stage}")
        assert len(layer) == blocks
        for block in layer:
            assert (block.conv2.groups, block.conv2.in_channels, block.conv2.kernel_size) == (32, width, (3, 3))
            assert block.conv3.out_channels == 2 * width
    assert model.fc.in_features == 2048


def test_torchvision_checkpoint_loads_strictly_with_identical_logits(checkpoint):
    loaded = load_model(src(checkpoint))
    ref = resnext50_32x4d(weights=None)
    ref.load_state_dict(torch.load(checkpoint, weights_only=True))
    ref.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(loaded.model(x), ref(x))
    assert not loaded.model.training
    assert loaded.labels[281] == "tabby"  # ImageNet names from torchvision's weights meta


def test_resnet50_checkpoint_is_refused_by_name(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(resnet50(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="not a ResNeXt-50 32x4d.*plain ResNet"):
        load_model(src(path))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"hello"], ids=["empty", "bad-zip", "text"])
def test_empty_or_garbage_checkpoint(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="empty|truncated|not a PyTorch checkpoint"):
        load_model(src(path))


def test_truncated_checkpoint(tmp_path, checkpoint):
    path = tmp_path / "half.pth"
    path.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated"):
        load_model(src(path))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_would_run_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(2, 2048), "payload": _RunsCode(marker)}, path)
    with pytest.raises(WeightsError, match="could run code"):
        load_model(src(path))
    assert not marker.exists()
    # also a raw pickle stream (the legacy format)
    raw = tmp_path / "evil_raw.pth"
    raw.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(WeightsError):
        load_model(src(raw))
    assert not marker.exists()


@pytest.fixture(scope="module")
def ten_class_state():
    torch.manual_seed(3)
    return resnext50_32x4d(weights=None, num_classes=10).state_dict()


def test_dict_with_state_dict_and_labels(tmp_path, ten_class_state):
    path = tmp_path / "custom.pth"
    labels = [f"flower {i}" for i in range(10)]
    torch.save({"state_dict": ten_class_state, "labels": labels, "epoch": 7}, path)
    loaded = load_model(src(path))
    assert loaded.labels == labels and loaded.model.fc.out_features == 10


def test_safetensors_with_labels_metadata(tmp_path, ten_class_state):
    from safetensors.torch import save_file

    path = tmp_path / "custom.safetensors"
    labels = [f"bird {i}" for i in range(10)]
    save_file({k: v.contiguous() for k, v in ten_class_state.items()}, path, metadata={"labels": json.dumps(labels)})
    assert load_model(src(path)).labels == labels


def test_sidecar_labels_then_class_n(tmp_path, ten_class_state):
    path = tmp_path / "plain.pth"
    torch.save(ten_class_state, path)
    assert load_model(src(path)).labels == [f"class {i}" for i in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(f"dog {i}" for i in range(10)) + "\n", encoding="utf-8")
    assert load_model(src(path)).labels[3] == "dog 3"
    (tmp_path / "labels.json").write_text(json.dumps([f"cat {i}" for i in range(10)]), encoding="utf-8")
    assert load_model(src(path)).labels[3] == "cat 3"  # labels.json wins over labels.txt


def test_label_count_must_match_classes(tmp_path, ten_class_state):
    path = tmp_path / "mismatch.pth"
    torch.save({"state_dict": ten_class_state, "labels": ["a", "b"]}, path)
    with pytest.raises(WeightsError, match="10 classes but 2 labels"):
        load_model(src(path))


def test_dataparallel_prefix_is_accepted(tmp_path, ten_class_state):
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in ten_class_state.items()}, path)
    assert load_model(src(path)).num_classes == 10


@pytest.mark.parametrize("cuda,mps,expected", [
    (True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    # what torch reports is the seam: this machine has neither GPU, so both answers are set here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("cuda:1" if cuda else "cpu").type == ("cuda" if cuda else "cpu")


def test_asking_for_a_device_that_is_not_there_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="MPS was requested"):
        resolve_device("mps")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


def _save(tmp_path, name, state, **extra):
    path = tmp_path / name
    torch.save({"state_dict": state, **extra} if extra else state, path)
    return path


@pytest.mark.parametrize("key,value", [
    ("layer2.0.conv1.weight", float("nan")),
    ("fc.bias", float("inf")),
    ("bn1.running_var", float("-inf")),
])
def test_non_finite_weights_are_refused_by_tensor_name(tmp_path, ten_class_state, key, value):
    state = dict(ten_class_state)
    state[key] = state[key].clone()
    state[key].view(-1)[0] = value
    with pytest.raises(WeightsError, match=f"{key} holds NaN or infinite"):
        load_model(src(_save(tmp_path, "bad.pth", state)))


@pytest.mark.parametrize("kind,make,words", [
    ("meta", lambda t: torch.empty(t.shape, device="meta"), "meta"),
    ("sparse", lambda t: t.to_sparse(), "sparse"),
    ("integer", lambda t: t.to(torch.int64), "int64, expected floating-point"),
    ("bool", lambda t: t > 0, "bool, expected floating-point"),
])
def test_tensors_that_are_not_plain_float_data_are_refused(tmp_path, ten_class_state, kind, make, words):
    state = dict(ten_class_state, **{"fc.bias": make(ten_class_state["fc.bias"])})
    with pytest.raises(WeightsError, match=f"fc.bias is .*{words}|fc.bias is {words}"):
        load_model(src(_save(tmp_path, f"{kind}.pth", state)))


def test_zero_class_head_is_refused(tmp_path, ten_class_state):
    state = dict(ten_class_state, **{"fc.weight": torch.zeros(0, 2048), "fc.bias": torch.zeros(0)})
    with pytest.raises(WeightsError, match="0 classes"):
        load_model(src(_save(tmp_path, "empty_head.pth", state)))


def test_state_dict_without_batchnorm_counters_loads(tmp_path, ten_class_state):
    state = {k: v for k, v in ten_class_state.items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(ten_class_state)
    loaded = load_model(src(_save(tmp_path, "old.pth", state)))
    assert loaded.num_classes == 10
    assert torch.equal(loaded.model.fc.weight, ten_class_state["fc.weight"])


@pytest.mark.parametrize("content,words", [
    ({str(i): f"c{i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 10)}, "keys must be the class numbers 0 to 9"),
    ({**{str(i): f"c{i}" for i in range(9)}, "nine": "c9"}, "keys must be the class numbers"),
    ([f"c{i}" for i in range(9)] + [9], "must be a string"),
    ({str(i): i for i in range(10)}, "must be a string"),
])
def test_labels_json_must_map_every_class_once(tmp_path, ten_class_state, content, words):
    path = _save(tmp_path, "plain.pth", ten_class_state)
    (tmp_path / "labels.json").write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(WeightsError, match=words):
        load_model(src(path))


def test_embedded_non_string_labels_are_refused(tmp_path, ten_class_state):
    path = _save(tmp_path, "mixed.pth", ten_class_state, labels=[f"c{i}" for i in range(9)] + [torch.zeros(1)])
    with pytest.raises(WeightsError, match="labels"):
        load_model(src(path))


def test_zip_bomb_is_refused_before_torch_reads_it(tmp_path, monkeypatch):
    import zipfile

    from resnext_gui.core import checkpoint as C

    assert C.MAX_CHECKPOINT_BYTES >= 4 * 95 * 2**20  # room for the official file and much larger heads
    monkeypatch.setattr(C, "MAX_CHECKPOINT_BYTES", 8 * 2**20)  # so the test needs no 400 MB of zeros
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (16 * 2**20))
    assert path.stat().st_size < 2**20

    def must_not_run(*args, **kwargs):
        raise AssertionError("torch.load was called on a zip bomb")

    monkeypatch.setattr(torch, "load", must_not_run)
    with pytest.raises(WeightsError, match="17 MB when unpacked"):
        load_model(src(path))


def test_weights_that_are_not_regular_files(tmp_path):
    import os

    from resnext_gui.core.weights import find_weights

    with pytest.raises(WeightsError, match="is a folder, not a checkpoint file.*--weights"):
        find_weights(tmp_path)
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError, match="is not a regular file"):
        find_weights(fifo)
    with pytest.raises(WeightsError, match="is not a regular file"):  # and load_model never opens it
        load_model(src(fifo))
    if os.path.exists("/dev/zero"):
        with pytest.raises(WeightsError, match="is not a regular file"):
            find_weights("/dev/zero")
