"""Where checkpoints come from: the official variants, the lookup order, and a verified, atomic download."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch.hub
from torchvision.models import ResNeXt50_32X4D_Weights

from .errors import DownloadError, NoWeightsError, WeightsError
from .resources import assets_dirs

ENV_WEIGHTS = "RESNEXT_GUI_WEIGHTS"
ENV_MIRROR = "RESNEXT_GUI_WEIGHTS_URL"  # a mirror of the official file, for networks that can't reach the original
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")


@dataclass(frozen=True)
class Variant:
    """One official ImageNet checkpoint, described by torchvision's own weights enum."""

    key: str
    weights: ResNeXt50_32X4D_Weights

    @property
    def url(self) -> str:
        return self.weights.url

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        return hash_prefix_of(self.filename) or ""

    @property
    def acc1(self) -> float:
        return self.weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]

    @property
    def size_bytes(self) -> int:
        return int(self.weights.meta.get("_file_size", 0) * 1024 * 1024)

    def describe(self) -> str:
        return f"ImageNet {self.weights.name} (acc@1 {self.acc1})"


VARIANTS: dict[str, Variant] = {
    "v2": Variant("v2", ResNeXt50_32X4D_Weights.IMAGENET1K_V2),
    "v1": Variant("v1", ResNeXt50_32X4D_Weights.IMAGENET1K_V1),
}
DEFAULT_VARIANT = VARIANTS["v2"]


def hash_prefix_of(filename: str) -> str | None:
    """The sha256 prefix torch.hub embeds in checkpoint names (``name-<hex>.pth``), if any."""
    match = torch.hub.HASH_REGEX.search(filename)
    return match.group(1) if match else None


def variant_of(path: Path) -> Variant | None:
    """The official variant a file is, judged by its canonical file name."""
    for variant in VARIANTS.values():
        if Path(path).name == variant.filename:
            return variant
    return None


@dataclass(frozen=True)
class WeightsSource:
    """A checkpoint file chosen by the lookup, and why it was chosen."""

    path: Path
    origin: str
    variant: Variant | None

    @property
    def transforms_variant(self) -> Variant:
        """The preprocessing to use: the official variant's own, else V2's (what fine-tunes usually start from)."""
        return self.variant or DEFAULT_VARIANT

    def describe(self) -> str:
        what = self.variant.describe() if self.variant else "custom checkpoint"
        return f"{what}: {self.path} (from {self.origin})"


def hub_checkpoint_dir() -> Path:
    """Where torchvision keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def bundled_weights_dirs() -> list[Path]:
    """Folders that may hold weights shipped with the app (frozen build's data folder, or assets/weights)."""
    return [d / "weights" for d in assets_dirs()]


def _checkpoint_in(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    official = [folder / v.filename for v in VARIANTS.values()]
    for path in official:
        if path.is_file():
            return path
    others = sorted(p for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
    return others[0] if others else None


def candidates(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Every place the lookup would consider, in order, as (origin, path)."""
    places: list[tuple[str, Path]] = []
    if explicit:
        places.append(("--weights", Path(explicit)))
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        places.append((ENV_WEIGHTS, Path(env)))
    for folder in bundled_weights_dirs():
        found = _checkpoint_in(folder)
        places.append(("bundled", found if found else folder))
    cache = hub_checkpoint_dir()
    for variant in VARIANTS.values():
        places.append(("torch hub cache", cache / variant.filename))
    return places


def find_weights(explicit: str | os.PathLike | None = None) -> WeightsSource:
    """Apply the lookup order: --weights, $RESNEXT_GUI_WEIGHTS, bundled, torch hub cache.

    A file named explicitly (flag or environment) must exist: silently using another one would be a
    surprise. Raises NoWeightsError when nothing is found, with both ways out in the message.
    """
    for origin, path in candidates(explicit):
        if origin in ("--weights", ENV_WEIGHTS):
            if not path.is_file():
                raise WeightsError(f"weights file not found: {path} (given by {origin})")
            return WeightsSource(path, origin, variant_of(path))
        if path.is_file():
            return WeightsSource(path, origin, variant_of(path))
    raise NoWeightsError(no_weights_message())


def no_weights_message() -> str:
    return (
        "No ResNeXt-50 weights found. This app never guesses with untrained weights.\n"
        f"  - download the official ImageNet weights ({DEFAULT_VARIANT.size_bytes // 2**20} MB) with:"
        "  resnext-gui weights fetch\n"
        "  - or use a checkpoint you have:  resnext-gui --weights FILE  "
        f"(or set {ENV_WEIGHTS}=FILE)\n"
        f"Looked in: {ENV_WEIGHTS}, {', '.join(str(d) for d in bundled_weights_dirs())}, "
        f"{hub_checkpoint_dir()}"
    )


class DownloadCancelled(DownloadError):
    """The user stopped the download; nothing was kept."""


ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total or 0 when unknown)


def download(
    url: str,
    dest: Path,
    hash_prefix: str | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking length and the sha256 prefix.

    Same checks as torch.hub.download_url_to_file, plus what a GUI needs: a progress callback,
    cooperative cancellation, and a short-read check. The data goes to a temporary file next to
    ``dest`` and is renamed only once verified, so a failure never leaves a file at ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        done = 0
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0)
                if progress:
                    progress(0, total)
                while True:
                    if cancelled and cancelled():
                        raise DownloadCancelled("download cancelled")
                    chunk = response.read(1 << 16)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except DownloadError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(f"download from {url} failed: {reason}") from None
        if total and done != total:
            raise DownloadError(
                f"download from {url} was cut off: got {done:,} of {total:,} bytes; nothing was saved"
            )
        if hash_prefix and not digest.hexdigest().startswith(hash_prefix):
            raise DownloadError(
                f"downloaded file does not match its checksum (expected sha256 {hash_prefix}..., "
                f"got {digest.hexdigest()[:len(hash_prefix)]}...); nothing was saved"
            )
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    variant: Variant = DEFAULT_VARIANT,
    url: str | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Path:
    """Download an official checkpoint into the torch hub cache (where torchvision looks too).

    ``url`` (or $RESNEXT_GUI_WEIGHTS_URL) points at a mirror; as with torch.hub, the sha256 prefix in
    the URL's file name is checked.
    """
    url = url or os.environ.get(ENV_MIRROR) or variant.url
    expected = hash_prefix_of(url.rsplit("/", 1)[-1])
    if not expected:
        raise DownloadError(
            f"cannot verify {url}: its file name carries no sha256 prefix (like {variant.filename})"
        )
    return download(url, hub_checkpoint_dir() / variant.filename, expected, progress, cancelled)
