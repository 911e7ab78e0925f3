"""Which device runs the network, what the CPU can do, and the runtimes' versions, without importing torch needlessly."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import DeviceError


@dataclass(frozen=True)
class Device:
    """A device by name, as torch spells it ("cpu", "cuda", "cuda:1", "mps"); ``str()`` gives that name."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = Device("cpu")


def torch_installed() -> bool:
    """Whether torch can be imported at all (the light CPU app has none)."""
    if "torch" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def openvino_installed() -> bool:
    """Whether the OpenVINO package is there (looked for, not imported: a quick look the window can afford)."""
    if "openvino" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


RUNTIME_NAMES = {"auto": "Automatic", "torch": "PyTorch", "openvino": "OpenVINO"}  # as the Device menu names them


def runtime_problem(backend: str) -> str | None:
    """Why this installation cannot run the CPU runtime ``backend`` ("torch", "openvino"); None when it can.
    "auto" always can: it is OpenVINO where installed, else PyTorch."""
    if backend == "torch" and not torch_installed():
        return "this build of the app has no PyTorch (its CPU runtime is OpenVINO)"
    if backend == "openvino" and not openvino_installed():
        return "OpenVINO is not installed (pip install openvino)"
    return None


def _nvidia_driver_present() -> bool:
    """Linux: the NVIDIA kernel driver is loaded. Without it CUDA cannot work, so torch need not be asked."""
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def gpu_possible() -> bool:
    """Whether asking torch about a GPU can give yes. False on Linux without an NVIDIA driver and without torch."""
    if not torch_installed():
        return False
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        return _nvidia_driver_present()
    return True


def resolve(name: str = "auto") -> Device:
    """``auto``: CUDA, else Apple MPS, else CPU. Asking for a device that is not there is a DeviceError.

    torch is imported only when a GPU is possible (or asked for): on a computer without an NVIDIA driver
    ``auto`` is the CPU at once, and the CPU runtime needs no torch.
    """
    name = (name or "auto").lower()
    if name == "cpu":
        return CPU
    if name == "auto" and not gpu_possible():
        return CPU
    if name not in ("auto", "mps") and not (name == "cuda" or name.startswith("cuda:")):
        raise DeviceError(f"unknown device {name!r}: choose auto, cpu, cuda or mps")
    if not torch_installed():
        what = "Apple MPS" if name == "mps" else "CUDA"
        raise DeviceError(f"{what} was requested, but this build of the app runs on the CPU only (use --device cpu or auto)")
    from .model import resolve_device  # torch

    dev = resolve_device(name)
    return Device(dev.type, dev.index)


def cuda_available() -> bool:
    """Whether a CUDA GPU can be used (asks torch only when a GPU is possible at all)."""
    if not gpu_possible():
        return False
    import torch

    return bool(torch.cuda.is_available())


def cpu_threads() -> int:
    """The threads the CPU runtimes use by default: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe(device: Device) -> str:
    """A short label for the status bar: "CUDA · <GPU name>" or "CPU · N threads"."""
    if device.type == "cuda":
        import torch

        return f"CUDA · {torch.cuda.get_device_name(str(device))}"
    if device.type == "mps":
        return "MPS · Apple GPU"
    threads = cpu_threads()
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return f"CPU · {threads} thread{'s' if threads != 1 else ''}"


def set_threads(threads: int | None) -> None:
    """Thread settings are per thread in torch: call this in the thread that runs the model (no-op without torch)."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(threads or torch.get_num_threads())


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is slower, not faster."""
    flags = _cpu_flags()
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return True
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no OpenVINO, or a runtime that can't say
        return False


def cpu_capability() -> str:
    """The widest vector instructions the CPU has, as torch names its kernel levels (AVX512, AVX2, DEFAULT)."""
    if "torch" in sys.modules:
        backends = getattr(sys.modules["torch"].backends, "cpu", None)
        if backends is not None and hasattr(backends, "get_cpu_capability"):
            return str(backends.get_cpu_capability())
    flags = _cpu_flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "AVX512"
    if "avx2" in flags:
        return "AVX2"
    return "DEFAULT" if flags else "unknown"


def versions() -> dict[str, str]:
    """The versions of the numerical runtimes in this process (torch only when it is already loaded)."""
    out: dict[str, str] = {}
    for name in ("torch", "torchvision"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    if "openvino" in sys.modules:
        out["openvino"] = str(sys.modules["openvino"].get_version()).split("-")[0]
    return out
