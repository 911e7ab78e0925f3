"""A clean Debian 12 root filesystem with only the desktop baseline, cached between runs, to run the bundle in."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

SUITE = "bookworm"
# What every Linux desktop has; the bundle must carry everything its Qt platform plugins need beyond this.
DESKTOP_BASELINE = ("libgl1", "libegl1", "libfontconfig1", "fonts-dejavu-core", "libxkbcommon0", "libdbus-1-3",
                    "libxcb1", "libx11-6")
CACHE_ROOT = Path(os.environ.get("RESNEXT_GUI_ROOTFS_CACHE", "/var/tmp/resnext-gui-rootfs"))


def apt_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The machine's configured Debian mirror: the first `deb` URI in the apt sources that is not a security one."""
    uris: list[str] = []
    files = sorted((etc / "sources.list.d").glob("*.sources")) if (etc / "sources.list.d").is_dir() else []
    for f in files:  # deb822 stanzas
        for stanza in re.split(r"\n\s*\n", f.read_text(errors="replace")):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes").lower() != "no":
                uris += fields.get("URIs", "").split()
    lists = [etc / "sources.list"] + (sorted((etc / "sources.list.d").glob("*.list")) if (etc / "sources.list.d").is_dir() else [])
    for f in lists:
        if f.is_file():
            for line in f.read_text(errors="replace").splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
                if m:
                    uris.append(m.group(1))
    for uri in uris:
        if not uri.rstrip("/").endswith("-security"):
            return uri
    raise RuntimeError("no Debian mirror found in the apt sources (/etc/apt/sources.list[.d])")


def cached_rootfs(mirror: str) -> Path:
    """A minbase bookworm rootfs with the desktop baseline; built once a day per mirror, kept under CACHE_ROOT."""
    key = hashlib.sha256(f"{mirror} {SUITE} {' '.join(DESKTOP_BASELINE)}".encode()).hexdigest()[:10]
    today = datetime.date.today().strftime("%Y%m%d")
    target = CACHE_ROOT / f"{SUITE}-minbase-{key}-{today}"
    if (target / ".complete").is_file():
        return target
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    for old in CACHE_ROOT.glob(f"{SUITE}-minbase-*"):  # yesterday's, or a half-made one
        shutil.rmtree(old, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(DESKTOP_BASELINE)}", SUITE,
                    str(target), mirror], check=True, capture_output=True, timeout=1800)
    for point in MOUNT_POINTS:  # empty folders the tests bind host folders onto
        (target / point).mkdir(parents=True, exist_ok=True)
    (target / ".complete").write_text(f"{mirror}\n")
    return target


MOUNT_POINTS = ("opt/resnext-gui", "opt/resnext-gui-altered", "work", "tmp/.X11-unix", "etc/pki/tls/certs")


def chroot_command(root: Path, binds: dict[str, Path], env: dict[str, str], args: list[str]) -> list[str]:
    """A command running ``args`` in ``root`` with exactly ``env``, host folders bound in (chroot path -> host).

    Everything runs in a private mount namespace (unshare): /proc, /dev and the binds vanish with the process,
    so nothing stays mounted inside the cached root filesystem, whatever happens to the test.
    """
    script = ["set -e", f'mount -t proc proc "{root}/proc"', f'mount --bind /dev "{root}/dev"']
    for inside, host in binds.items():
        script.append(f"mount --bind {shlex.quote(str(host))} {shlex.quote(str(root / inside.strip('/')))}")
    script.append("exec chroot " + shlex.join([str(root), "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()], *args]))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)]
