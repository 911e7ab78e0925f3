"""Read a ResNeXt-50 checkpoint (.pth of any torch.save format, or .safetensors) into numpy arrays, safely, without torch."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import struct
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from .errors import WeightsError
from .labels import imagenet_labels
from .weights import DEFAULT_VARIANT, WeightsSource, not_a_regular_file

# The official file is 96 MB (25 million float32 numbers); a fine-tune with a much larger head (say 20,000
# classes) stays well under four times that. Anything larger is refused before it is read, so a small file
# that unpacks to gigabytes (a zip bomb) cannot exhaust memory.
MAX_CHECKPOINT_BYTES = 4 * DEFAULT_VARIANT.size_bytes
# The most numbers the state_dict's tensors may hold in all: a file at the size limit stored in float16. Tensors
# may share or overlap their storage (a stride of 0 repeats one number), so a small file could claim far more.
MAX_NUMBERS = MAX_CHECKPOINT_BYTES // 2
# The most operations one pickle in a checkpoint may hold: a state_dict's has some 15 per tensor (a few thousand
# in all, a few more per class name with labels), so this bounds the work of reading one, not real files.
MAX_PICKLE_OPS = 1_000_000


@dataclass
class Checkpoint:
    """A checked ResNeXt-50 32x4d state_dict as numpy arrays, its class names, and the file it came from."""

    state: dict[str, np.ndarray]  # float32 weights ("module." removed); num_batches_tracked int64 where present
    labels: list[str]  # from the file, else labels.json/labels.txt beside it, else ImageNet's, else "class N"
    source: WeightsSource
    sha256: str  # of exactly the bytes that were parsed

    @property
    def num_classes(self) -> int:
        return int(self.state["fc.weight"].shape[0])


# ---------------------------------------------------------------------------------------------------------
# The network's shapes: torchvision's resnext50_32x4d (ResNet with Bottleneck blocks, groups=32, width_per_group=4)

STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))  # (blocks, planes) of layer1..layer4
GROUPS, WIDTH_PER_GROUP, EXPANSION = 32, 4, 4


def _batchnorm(prefix: str, channels: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    for name in ("weight", "bias", "running_mean", "running_var"):
        yield f"{prefix}.{name}", (channels,)
    yield f"{prefix}.num_batches_tracked", ()


def _reference(num_classes: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield "conv1.weight", (64, 3, 7, 7)
    yield from _batchnorm("bn1", 64)
    inplanes = 64
    for stage, (blocks, planes) in enumerate(STAGES, start=1):
        width = planes * WIDTH_PER_GROUP // 64 * GROUPS  # the grouped 3x3 convolution's channels
        out = planes * EXPANSION
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            yield f"{p}.conv1.weight", (width, inplanes, 1, 1)
            yield from _batchnorm(f"{p}.bn1", width)
            yield f"{p}.conv2.weight", (width, width // GROUPS, 3, 3)
            yield from _batchnorm(f"{p}.bn2", width)
            yield f"{p}.conv3.weight", (out, width, 1, 1)
            yield from _batchnorm(f"{p}.bn3", out)
            if block == 0:  # the first block of a stage changes the width (and stride): a projection shortcut
                yield f"{p}.downsample.0.weight", (out, inplanes, 1, 1)
                yield from _batchnorm(f"{p}.downsample.1", out)
            inplanes = out
    yield "fc.weight", (num_classes, inplanes)
    yield "fc.bias", (num_classes,)


def reference_shapes(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """Every key of resnext50_32x4d's state_dict and its shape, in torchvision's order."""
    return dict(_reference(num_classes))


# ---------------------------------------------------------------------------------------------------------
# Tensors as the file describes them: made while the pickle is read, turned into arrays only once checked


class _Damaged(Exception):
    """The bytes are not a well-formed checkpoint; the text says what is wrong."""


class _Oversized(_Damaged):
    """The pickle declares more bytes than the file holds (which unpickling would try to allocate first)."""


class _Refused(Exception):
    """The pickle names a global (class or function) that only a code-running load could provide."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Inert:
    """Base of what the unpickler builds itself: pickle's BUILD opcode may not change its fields."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise _Damaged("the pickle tries to set the attributes of a tensor or storage")


class _DType(_Inert):
    """A torch dtype: its name, the numpy type code of its bytes (None where numpy has none) and its size."""

    __slots__ = ("name", "code", "itemsize", "floating")

    def __init__(self, name: str, code: str | None, itemsize: int, floating: bool = False) -> None:
        self.name, self.code, self.itemsize, self.floating = name, code, itemsize, floating

    def numpy(self, order: str) -> np.dtype[Any]:
        assert self.code is not None
        return np.dtype(f"{order}{self.code}")


_DTYPES = {d.name: d for d in (
    _DType("float32", "f4", 4, True), _DType("float64", "f8", 8, True), _DType("float16", "f2", 2, True),
    _DType("bfloat16", "u2", 2, True),  # the upper half of a float32: widened by shifting 16 bits
    _DType("int64", "i8", 8), _DType("int32", "i4", 4), _DType("int16", "i2", 2), _DType("int8", "i1", 1),
    _DType("uint64", "u8", 8), _DType("uint32", "u4", 4), _DType("uint16", "u2", 2), _DType("uint8", "u1", 1),
    _DType("bool", "?", 1), _DType("complex64", "c8", 8), _DType("complex128", "c16", 16),
    _DType("complex32", None, 4), _DType("qint8", None, 1), _DType("quint8", None, 1), _DType("qint32", None, 4),
    _DType("quint4x2", None, 1), _DType("quint2x4", None, 1), _DType("bits8", None, 1), _DType("bits16", None, 2),
    _DType("bits1x8", None, 1), _DType("bits2x4", None, 1), _DType("bits4x2", None, 1),
    _DType("float8_e5m2", None, 1, True), _DType("float8_e4m3fn", None, 1, True),
    _DType("float8_e5m2fnuz", None, 1, True), _DType("float8_e4m3fnuz", None, 1, True),
    _DType("float8_e8m0fnu", None, 1, True), _DType("float4_e2m1fn_x2", None, 1, True),
)}

# torch's legacy storage classes (torch.FloatStorage...), as torch.save names them in a storage's persistent id
_STORAGE_TYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "QInt8Storage": "qint8", "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32", "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}


class _StorageType(_Inert):
    __slots__ = ("dtype",)

    def __init__(self, dtype: _DType) -> None:
        self.dtype = dtype


class _Storage(_Inert):
    """A storage's bytes: a zip record, or a stretch of a legacy file (``data`` set once that part is read)."""

    __slots__ = ("dtype", "nbytes", "order", "root", "start", "_data")

    def __init__(self, dtype: _DType, nbytes: int, order: str, root: _Storage | None = None, start: int = 0) -> None:
        self.dtype, self.nbytes, self.order, self.root, self.start = dtype, nbytes, order, root, start
        self._data: memoryview | None = None

    @property
    def data(self) -> memoryview:
        if self.root is not None:
            return self.root.data[self.start : self.start + self.nbytes]
        if self._data is None:
            raise _Damaged("a storage's data is missing from the file")
        return self._data

    def fill(self, data: memoryview) -> None:
        if len(data) != self.nbytes:
            raise _Damaged(f"a storage holds {len(data)} bytes where {self.nbytes} were declared")
        self._data = data


class _Layout(_Inert):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Marker(_Inert):
    """A name the pickle may mention but that builds nothing itself (torch.Tensor, a quantization scheme...)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Tensor(_Inert):
    """A tensor as a view of a storage (offset, shape and strides in elements, bounds proven), or an array
    read from a .safetensors file; ``kind`` names what is not plain data (meta, sparse, quantized...)."""

    __slots__ = ("dtype", "shape", "kind", "storage", "offset", "stride", "array")

    def __init__(self, dtype: _DType, shape: tuple[int, ...], kind: str | None = None, storage: _Storage | None = None,
                 offset: int = 0, stride: tuple[int, ...] = (), array: np.ndarray | None = None) -> None:
        self.dtype, self.shape, self.kind = dtype, shape, kind
        self.storage, self.offset, self.stride, self.array = storage, offset, stride, array

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numbers(self) -> int:
        return math.prod(self.shape)

    def to_array(self) -> np.ndarray:
        """A fresh, writable, C-contiguous, native-endian array: float32 for every floating type."""
        if self.array is not None:
            view = self.array
        else:
            assert self.storage is not None and self.dtype.code is not None
            dtype = self.dtype.numpy(self.storage.order)
            if self.numbers == 0:
                view = np.zeros(self.shape, dtype)
            else:
                base = np.frombuffer(self.storage.data, dtype=dtype, count=self.storage.nbytes // dtype.itemsize)
                view = np.lib.stride_tricks.as_strided(base[self.offset :], self.shape, [s * dtype.itemsize for s in self.stride],
                                                       writeable=False)
        if self.dtype.name == "bfloat16":  # the upper 16 bits of a float32
            out = np.empty(self.shape, np.float32)
            np.left_shift(view, 16, out=out.view(np.uint32), dtype=np.uint32)
            return out
        if self.dtype.floating:
            return view.astype(np.float32, order="C")
        return view.astype(view.dtype.newbyteorder("="), order="C")


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(type(v) is int and v >= 0 for v in value):
        raise _Damaged(f"a tensor's {what} is not a list of counts ({value!r:.80})")
    return tuple(value)


def _view(storage: object, offset: object, size: object, stride: object, dtype: _DType | None = None) -> _Tensor:
    """A tensor over ``storage``, once every element it would read is proven to lie inside the storage."""
    if not isinstance(storage, _Storage):
        raise _Damaged(f"a tensor's storage is {type(storage).__name__}")
    dtype = dtype or storage.dtype
    shape, strides = _ints(size, "shape"), _ints(stride, "strides")
    if type(offset) is not int or offset < 0 or len(strides) != len(shape) or len(shape) > 64:
        raise _Damaged(f"a tensor's offset, shape and strides do not fit together ({offset!r:.40}, {shape}, {strides})")
    if dtype.code is not None:  # a type numpy can't hold is refused later, by name, and never read
        capacity = storage.nbytes // dtype.itemsize
        if 0 in shape:
            fits = offset <= capacity
        else:
            fits = offset + sum((n - 1) * s for n, s in zip(shape, strides)) < capacity
        if not fits:
            raise _Damaged(f"a tensor of shape {shape} (offset {offset}, strides {strides}) reaches beyond its "
                           f"storage of {capacity} numbers")
    return _Tensor(dtype, shape, storage=storage, offset=offset, stride=strides)


def _rebuild_tensor(storage: object, storage_offset: object, size: object, stride: object) -> _Tensor:
    return _view(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage: object, storage_offset: object, size: object, stride: object, requires_grad: object,
                       backward_hooks: object, metadata: object = None) -> _Tensor:
    return _view(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage: object, storage_offset: object, size: object, stride: object, requires_grad: object,
                       backward_hooks: object, dtype: object, metadata: object = None) -> _Tensor:
    if not isinstance(dtype, _DType):
        raise _Damaged(f"a tensor's type is {dtype!r:.40}")
    return _view(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data: object, requires_grad: object, backward_hooks: object, state: object = None) -> _Tensor:
    if not isinstance(data, _Tensor):
        raise _Damaged(f"a parameter holds {type(data).__name__}, not a tensor")
    return data


def _rebuild_meta_tensor_no_storage(dtype: object, size: object, stride: object, requires_grad: object = False) -> _Tensor:
    if not isinstance(dtype, _DType):
        raise _Damaged(f"a tensor's type is {dtype!r:.40}")
    return _Tensor(dtype, _ints(size, "shape"), kind="meta (shape only, no data)")


def _get_layout(name: object) -> _Layout:
    if not isinstance(name, str):
        raise _Damaged(f"a tensor layout is {name!r:.40}")
    return _Layout(name.replace("torch.", ""))


def _rebuild_sparse_tensor(layout: object, data: object) -> _Tensor:
    kind = layout.name if isinstance(layout, _Layout) else "sparse"
    parts = data if isinstance(data, tuple) else ()
    size = next((p for p in parts if isinstance(p, tuple) and all(type(v) is int for v in p)), None)
    values = next((p for p in parts if isinstance(p, _Tensor)), None)
    return _Tensor(values.dtype if values else _DTYPES["float32"], _ints(size, "shape") if size is not None else (), kind=kind)


def _rebuild_qtensor(storage: object, storage_offset: object, size: object, stride: object, quantizer_params: object,
                     requires_grad: object, backward_hooks: object) -> _Tensor:
    dtype = storage.dtype if isinstance(storage, _Storage) else _DTYPES["qint8"]
    return _Tensor(dtype, _ints(size, "shape"), kind="quantized")


def _rebuild_nested_tensor(buffer: object, sizes: object, strides: object, storage_offsets: object) -> _Tensor:
    return _Tensor(_DTYPES["float32"], (), kind="nested")


def _rebuild_device_tensor_from_cpu_tensor(data: object, dtype: object, device: object, requires_grad: object) -> _Tensor:
    if not isinstance(data, _Tensor) or data.dtype is not dtype:
        raise _Damaged("a device tensor changes its type on loading")
    return data


def _rebuild_from_type_v2(func: object, new_type: object, args: object, state: object) -> object:
    if func not in _REBUILDS.values() or not isinstance(new_type, _Marker) or not isinstance(args, tuple):
        raise _Damaged("a tensor subclass")
    assert callable(func)
    return func(*args)  # the tensor's Python attributes (``state``) are not needed


def _size(values: object = ()) -> tuple[int, ...]:
    return _ints(values, "size")


def _encode(text: object, encoding: object = "utf-8") -> bytes:  # how protocol 2 pickles bytes
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Damaged("bytes stored in an unexpected way")
    return text.encode("latin1")


def _bytearray(data: object = b"") -> bytearray:
    if not isinstance(data, (bytes, bytearray, list, tuple)):  # bytearray(10**12) would allocate
        raise _Damaged("a bytearray of an unexpected kind")
    return bytearray(data)


def _device(*args: object) -> str:
    return ":".join(str(a) for a in args if isinstance(a, (str, int)))


_REBUILDS: dict[str, Callable[..., object]] = {
    f"torch._utils.{f.__name__}": f for f in (
        _rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter, _rebuild_meta_tensor_no_storage,
        _rebuild_sparse_tensor, _rebuild_qtensor, _rebuild_nested_tensor, _rebuild_device_tensor_from_cpu_tensor)
}
_REBUILDS["torch._utils._rebuild_parameter_with_state"] = _rebuild_parameter

# Everything a pickled tensor state_dict can name. Each entry builds plain data or one of the classes above;
# nothing here imports a module, calls into torch or reaches the file system.
_GLOBALS: dict[str, object] = {
    **_REBUILDS,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.serialization._get_layout": _get_layout,
    "collections.OrderedDict": OrderedDict,
    "collections.Counter": Counter,
    "torch.Size": _size,
    "torch.device": _device,
    "torch.Tensor": _Marker("torch.Tensor"),
    "torch.nn.parameter.Parameter": _Marker("torch.nn.parameter.Parameter"),
    "_codecs.encode": _encode,
    "builtins.set": set,
    "builtins.bytearray": _bytearray,
    "builtins.complex": complex,
    **{f"torch.{name}": dtype for name, dtype in _DTYPES.items()},
    **{f"torch.{kind}": _StorageType(_DTYPES[name]) for kind, name in _STORAGE_TYPES.items()},
    **{f"torch.cuda.{kind}": _StorageType(_DTYPES[name]) for kind, name in _STORAGE_TYPES.items()},  # saved from a GPU
    "torch.storage.UntypedStorage": _StorageType(_DTYPES["uint8"]),
    **{f"torch.{scheme}": _Marker(scheme) for scheme in ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
                                                          "per_channel_symmetric", "per_channel_affine_float_qparams")},
}


_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_COUNT_WIDTHS = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
                 pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}


def _check_declared_sizes(stream: io.BytesIO) -> None:
    """Walk the pickle from the stream's position to its STOP, without building anything, and refuse it when one
    of its sizes (of bytes, a string, a bytearray, a long, a frame) declares more than the stream holds after it.
    pickle allocates such an object whole before reading it, so a few bytes declaring a terabyte would otherwise
    be refused only by running out of memory. At most MAX_PICKLE_OPS operations; the stream is left where it was."""
    start = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(start)
    try:
        for _ in range(MAX_PICKLE_OPS):
            code = stream.read(1)
            op = _OPCODES.get(code)
            if op is None or op.name == "STOP":
                return  # the end, or bytes that are no pickle: the unpickler says what is wrong with them
            arg = op.arg
            if arg is None:
                continue
            if arg.n == pickletools.UP_TO_NEWLINE:
                for _line in range(2 if arg.name == "stringnl_noescape_pair" else 1):
                    stream.readline()
                continue
            if arg.n > 0:  # a fixed size
                raw = stream.read(arg.n)
                if op.name == "FRAME" and len(raw) == 8:
                    _declared(int.from_bytes(raw, "little"), end - stream.tell())
                continue
            width, signed = _COUNT_WIDTHS[arg.n]
            raw = stream.read(width)
            if len(raw) < width:
                return
            declared = int.from_bytes(raw, "little", signed=signed)
            _declared(declared, end - stream.tell())
            stream.seek(max(declared, 0), io.SEEK_CUR)
        raise _Damaged(f"its pickle holds more than {MAX_PICKLE_OPS:,} operations, more than any checkpoint needs")
    finally:
        stream.seek(start)


def _declared(size: int, left: int) -> None:
    if size > left:
        raise _Oversized(f"a size declared in it ({size:,} bytes) is beyond the file's size (only {left:,} bytes "
                         "follow)")


class _Unpickler(pickle.Unpickler):
    """pickle, limited to the globals above; persistent ids (storages) go to ``storages``. Every size the pickle
    declares is checked against the bytes there are before anything is unpickled (``_check_declared_sizes``)."""

    def __init__(self, file: io.BytesIO, storages: Callable[[object], _Storage] | None = None) -> None:
        super().__init__(file, encoding="utf-8")
        self.file = file
        self.storages = storages

    def load(self) -> Any:
        _check_declared_sizes(self.file)
        return super().load()

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # Python 2's name
        found = _GLOBALS.get(f"{module}.{name}")
        if found is None:
            raise _Refused(name if module == "builtins" else f"{module}.{name}")
        return found

    def persistent_load(self, pid: object) -> _Storage:
        if self.storages is None:
            raise _Damaged("a tensor where none belongs")
        return self.storages(pid)


# ---------------------------------------------------------------------------------------------------------
# The formats torch.save writes


def _storage_id(pid: object, fields: int) -> tuple[_DType, str, int, tuple[object, ...]]:
    """(dtype, key, number of elements, the rest) of ``("storage", storage type, key, location, numel, ...)``."""
    if not isinstance(pid, tuple) or not pid:
        raise _Damaged(f"an unexpected persistent id {pid!r:.80}")
    typename = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
    if typename == "module":  # a whole nn.Module, saved with its source code
        raise _Refused("a saved nn.Module")
    if len(pid) != fields:
        raise _Damaged(f"an unexpected persistent id {pid!r:.80}")
    kind, key, location, numel = pid[1:5]
    if typename != "storage" or not isinstance(kind, _StorageType) or not isinstance(location, (str, bytes)):
        raise _Damaged(f"an unexpected persistent id {pid!r:.80}")
    if not isinstance(key, str) or type(numel) is not int or numel < 0:
        raise _Damaged(f"an unexpected storage id {pid!r:.80}")
    return kind.dtype, key, numel, pid[5:]


def _stored_member(buffer: memoryview, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> memoryview:
    """A zip member's bytes. torch.save stores its records uncompressed: those are read in place from
    ``buffer``, without a copy; anything compressed goes through zipfile (which checks its CRC)."""
    if info.compress_type != zipfile.ZIP_STORED:
        return memoryview(archive.read(info))
    start = info.header_offset
    header = bytes(buffer[start : start + 30])
    if len(header) < 30 or header[:4] != b"PK\x03\x04" or info.compress_size != info.file_size:
        raise _Damaged(f"the zip record {info.filename} is damaged")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    begin = start + 30 + name_len + extra_len
    if begin + info.file_size > len(buffer):
        raise _Damaged(f"the zip record {info.filename} is cut short")
    return buffer[begin : begin + info.file_size]


def _declared_size(archive: zipfile.ZipFile) -> int:
    return sum(info.file_size for info in archive.infolist())


def _read_zip(buffer: memoryview, archive: zipfile.ZipFile) -> object:
    """torch.save since 1.6: ``<name>/data.pkl`` (the pickle), ``<name>/data/<key>`` (each storage's raw bytes),
    ``<name>/byteorder`` ("little" or "big", absent before 1.10: little)."""
    infos = archive.infolist()
    if not infos:
        raise _Damaged("the archive is empty")
    prefix = infos[0].filename.split("/", 1)[0]  # torch keeps every record under one folder, named by the first
    members = {info.filename: info for info in infos}

    def record(name: str) -> memoryview | None:
        info = members.get(f"{prefix}/{name}")
        return _stored_member(buffer, archive, info) if info is not None else None

    pkl = record("data.pkl")
    if pkl is None:
        raise _Damaged("it has no data.pkl")
    mark = record("byteorder")
    mark_bytes = bytes(mark) if mark is not None else b"little"
    if mark_bytes not in (b"little", b"big"):
        raise _Damaged(f"unknown byte order {mark_bytes[:20]!r}")
    order = "<" if mark_bytes == b"little" else ">"
    seen: dict[str, _Storage] = {}

    def storage(pid: object) -> _Storage:
        dtype, key, numel, _ = _storage_id(pid, 5)
        nbytes = numel * dtype.itemsize
        found = seen.get(key)
        if found is None:
            data = record(f"data/{key}")
            if data is None:
                raise _Damaged(f"the storage {key} is missing")
            found = _Storage(dtype, len(data), order)
            found.fill(data)
            seen[key] = found
        if found.nbytes != nbytes:
            raise _Damaged(f"the storage {key} holds {found.nbytes} bytes, its tensors expect {nbytes}")
        return found if found.dtype is dtype else _Storage(dtype, nbytes, order, root=found)

    return _Unpickler(io.BytesIO(pkl), storage).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _read_legacy(data: bytes) -> object:
    """torch.save before 1.6 (and with ``_use_new_zipfile_serialization=False``): pickles of the magic number,
    the protocol version and the system info, then the object, then the list of storage keys; then each
    storage's bytes, after its element count (8 bytes, little-endian). torch writes the data little-endian."""
    if data[257:262] == b"ustar":
        raise _Damaged("it is in the .tar format of PyTorch before 0.4, which cannot be read safely")
    buffer = memoryview(data)
    stream = io.BytesIO(data)  # shares ``data``'s memory (it is bytes) until written to, which it never is
    if _Unpickler(stream).load() != _LEGACY_MAGIC:
        raise _Damaged("invalid magic number")
    if _Unpickler(stream).load() != _LEGACY_PROTOCOL:
        raise _Damaged("unknown protocol version")
    _Unpickler(stream).load()  # system info: byte order and C type sizes, which the data does not depend on
    roots: dict[str, _Storage] = {}
    views: dict[str, _Storage] = {}

    def storage(pid: object) -> _Storage:
        dtype, key, numel, (view,) = _storage_id(pid, 6)
        root = roots.get(key)
        if root is None:
            root = roots[key] = _Storage(dtype, numel * dtype.itemsize, "<")
        elif root.nbytes != numel * dtype.itemsize:
            raise _Damaged(f"the storage {key} is declared with two sizes")
        if view is None:
            return root if root.dtype is dtype else _Storage(dtype, root.nbytes, "<", root=root)
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and all(type(v) is int and v >= 0 for v in view[1:])):
            raise _Damaged(f"an unexpected storage view {view!r:.80}")
        view_key, offset, size = view  # in elements
        if (offset + size) * dtype.itemsize > root.nbytes:
            raise _Damaged(f"the storage view {view_key} reaches beyond its storage")
        if view_key not in views:
            views[view_key] = _Storage(dtype, size * dtype.itemsize, "<", root=root, start=offset * dtype.itemsize)
        return views[view_key]

    obj = _Unpickler(stream, storage).load()
    keys = _Unpickler(stream).load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Damaged("its list of storages is damaged")
    pos = stream.tell()
    for key in keys:
        root = roots.get(key)
        if root is None:
            raise _Damaged(f"it holds data for a storage ({key}) that no tensor uses")
        count = bytes(buffer[pos : pos + 8])
        if len(count) < 8:
            raise _Damaged("pickle data was truncated")
        numel = int.from_bytes(count, "little")
        if numel * root.dtype.itemsize != root.nbytes:
            raise _Damaged(f"the storage {key} has the wrong size")
        pos += 8
        if pos + root.nbytes > len(buffer):
            raise _Damaged("its data is cut short")
        root.fill(buffer[pos : pos + root.nbytes])
        pos += root.nbytes
    for key, root in roots.items():
        if root._data is None:
            raise _Damaged(f"the data of storage {key} is missing")
    return obj


# ---------------------------------------------------------------------------------------------------------
# Reading and checking


def _refuse_size(path: Path, declared: int) -> None:
    if declared > MAX_CHECKPOINT_BYTES:
        raise WeightsError(
            f"refused to load {path}: its data is {declared / 1e6:,.0f} MB when unpacked, more than a "
            f"ResNeXt-50 32x4d checkpoint can need (at most {MAX_CHECKPOINT_BYTES / 1e6:,.0f} MB)"
        )


def _read_bytes(path: Path) -> bytes:
    """The whole file, read once, after checking it is a regular file of a plausible size."""
    try:
        st = path.stat()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    problem = not_a_regular_file(path, st)
    if problem:
        raise WeightsError(problem)
    if st.st_size == 0:
        raise WeightsError(f"weights file {path} is empty")
    _refuse_size(path, st.st_size)
    try:  # non-blocking: if a FIFO took the file's place since the check, opening it must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fh:
            problem = not_a_regular_file(path, os.fstat(fh.fileno()))
            if problem:
                raise WeightsError(problem)
            data = fh.read(st.st_size + 1)  # one more: a file that grew since the check is noticed
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    if not data:
        raise WeightsError(f"weights file {path} is empty")
    if len(data) > st.st_size:
        raise WeightsError(f"weights file {path} changed while it was being read; try again once it is complete")
    return data


def _read_pth(data: bytes, path: Path) -> tuple[dict[str, _Tensor], list[str] | None]:
    """Tensors and any embedded labels, without running code from the file."""
    buffer = memoryview(data)
    try:
        if data[:4] == b"PK\x03\x04":  # torch.save's format: a zip of uncompressed records
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                _refuse_size(path, _declared_size(archive))
                obj = _read_zip(buffer, archive)
        else:
            obj = _read_legacy(data)
    except WeightsError:
        raise
    except _Oversized as exc:
        raise WeightsError(f"refused to load {path}: {exc}; it is damaged or made to exhaust memory") from None
    except _Refused as exc:
        raise WeightsError(
            f"refused to load {path}: besides tensors it holds Python objects ({exc.name}), and loading "
            f"them could run code. Only plain state_dicts (or .safetensors) are accepted"
        ) from None
    except Exception as exc:  # the unpickler raises UnpicklingError, EOFError, KeyError... on bad bytes
        first = (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__
        raise WeightsError(f"weights file {path} is truncated or not a PyTorch checkpoint ({first})") from None
    labels = None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        labels = obj.get("labels")
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, _Tensor) for k, v in obj.items()):
        raise WeightsError(f"{path} is not a state_dict (a mapping of parameter names to tensors)")
    if labels is not None and not (isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)):
        raise WeightsError(f"{path}: 'labels' must be a list of strings")
    return dict(obj), list(labels) if labels is not None else None


# safetensors' dtype names, and torch's for the same types
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "U64": "uint64",
    "I32": "int32", "U32": "uint32", "I16": "int16", "U16": "uint16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
    "C64": "complex64", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu",
}


def _read_safetensors(data: bytes, path: Path) -> tuple[dict[str, _Tensor], list[str] | None]:
    from safetensors import SafetensorError  # its deserialize is what safetensors.numpy.load reads with
    from safetensors import deserialize as _deserialize

    deserialize = cast(Callable[[bytes], list[tuple[str, dict[str, Any]]]], _deserialize)
    try:
        records = deserialize(data)
        (length,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + length]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"weights file {path} is truncated or not a safetensors file ({exc})") from None
    state = {}
    for name, record in records:
        shape = tuple(int(n) for n in record["shape"])
        dtype = _DTYPES.get(_SAFETENSORS_DTYPES.get(record["dtype"], ""))
        if dtype is None:  # a type this app has no use for: refused by name once the tensor's role is known
            kind = str(record["dtype"])
            dtype = _DType(kind.lower(), None, 1, floating=kind.startswith(("F", "BF")))
        array = None
        if dtype.code is not None:
            array = np.frombuffer(record["data"], dtype=dtype.numpy("<")).reshape(shape)
        state[name] = _Tensor(dtype, shape, array=array, kind=None)
    labels = None
    if "labels" in meta:
        try:
            labels = json.loads(meta["labels"])
        except json.JSONDecodeError:
            labels = meta["labels"].splitlines()
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise WeightsError(f"{path}: the 'labels' metadata must be a JSON list of strings")
    return state, labels


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




def _check_architecture(state: dict[str, _Tensor], path: Path) -> int:
    """Compare keys and shapes with resnext50_32x4d; return the number of classes from fc.weight."""
    fc = state.get("fc.weight")
    if fc is None or fc.ndim != 2:
        raise WeightsError(f"{path} is not a ResNeXt-50 32x4d checkpoint: it has no classifier 'fc.weight'")
    num_classes = int(fc.shape[0])
    if num_classes < 1:
        raise WeightsError(f"{path} has a classifier with 0 classes: there is nothing it could predict")
    reference = reference_shapes(num_classes)
    # BatchNorm's step counter is not needed to run the network; older saves leave it out
    missing = [k for k in reference if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in reference]
    wrong = [f"{k} is {state[k].shape}, expected {shape}" for k, shape in reference.items() if k in state and state[k].shape != shape]
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


def _not_plain(path: Path, name: str, tensor: _Tensor) -> WeightsError:
    return WeightsError(f"{path}: tensor {name} is a {tensor.kind} tensor, not plain weights")


def _to_arrays(state: dict[str, _Tensor], path: Path) -> dict[str, np.ndarray]:
    """Every tensor must be plain, real, finite data: no meta or sparse tensors, no integers, no NaN/inf."""
    total = sum(t.numbers for t in state.values())
    if total > MAX_NUMBERS:
        raise WeightsError(f"refused to load {path}: its tensors hold {total / 1e6:,.0f} million numbers, more than a "
                           f"ResNeXt-50 32x4d checkpoint can need (at most {MAX_NUMBERS / 1e6:,.0f} million)")
    arrays = {}
    for name, tensor in state.items():
        dtype = tensor.dtype
        if tensor.kind:
            raise _not_plain(path, name, tensor)
        if name.endswith(".num_batches_tracked"):
            if dtype.floating or dtype.name.startswith("complex") or dtype.name == "bool" or dtype.code is None:
                raise WeightsError(f"{path}: tensor {name} is torch.{dtype.name}, expected an integer count")
            arrays[name] = tensor.to_array().astype(np.int64)
            continue
        if not dtype.floating:
            raise WeightsError(f"{path}: tensor {name} is {dtype.name}, expected floating-point weights")
        if dtype.code is None:
            raise WeightsError(f"{path}: tensor {name} is {dtype.name}, a number format this app cannot read "
                               "(save the checkpoint in float32, float16 or bfloat16)")
        array = tensor.to_array()
        if not bool(np.isfinite(array).all()):
            raise WeightsError(f"{path}: tensor {name} holds NaN or infinite values; the checkpoint is damaged "
                               "(or was saved from a training run that diverged)")
        arrays[name] = array
    return arrays


def image_kind(data: bytes) -> str | None:
    """The image format whose signature ``data`` starts with (PNG, JPEG, GIF, WebP, TIFF, BMP, HEIF, AVIF), or
    None. A checkpoint never starts like one: a zip (PK), a pickle (0x80), or safetensors' header length."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    # BMP: "BM", the file's size, then four reserved zero bytes (safetensors' 8-byte header length starting
    # with "BM" has zeros where the size is)
    if data.startswith(b"BM") and len(data) >= 14 and data[2:6] != b"\x00" * 4 and data[6:10] == b"\x00" * 4:
        return "BMP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
        return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIF"
    return None


def read_checkpoint(source: WeightsSource) -> Checkpoint:
    """Read ``source`` once, check it is a ResNeXt-50 32x4d state_dict of plain finite weights, find its labels."""
    path = Path(source.path)
    data = _read_bytes(path)
    kind = image_kind(data[:16])
    if kind is not None:  # a photo given as the weights: said plainly, before any parser guesses at it
        raise WeightsError(f"{path} is a {kind} image, not a weights file: give a ResNeXt-50 checkpoint "
                           "(.pth, .pt or .safetensors) as the weights")
    digest = hashlib.sha256(data).hexdigest()
    state, labels = _read_safetensors(data, path) if path.suffix == ".safetensors" else _read_pth(data, path)
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    for name, tensor in state.items():
        if tensor.kind and tensor.ndim == 0 and tensor.kind not in ("meta (shape only, no data)", "quantized"):
            raise _not_plain(path, name, tensor)  # no shape known to compare with the network's
    num_classes = _check_architecture(state, path)
    arrays = _to_arrays(state, path)
    del data, state  # the file's bytes: only the arrays copied out of them are kept
    if labels is None:
        labels = _sidecar_labels(path)
    if labels is None:
        labels = imagenet_labels() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]
    if len(labels) != num_classes:
        raise WeightsError(f"{path}: the checkpoint has {num_classes} classes but {len(labels)} labels")
    return Checkpoint(arrays, labels, source, digest)
