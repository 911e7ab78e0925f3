"""Static checks of a built bundle: the newest glibc symbol version each ELF file needs, and dangling links."""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_NEED = re.compile(r"Name: (GLIBC_|GLIBCXX_|CXXABI_)([\d.]+)")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".") if x)


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def needed_versions(path: Path) -> dict[str, tuple[int, ...]]:
    """The newest GLIBC_ / GLIBCXX_ / CXXABI_ version ``path`` requires (readelf's version-needs section)."""
    out = subprocess.run(["readelf", "-V", "--wide", str(path)], capture_output=True, text=True, timeout=120).stdout
    # Only the "needs" part: the definitions part of libc/libstdc++ themselves would list every version.
    needs = out.split("Version needs section", 1)[1] if "Version needs section" in out else ""
    best: dict[str, tuple[int, ...]] = {}
    for prefix, ver in _NEED.findall(needs):
        v = _version(ver)
        if v > best.get(prefix, ()):
            best[prefix] = v
    return best


def elf_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink() and is_elf(p)]


def glibc_floor(root: Path, workers: int = 2) -> dict[Path, dict[str, tuple[int, ...]]]:
    """Every ELF file under ``root`` with the versions it needs."""
    files = elf_files(root)
    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(files, pool.map(needed_versions, files)))


def dangling_links(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_symlink() and not p.exists()]


def fmt(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


if __name__ == "__main__":  # python -m tests.support.bundle_scan dist/resnext-gui
    import sys

    root = Path(sys.argv[1])
    table = glibc_floor(root, workers=os.cpu_count() or 2)
    for path, need in sorted(table.items(), key=lambda kv: kv[1].get("GLIBC_", ()), reverse=True)[:25]:
        print(fmt(need.get("GLIBC_", ())), fmt(need.get("GLIBCXX_", ())), path.relative_to(root))
    print("max GLIBCXX:", fmt(max((n.get("GLIBCXX_", ()) for n in table.values()), default=())))
    print("dangling:", [str(p.relative_to(root)) for p in dangling_links(root)])


def is_light(exe: Path) -> bool:
    """Whether a bundle is the light CPU app (no torch inside) rather than the CUDA app."""
    return not (Path(exe).parent / "_internal" / "torch").exists()


FORBIDDEN_IN_LIGHT = re.compile(r"(^|/)(torch|torchvision|triton|nvidia|functorch)(/|$)|lib(torch|c10|nvrtc|cuda|cublas|cudnn|nccl|cusparse|cufft|curand|nvjitlink)[^/]*\.so",
                                re.IGNORECASE)


def torch_or_nvidia_files(root: Path) -> list[str]:
    """Every file or folder of the bundle that belongs to torch or to NVIDIA's CUDA stack."""
    found = []
    for path in Path(root).rglob("*"):
        rel = str(path.relative_to(root))
        if FORBIDDEN_IN_LIGHT.search(rel):
            found.append(rel)
    return sorted(found)


RAY = re.compile(r"(^|/)(ray|pyarrow)(/|$)|(^|/)_raylet[^/]*\.so$|(^|/)ray-[^/]*\.dist-info(/|$)", re.IGNORECASE)


def ray_files(root: Path) -> list[str]:
    """Every file or folder of the bundle that belongs to Ray (the cluster extra), which neither app carries."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if RAY.search(str(p.relative_to(root))))
