"""Checkpoints are read without torch exactly as torch.load(weights_only=True) reads them, and refused as it refuses them."""

import hashlib
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torchvision.models import resnext50_32x4d

from resnext_gui.core import checkpoint as C
from resnext_gui.core.checkpoint import read_checkpoint, reference_shapes
from resnext_gui.core.errors import WeightsError
from resnext_gui.core.weights import WeightsSource
from tests.support.helpers import BLOCK_TORCH, REPO, make_checkpoint


def src(path):
    return WeightsSource(path, "--weights", None)


@pytest.fixture(scope="module")
def state():
    """A ten-class resnext50_32x4d state_dict, torchvision's seeded init, with num_batches_tracked counters."""
    torch.manual_seed(5)
    sd = resnext50_32x4d(weights=None, num_classes=10).state_dict()
    for i, key in enumerate(k for k in sd if k.endswith("num_batches_tracked")):
        sd[key] = torch.tensor(1000 + i)  # distinct counts, so a mix-up between keys shows
    return sd


# ---------------------------------------------------------------------------------------------------------
# The oracle: what the app said when it read checkpoints with torch.load(weights_only=True)

CODE = ("refused to load {path}: besides tensors it holds Python objects ({name}), and loading them could run code. "
        "Only plain state_dicts (or .safetensors) are accepted")
TRUNCATED = "weights file {path} is truncated or not a PyTorch checkpoint"


def via_torch(path):
    """torch.load(weights_only=True) and the checks its tensors allowed: the state_dict (floats as float32, no
    "module." prefix) or the refusal. The name of a global from a module torch blocks outright (os, sys) is
    taken from torch's other wording of the same refusal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        return CODE.format(path=path, name=found.group(1)) if found else TRUNCATED.format(path=path)
    except Exception:
        return TRUNCATED.format(path=path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return f"{path} is not a state_dict (a mapping of parameter names to tensors)"
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    for name, t in obj.items():
        if t.is_meta or t.layout != torch.strided:
            kind = "meta (shape only, no data)" if t.is_meta else str(t.layout).replace("torch.", "")
            return f"{path}: tensor {name} is a {kind} tensor, not plain weights"
        if name.endswith("num_batches_tracked"):
            continue
        if not t.is_floating_point():
            return f"{path}: tensor {name} is {str(t.dtype).replace('torch.', '')}, expected floating-point weights"
        if not bool(torch.isfinite(t).all()):
            return (f"{path}: tensor {name} holds NaN or infinite values; the checkpoint is damaged "
                    "(or was saved from a training run that diverged)")
    return {k: (v.float() if v.is_floating_point() else v).detach().numpy() for k, v in obj.items()}


def refusal(path):
    with pytest.raises(WeightsError) as info:
        read_checkpoint(src(path))
    return str(info.value)


def assert_refused_like_torch(path):
    expected, got = via_torch(path), refusal(path)
    assert isinstance(expected, str), "torch.load accepted it"
    if expected == TRUNCATED.format(path=path):  # torch's own reason, in brackets, is worded differently
        assert got.startswith(expected), got
    else:
        assert got == expected
    return got


def assert_read_like_torch(path, oracle=None):
    expected = oracle if oracle is not None else via_torch(path)
    assert not isinstance(expected, str), expected
    ck = read_checkpoint(src(path))
    assert list(ck.state) == list(expected)
    for key, want in expected.items():
        got = ck.state[key]
        assert got.dtype == (np.float32 if want.dtype.kind == "f" else np.int64), key
        assert got.flags.c_contiguous and got.flags.writeable and got.flags.owndata, key  # torch.from_numpy takes it as is
        np.testing.assert_array_equal(got, want, strict=True, err_msg=key)
    assert ck.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    return ck


# ---------------------------------------------------------------------------------------------------------
# Hand-made files: torch.save's two formats written here, record by record, to say what torch.save would not

_KINDS = {torch.float32: torch.FloatStorage, torch.float16: torch.HalfStorage, torch.bfloat16: torch.BFloat16Storage,
          torch.float64: torch.DoubleStorage, torch.int64: torch.LongStorage}
_BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16}


class Storage:
    def __init__(self, key, kind, numel, data, view=None):
        self.key, self.kind, self.numel, self.data, self.view = key, kind, numel, data, view


class View:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...), which is what a tensor is."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    legacy = False

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", obj.kind, obj.key, "cpu", obj.numel)
            return (*pid, obj.view) if self.legacy else pid
        return None


def _dump(obj, legacy=False):
    buf = io.BytesIO()
    pickler = _Pickler(buf, protocol=2)
    pickler.legacy = legacy
    pickler.dump(obj)
    return buf.getvalue()


def write_zip(path, obj, storages, byteorder="little"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", _dump(obj))
        zf.writestr("archive/byteorder", byteorder)
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.data)
        zf.writestr("archive/version", "3\n")
    return path


def write_legacy(path, obj, storages):
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            pickle.dump(header, f, protocol=2)
        f.write(_dump(obj, legacy=True))
        roots = {s.key: s for s in storages if s.view is None}
        pickle.dump(sorted(roots), f, protocol=2)
        for key in sorted(roots):
            f.write(struct.pack("<q", roots[key].numel) + roots[key].data)
    return path


def tensor_bytes(t, byteorder="little"):
    flat = t.contiguous().view(_BITS.get(t.dtype, t.dtype)).numpy() if t.dtype in _BITS else t.contiguous().numpy()
    return (flat.byteswap() if byteorder == "big" else flat).tobytes()


def handmade(sd, byteorder="little"):
    """(state_dict of Views, storages): one storage per tensor, in ``byteorder``."""
    storages, obj = [], OrderedDict()
    for i, (key, t) in enumerate(sd.items()):
        storages.append(Storage(str(i), _KINDS[t.dtype], t.numel(), tensor_bytes(t, byteorder)))
        obj[key] = View(storages[-1], 0, t.shape, t.contiguous().stride())
    return obj, storages


# ---------------------------------------------------------------------------------------------------------
# The network's shapes


@pytest.mark.parametrize("num_classes", [1000, 7])
def test_reference_shapes_are_torchvisions(num_classes):
    expected = [(k, tuple(v.shape)) for k, v in resnext50_32x4d(weights=None, num_classes=num_classes).state_dict().items()]
    assert list(reference_shapes(num_classes).items()) == expected


# ---------------------------------------------------------------------------------------------------------
# Every kind of checkpoint the app meets, read exactly as torch reads it


def test_official_layout(tmp_path):
    path = make_checkpoint(tmp_path / "resnext50_32x4d-official-layout.pth")
    ck = assert_read_like_torch(path)
    assert ck.num_classes == 1000 and ck.labels[281] == "tabby"  # ImageNet's names when the file has none


def _with_attribute(t):
    t = t.clone()
    t.note = "fitted"  # torch.save keeps a tensor's Python attributes: _rebuild_from_type_v2(..., {"note": ...})
    return t


def _variants(sd):
    floats = {k: v for k, v in sd.items() if v.is_floating_point()}
    return {
        "with labels": ({"state_dict": sd, "labels": [f"flower {i}" for i in range(10)], "epoch": 7,
                         "provenance": {"photos": 32, "lr": 0.1, "classes": ["a", "b"], "note": None}}, {}),
        "module. prefix": ({f"module.{k}": v for k, v in sd.items()}, {}),
        "without num_batches_tracked": ({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, {}),
        "fp16": ({**sd, **{k: v.half() for k, v in floats.items()}}, {}),
        "bf16": ({**sd, **{k: v.bfloat16() for k, v in floats.items()}}, {}),
        "fp64": ({**sd, **{k: v.double() for k, v in floats.items()}}, {}),
        "nn.Parameter values": ({k: torch.nn.Parameter(v) if v.is_floating_point() else v for k, v in sd.items()}, {}),
        "a tensor with attributes": ({**sd, "fc.bias": _with_attribute(sd["fc.bias"])} if sd else {}, {}),
        "legacy": (sd, {"_use_new_zipfile_serialization": False}),
        "legacy bf16": ({**sd, **{k: v.bfloat16() for k, v in floats.items()}}, {"_use_new_zipfile_serialization": False}),
    }


@pytest.mark.parametrize("name", list(_variants({})))
def test_checkpoint_kinds_read_like_torch(tmp_path, state, name):
    obj, kwargs = _variants(state)[name]
    path = tmp_path / "variant.pth"
    torch.save(obj, path, **kwargs)
    ck = assert_read_like_torch(path)
    assert ck.labels == ([f"flower {i}" for i in range(10)] if name == "with labels" else [f"class {i}" for i in range(10)])


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_views_offsets_and_shared_storage_read_like_torch(tmp_path, state, legacy):
    sd = dict(state)
    shared = torch.randn(64 + 10, generator=torch.Generator().manual_seed(2))
    sd["bn1.weight"], sd["fc.bias"] = shared[:64], shared[64:]  # one storage, the second at an offset
    sd["fc.weight"] = torch.randn(10, 4096)[:, 1::2]  # every other column: strides (4096, 2), offset 1
    sd["conv1.weight"] = torch.randn(7, 7, 3, 64).permute(3, 2, 0, 1)  # a transposed layout
    sd["bn1.running_var"] = torch.rand(1).expand(64)  # stride 0: one number for the whole channel
    assert not sd["fc.weight"].is_contiguous() and sd["fc.bias"].storage_offset() == 64
    path = tmp_path / "views.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    assert_read_like_torch(path)


def test_legacy_storage_views_read_like_torch(tmp_path, state):
    # PyTorch before 0.4 wrote views of one storage as their own storage ids: (view key, offset, size)
    sd = dict(state)
    shared = torch.randn(64 + 10)
    root = Storage("shared", torch.FloatStorage, 74, tensor_bytes(shared))
    obj, storages = handmade({k: v for k, v in sd.items() if k not in ("bn1.weight", "fc.bias")})
    obj["bn1.weight"] = View(Storage("shared", torch.FloatStorage, 74, b"", view=("view-a", 0, 64)), 0, (64,), (1,))
    obj["fc.bias"] = View(Storage("shared", torch.FloatStorage, 74, b"", view=("view-b", 64, 10)), 0, (10,), (1,))
    path = write_legacy(tmp_path / "views.pth", obj, [*storages, root])
    expected = via_torch(path)
    np.testing.assert_array_equal(expected["fc.bias"], shared[64:].numpy())  # torch reads it as meant
    assert_read_like_torch(path, expected)


def test_big_endian_file_reads_like_torch(tmp_path, state):
    sd = {**state, "fc.bias": state["fc.bias"].half(), "bn1.weight": state["bn1.weight"].bfloat16()}
    path = write_zip(tmp_path / "big.pth", *handmade(sd, "big"), byteorder="big")
    expected = via_torch(path)
    np.testing.assert_array_equal(expected["fc.weight"], state["fc.weight"].numpy())  # torch swapped the bytes
    assert_read_like_torch(path, expected)


def test_unknown_byte_order_is_refused(tmp_path, state):
    path = write_zip(tmp_path / "odd.pth", *handmade(state), byteorder="middle")
    assert "unknown byte order" in assert_refused_like_torch(path)


def test_taught_head_safetensors(tmp_path, state):
    from safetensors.numpy import save_file
    from safetensors.torch import load_file

    path = tmp_path / "taught.safetensors"
    labels = [f"bird {i}" for i in range(10)]
    arrays = {k: v.numpy() for k, v in state.items()}
    arrays["fc.weight"] = np.asarray(arrays["fc.weight"]) * 3  # a head of its own
    save_file(arrays, str(path), metadata={"labels": json.dumps(labels)})
    expected = {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in load_file(path).items()}
    assert list(expected) != list(state)  # safetensors sorts its keys
    ck = read_checkpoint(src(path))
    assert sorted(ck.state) == sorted(expected) and ck.labels == labels
    for key, want in expected.items():
        np.testing.assert_array_equal(ck.state[key], want, strict=True)
    assert ck.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bf16_safetensors(tmp_path, state):
    from safetensors.torch import save_file

    path = tmp_path / "bf16.safetensors"
    save_file({k: v.bfloat16() if v.is_floating_point() else v for k, v in state.items()}, path)
    ck = read_checkpoint(src(path))
    for key, t in state.items():
        want = t.bfloat16().float() if t.is_floating_point() else t
        np.testing.assert_array_equal(ck.state[key], want.numpy(), strict=True)


def test_the_file_is_read_once(tmp_path, monkeypatch, state):
    """A file replaced on disk while it loads can't mix two files: what was read is all that is parsed."""
    path = tmp_path / "swapped.pth"
    torch.save(state, path)
    first = path.read_bytes()
    other = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    read = C._read_bytes

    def read_then_replace(p):
        data = read(p)
        torch.save(other, p)  # a new file in its place the moment after reading
        return data

    monkeypatch.setattr(C, "_read_bytes", read_then_replace)
    ck = read_checkpoint(src(path))
    assert path.read_bytes() != first
    assert ck.sha256 == hashlib.sha256(first).hexdigest()
    np.testing.assert_array_equal(ck.state["fc.weight"], state["fc.weight"].numpy())


# ---------------------------------------------------------------------------------------------------------
# Hostile and damaged files: refused as torch refused them, and nothing in them runs


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Open:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("payload,name", [(_System, "posix.system" if os.name == "posix" else "nt.system"), (_Open, "io.open")])
@pytest.mark.parametrize("how", ["zip", "legacy", "raw pickle", "raw pickle protocol 4"])
def test_pickle_that_would_run_code_is_refused_without_running(tmp_path, payload, name, how):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    obj = {"fc.weight": torch.zeros(2, 2048), "payload": payload(marker)}
    if how.startswith("raw pickle"):  # no tensors, whose storages plain pickle can't write
        path.write_bytes(pickle.dumps({"payload": payload(marker)}, protocol=4 if how.endswith("4") else 2))
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=how == "zip")
    # torch's unpickler knows no protocol 4 (it calls that file damaged); this one names the global all the same
    message = refusal(path) if how.endswith("4") else assert_refused_like_torch(path)
    assert f"Python objects ({name})" in message
    assert not marker.exists()
    from resnext_gui.core.model import load_model

    with pytest.raises(WeightsError, match="could run code"):
        load_model(src(path))
    assert not marker.exists()


def test_a_whole_saved_module_is_refused(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(resnext50_32x4d(weights=None, num_classes=3), path)
    assert "torchvision.models.resnet.ResNet" in assert_refused_like_torch(path)


def test_zip_bomb_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "MAX_CHECKPOINT_BYTES", 8 * 2**20)  # so the test needs no 400 MB of zeros
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (16 * 2**20))
    assert path.stat().st_size < 2**20

    def must_not_unpack(*args, **kwargs):
        raise AssertionError("a record of the zip bomb was unpacked")

    monkeypatch.setattr(zipfile.ZipFile, "read", must_not_unpack)
    monkeypatch.setattr(zipfile.ZipFile, "open", must_not_unpack)
    assert "17 MB when unpacked" in refusal(path)


def test_declared_size_comes_from_the_zip_directory(tmp_path, state):
    path = tmp_path / "liar.pth"
    write_zip(path, *handmade({"fc.bias": state["fc.bias"]}))
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first record's entry in the central directory
    struct.pack_into("<I", data, entry + 24, 0xFFFF0000)  # its uncompressed size: 4 GB
    path.write_bytes(bytes(data))
    assert "4,295 MB when unpacked" in refusal(path)


def test_a_file_larger_than_any_checkpoint_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "MAX_CHECKPOINT_BYTES", 2**20)
    path = tmp_path / "huge.safetensors"
    path.write_bytes(b"\0" * (3 * 2**20))
    assert "3 MB when unpacked" in refusal(path)


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b"hello", b"\x80\x02K\x01.", np.random.default_rng(0).bytes(4096)],
                         ids=["bad-zip", "text", "a pickled int", "random"])
def test_garbage_is_refused_like_torch(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    assert_refused_like_torch(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    assert refusal(path) == f"weights file {path} is empty"


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_files_are_refused_like_torch(tmp_path, state, legacy, fraction):
    whole = tmp_path / "whole.pth"
    torch.save(state, whole, _use_new_zipfile_serialization=not legacy)
    path = tmp_path / "cut.pth"
    data = whole.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    assert_refused_like_torch(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("offset,size,stride", [(0, (13,), (1,)), (5, (8,), (1,)), (0, (4, 4), (4, 1)), (0, (3, 2), (1, 11))],
                         ids=["longer", "offset", "2d", "strided"])
def test_tensor_reaching_beyond_its_storage_is_refused_like_torch(tmp_path, legacy, offset, size, stride):
    storage = Storage("0", torch.FloatStorage, 12, np.arange(12, dtype="<f4").tobytes())
    obj = {"fc.weight": View(storage, offset, size, stride)}
    path = (write_legacy if legacy else write_zip)(tmp_path / "short.pth", obj, [storage])
    assert "reaches beyond its storage" in assert_refused_like_torch(path)


# Opcodes whose size field comes first, each declaring a terabyte (a frame, 8 bytes; BINBYTES's field is 4 bytes)
_LYING = {
    "BYTEARRAY8": b"\x80\x05\x96" + struct.pack("<Q", 10**12) + b"abc.",
    "BINBYTES8": b"\x80\x04\x8e" + struct.pack("<Q", 10**12) + b"abc.",
    "BINUNICODE8": b"\x80\x04\x8d" + struct.pack("<Q", 10**12) + b"abc.",
    "BINBYTES": b"\x80\x03B" + struct.pack("<I", 4_000_000_000) + b"abc.",
    "FRAME": b"\x80\x04\x95" + struct.pack("<Q", 10**12) + b"N.",
    "after a dict": b"\x80\x05}q\x00X\x01\x00\x00\x00k\x96" + struct.pack("<Q", 10**12) + b"abcs.",
}


def _lying_file(path, pickle_bytes, legacy):
    if legacy:
        path.write_bytes(pickle_bytes)
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("archive/data.pkl", pickle_bytes)
            zf.writestr("archive/byteorder", "little")
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("opcode", sorted(_LYING))
def test_a_size_declared_beyond_the_files_is_refused_by_name(tmp_path, opcode, legacy):
    path = _lying_file(tmp_path / "lying.pth", _LYING[opcode], legacy)
    message = refusal(path)
    assert message.startswith(f"refused to load {path}: a size declared in it (")
    assert "is beyond the file's size" in message
    assert "MemoryError" not in message and "truncated" not in message


def test_a_pickle_of_more_operations_than_any_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "MAX_PICKLE_OPS", 1000)
    path = _lying_file(tmp_path / "long.pth", b"\x80\x02]" + b"N" * 2000 + b".", legacy=True)
    assert "more than 1,000 operations" in refusal(path)


def test_storage_record_shorter_than_declared_is_refused_like_torch(tmp_path):
    storage = Storage("0", torch.FloatStorage, 12, np.arange(5, dtype="<f4").tobytes())
    path = write_zip(tmp_path / "short.pth", {"fc.weight": View(storage, 0, (5,), (1,))}, [storage])
    assert_refused_like_torch(path)


def test_what_is_not_a_state_dict_is_refused_like_torch(tmp_path):
    for i, obj in enumerate([[torch.zeros(3)], {"fc.weight": torch.zeros(2), "epoch": 3}, 42, {"state_dict": {"a": 1}}]):
        path = tmp_path / f"not{i}.pth"
        torch.save(obj, path)
        assert "is not a state_dict" in assert_refused_like_torch(path)


def _with(state, key, make):
    sd = dict(state)
    sd[key] = make(sd[key])
    return sd


def _quietly(make):
    with warnings.catch_warnings():  # torch says its sparse CSR support is in beta: true, and not this test's business
        warnings.simplefilter("ignore")
        return make()


def _nan(t):
    t = t.clone()
    t.view(-1)[3] = float("nan")
    return t


@pytest.mark.parametrize("key,make", [
    ("fc.bias", lambda t: torch.empty(t.shape, device="meta")),
    ("fc.bias", lambda t: t.to_sparse()),
    ("fc.weight", lambda t: _quietly(t.to_sparse_csr)),
    ("fc.bias", lambda t: t.to(torch.int64)),
    ("fc.bias", lambda t: t > 0),
    ("fc.bias", lambda t: t.to(torch.complex64)),
    ("layer2.0.conv1.weight", _nan),
    ("fc.bias", lambda t: torch.full_like(t, float("inf"))),
    ("bn1.running_var", lambda t: torch.full_like(t, float("-inf")).half()),
], ids=["meta", "sparse_coo", "sparse_csr", "int64", "bool", "complex", "nan", "inf", "fp16 -inf"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_tensors_that_are_not_plain_finite_floats_are_refused_like_torch(tmp_path, state, key, make, legacy):
    path = tmp_path / "odd.pth"
    torch.save(_with(state, key, make), path, _use_new_zipfile_serialization=not legacy)
    assert f"tensor {key} " in assert_refused_like_torch(path)


def test_quantized_tensor_is_refused_by_name(tmp_path, state):
    with warnings.catch_warnings():  # torch says quantized tensors are deprecated: true, and not this test's business
        warnings.simplefilter("ignore")
        quantized = torch.quantize_per_tensor(state["fc.bias"], 0.1, 0, torch.qint8)
    path = tmp_path / "q.pth"
    torch.save(_with(state, "fc.bias", lambda t: quantized), path)
    assert refusal(path) == f"{path}: tensor fc.bias is a quantized tensor, not plain weights"


def test_float8_tensor_is_refused_by_name(tmp_path, state):
    path = tmp_path / "f8.pth"
    torch.save(_with(state, "fc.weight", lambda t: t.to(torch.float8_e4m3fn)), path)
    assert refusal(path).startswith(f"{path}: tensor fc.weight is float8_e4m3fn, a number format this app cannot read")


def test_counter_that_is_not_an_integer_is_refused(tmp_path, state):
    path = tmp_path / "counter.pth"
    torch.save(_with(state, "bn1.num_batches_tracked", lambda t: t.float()), path)
    assert refusal(path) == f"{path}: tensor bn1.num_batches_tracked is torch.float32, expected an integer count"


def test_tensors_claiming_more_numbers_than_a_checkpoint_holds_are_refused(tmp_path, state):
    # a stride of 0 repeats one number: a file of a few bytes may claim a head of a hundred million classes
    storage = Storage("big", torch.FloatStorage, 1, np.ones(1, dtype="<f4").tobytes())
    obj, storages = handmade({k: v for k, v in state.items() if not k.startswith("fc.")})
    obj["fc.weight"] = View(storage, 0, (10**8, 2048), (0, 0))
    obj["fc.bias"] = View(storage, 0, (10**8,), (0,))
    path = write_zip(tmp_path / "claims.pth", obj, [*storages, storage])
    assert re.search(r"its tensors hold [\d,]+ million numbers, more than", refusal(path))


# ---------------------------------------------------------------------------------------------------------
# No torch needed

READ_WITHOUT_TORCH = BLOCK_TORCH + r"""
import json, sys
from pathlib import Path

import numpy as np
from resnext_gui.core.checkpoint import read_checkpoint
from resnext_gui.core.errors import WeightsError
from resnext_gui.core.weights import WeightsSource

out = {}
for name in sys.argv[2:]:
    try:
        ck = read_checkpoint(WeightsSource(Path(sys.argv[1]) / name, "test", None))
        np.savez(Path(sys.argv[1]) / f"{name}.npz", **ck.state)
        out[name] = {"labels": ck.labels, "sha256": ck.sha256}
    except WeightsError as exc:
        out[name] = str(exc)
assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")]
print(json.dumps(out))
"""


def test_checkpoints_are_read_with_torch_blocked(tmp_path, state):
    labels = [f"fish {i}" for i in range(10)]
    torch.save({"state_dict": state, "labels": labels}, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(_with(state, "fc.bias", lambda t: torch.empty(t.shape, device="meta")), tmp_path / "meta.pth")
    torch.save(_with(state, "fc.bias", lambda t: t.to_sparse()), tmp_path / "sparse.pth")
    torch.save({"fc.weight": torch.zeros(2, 2048), "payload": _System(tmp_path / "ran")}, tmp_path / "evil.pth")
    names = ["zip.pth", "legacy.pth", "meta.pth", "sparse.pth", "evil.pth"]
    r = subprocess.run([sys.executable, "-c", READ_WITHOUT_TORCH, str(tmp_path), *names],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for name, want_labels in (("zip.pth", labels), ("legacy.pth", [f"class {i}" for i in range(10)])):
        assert out[name] == {"labels": want_labels, "sha256": hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()}
        arrays = np.load(tmp_path / f"{name}.npz")
        assert sorted(arrays.files) == sorted(state)
        for key, t in state.items():
            np.testing.assert_array_equal(arrays[key], t.numpy(), strict=True)
    for name in ("meta.pth", "sparse.pth", "evil.pth"):
        assert out[name] == via_torch(tmp_path / name)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_an_image_given_as_weights_is_called_an_image(tmp_path, fmt, suffix):
    from PIL import Image

    path = tmp_path / f"photo{suffix}"
    Image.new("RGB", (32, 24), (200, 30, 40)).save(path, format=fmt)
    shown = {"WEBP": "WebP"}.get(fmt, fmt)
    assert refusal(path) == (f"{path} is a {shown} image, not a weights file: give a ResNeXt-50 checkpoint "
                             "(.pth, .pt or .safetensors) as the weights")


def test_image_signatures_never_match_a_checkpoint(tmp_path, state):
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    from safetensors.numpy import save_file

    save_file({"BM": np.zeros(3, np.float32)}, str(tmp_path / "t.safetensors"))
    for name in ("zip.pth", "legacy.pth", "t.safetensors"):
        assert C.image_kind((tmp_path / name).read_bytes()[:16]) is None
