"""Where checkpoints come from: the official variants, the lookup order, and a verified, atomic download."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import stat
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .certs import tls_context
from .errors import DownloadError, NoConnectionError, NoWeightsError, WeightsError
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .resources import assets_dirs

ENV_WEIGHTS = "RESNEXT_GUI_WEIGHTS"
ENV_MIRROR = "RESNEXT_GUI_WEIGHTS_URL"  # a mirror of the official file, for networks that can't reach the original
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")


@dataclass(frozen=True)
class Variant:
    """One official ImageNet checkpoint: where it lives, how it scored, its preprocessing, and what a
    download is checked against.

    The expected sha256 prefix, size and (where known) full digest belong to the variant, never to the URL
    the bytes come from: a mirror only changes where the bytes come from.
    """

    key: str
    name: str  # torchvision's name for these weights, e.g. "IMAGENET1K_V2"
    url: str
    acc1: float  # ImageNet-1K top-1 accuracy (%), as torchvision lists it
    resize: int  # the shorter side is scaled to this (bilinear, antialiased)...
    crop: int  # ...then the centre square of this side is the network's input
    hash_prefix: str  # the sha256 prefix torch.hub embeds in the official file name
    size_bytes: int  # the file's size as torchvision lists it (MiB with three decimals)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    size_slack: int = 16 * 1024  # how far the real size may be from ``size_bytes`` (rounding of that listing)
    sha512: str | None = None  # the full digest, where a public source pins it (see VARIANTS)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def preprocessing(self) -> Preprocessing:
        """The input these weights were trained for: torchvision's ``weights.transforms()``."""
        return Preprocessing(self.resize, self.crop, self.mean, self.std)

    def describe(self) -> str:
        return f"ImageNet {self.name} (acc@1 {self.acc1})"


# No public source we could find lists the full sha256 of these two files, so the sha256 check is the
# 8-digit prefix torch.hub itself uses, bound to the variant. For V1, MLCommons' training reference pins the
# full SHA-512 (github.com/mlcommons/training, single_stage_detector/scripts/download_backbone.sh), which is
# checked as well.
_V1_SHA512 = (
    "15c9f0bc1c8d64750712f86ffaded3b0bc6a87e77a395dcda3013d8af65b7ebf"
    "3ca1c24dd3aae60c0d83e510b4d27731f0526b6f9392c0a85ffc18e5fecd8a13"
)

_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torch.hub's HASH_REGEX


def hash_prefix_of(filename: str) -> str | None:
    """The sha256 prefix torch.hub embeds in checkpoint names (``name-<hex>.pth``), if any."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


def _official(key: str, name: str, url: str, acc1: float, file_size_mib: float, resize: int,
              sha512: str | None = None) -> Variant:
    return Variant(key, name, url, acc1, resize, crop=224, hash_prefix=hash_prefix_of(url.rsplit("/", 1)[-1]) or "",
                   size_bytes=int(round(file_size_mib * 2**20)), sha512=sha512)


# torchvision's ResNeXt50_32X4D_Weights, copied (tests/core/test_weights.py checks every field against it).
VARIANTS: dict[str, Variant] = {
    "v2": _official("v2", "IMAGENET1K_V2", "https://download.pytorch.org/models/resnext50_32x4d-1a0047aa.pth",
                    acc1=81.198, file_size_mib=95.833, resize=232),
    "v1": _official("v1", "IMAGENET1K_V1", "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
                    acc1=77.618, file_size_mib=95.789, resize=256, sha512=_V1_SHA512),
}
DEFAULT_VARIANT = VARIANTS["v2"]


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
    """Where torchvision keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``.

    Computed as ``torch.hub.get_dir()`` does: ``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else
    ``~/.cache/torch`` (a variable set to the empty string counts as set, as it does there).
    """
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


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


def candidates(explicit: str | os.PathLike[str] | None = None) -> list[tuple[str, Path]]:
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


def not_a_regular_file(path: Path, st: os.stat_result | None = None) -> str | None:
    """Why ``path`` can't be a checkpoint file though it exists (a folder, a FIFO, a device...); None if it can.

    Checked before anything opens the file: opening a FIFO would wait forever for a writer.
    """
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            return None
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a folder, not a checkpoint file"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file (a pipe, device or socket), not a checkpoint file"
    return None


def find_weights(explicit: str | os.PathLike[str] | None = None) -> WeightsSource:
    """Apply the lookup order: --weights, $RESNEXT_GUI_WEIGHTS, bundled, torch hub cache.

    A file named explicitly (flag or environment) must exist: silently using another one would be a
    surprise. Raises NoWeightsError when nothing is found, with both ways out in the message.
    """
    for origin, path in candidates(explicit):
        if origin in ("--weights", ENV_WEIGHTS):
            problem = not_a_regular_file(path)
            if problem:
                raise WeightsError(f"{problem} (given by {origin})")
            if not path.is_file():
                raise WeightsError(f"weights file not found: {path} (given by {origin})")
            return WeightsSource(path, origin, variant_of(path))
        if path.is_file():
            return WeightsSource(path, origin, variant_of(path))
    raise NoWeightsError(no_weights_message())


def looked_in() -> list[tuple[str, str]]:
    """The places the lookup order searches after an explicit file, each once, with what it looks for there:
    (place, files)."""
    official = [v.filename for v in VARIANTS.values()]
    any_checkpoint = f"any {', '.join(CHECKPOINT_SUFFIXES[:-1])} or {CHECKPOINT_SUFFIXES[-1]} file"
    env = os.environ.get(ENV_WEIGHTS)
    places = [(f"${ENV_WEIGHTS}", f"the file it names: {env}" if env else "not set")]
    places += [(str(d), f"{', '.join(official)} or {any_checkpoint}") for d in bundled_weights_dirs()]
    places.append((str(hub_checkpoint_dir()), " or ".join(official)))
    return places


def no_weights_message() -> str:
    return (
        "No ResNeXt-50 weights found. This app never guesses with untrained weights.\n"
        f"  - download the official ImageNet weights ({round(DEFAULT_VARIANT.size_bytes / 2**20)} MB) with:"
        "  resnext-gui weights fetch\n"
        "  - or use a checkpoint you have:  resnext-gui --weights FILE  "
        f"(or set {ENV_WEIGHTS}=FILE)\n"
        "Looked in:\n" + "\n".join(f"  - {place}: {files}" for place, files in looked_in())
    )


class DownloadCancelled(DownloadError):
    """The user stopped the download; nothing was kept."""


ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total or 0 when unknown)

READ_TIMEOUT = 15.0  # seconds without a byte from the server before a download is given up
_POLL = 0.1  # how often the caller's side looks at ``cancelled`` and reports progress
_CHUNK = 1 << 16


OFFLINE = "no connection to the internet"
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}  # the network itself is not there


def offline_reason(exc: BaseException, url: str = "") -> str | None:
    """"no connection to the internet (…)" when ``exc`` says the server could not be reached at all: its name
    could not be looked up (no network, no name server) or no route leads to it; None for any other failure."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) else exc
    host = urllib.parse.urlsplit(url).hostname or "the server"
    if isinstance(reason, socket.gaierror):
        return f"{OFFLINE} ({host} could not be looked up: {reason.strerror or reason})"
    if isinstance(reason, OSError) and reason.errno in _UNREACHABLE:
        return f"{OFFLINE} ({reason.strerror or reason})"
    return None


def _network_reason(exc: BaseException, done: int, url: str = "") -> str:
    """A sentence for any way a transfer can fail on the network side."""
    offline = offline_reason(exc, url)
    if offline is not None:
        return offline
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered {exc.code} {exc.reason}"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection was cut off after {done:,} bytes"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"the server sent nothing for {READ_TIMEOUT:g} s"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"the server did not answer within {READ_TIMEOUT:g} s"
        return str(getattr(reason, "strerror", None) or reason)
    if isinstance(exc, ConnectionError):
        return f"the connection was lost after {done:,} bytes ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, http.client.HTTPException):
        return f"the server sent a malformed answer ({type(exc).__name__}: {exc})"
    if isinstance(exc, ValueError):
        return f"this is not a URL the app can download from ({exc})"
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return f"{type(exc).__name__}: {exc}"


class _Transfer(threading.Thread):
    """The network half of a download (connect, read, write the temporary file), off the caller's thread.

    The caller keeps polling ``cancelled`` while this thread may be stuck in a read from a stalled server;
    ``stop`` shuts the socket down so that read returns at once.
    """

    def __init__(self, url: str, fd: int, timeout: float, max_bytes: int, want_sha512: bool) -> None:
        super().__init__(name="weights-download", daemon=True)
        self.url, self.fd, self.timeout, self.max_bytes = url, fd, timeout, max_bytes
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512() if want_sha512 else None
        self.total: int | None = None  # announced length, 0 when the server does not say; None before headers
        self.done = 0
        self.error: str | None = None
        self.finished = threading.Event()
        self._stopping = False
        self._sock = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def run(self) -> None:
        try:
            with os.fdopen(self.fd, "wb") as out:
                self._transfer(out)
        except BaseException as exc:  # a thread must not die with an exception: report it to the caller
            if self.error is None:
                self.error = _network_reason(exc, self.done, self.url)
        finally:
            self.finished.set()

    def _transfer(self, out: BinaryIO) -> None:
        try:
            context = tls_context() if self.url.lower().startswith("https:") else None
            response = urllib.request.urlopen(self.url, timeout=self.timeout, context=context)
        except Exception as exc:
            self.error = _network_reason(exc, 0, self.url)
            return
        with response:
            with self._lock:
                self._sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
                if self._stopping:
                    return
            length = (response.headers.get("Content-Length") or "").strip()
            total = int(length) if length.isdigit() else 0
            if self.max_bytes and total > self.max_bytes:
                self.error = (f"the server offers {total:,} bytes, more than the official file's "
                              f"{self.max_bytes:,}: it is not this file")
                return
            self.total = total
            while not self._stopping:
                want = _CHUNK if not self.max_bytes else min(_CHUNK, self.max_bytes + 1 - self.done)
                try:
                    chunk = response.read(want)
                except Exception as exc:
                    self.error = _network_reason(exc, self.done, self.url)
                    return
                if not chunk:
                    return
                try:
                    out.write(chunk)
                except OSError as exc:
                    self.error = f"cannot write the download to disk: {exc.strerror or exc}"
                    return
                self.sha256.update(chunk)
                if self.sha512:
                    self.sha512.update(chunk)
                self.done += len(chunk)
                if self.max_bytes and self.done > self.max_bytes:
                    self.error = f"the server sent more than the official file's {self.max_bytes:,} bytes: it is not this file"
                    return


def download(
    url: str,
    dest: Path,
    hash_prefix: str | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout: float = READ_TIMEOUT,
    size: int | None = None,
    size_slack: int = 0,
    sha512: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking length, the sha256 prefix and (if given) the SHA-512.

    Same checks as torch.hub.download_url_to_file, plus what a GUI needs: a progress callback, cancellation
    that takes effect within a fraction of a second even while the server is silent, a read timeout, and a
    length check (``size`` ± ``size_slack``; reading stops once the data is longer than that). The data goes
    to a temporary file next to ``dest`` and is renamed only once verified. Every failure, of the network or
    of the disk, is a DownloadError (DownloadCancelled when ``cancelled`` said so) and leaves nothing behind.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    except OSError as exc:
        raise DownloadError(f"cannot save the download in {dest.parent}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    max_bytes = size + size_slack if size else 0
    job = _Transfer(url, fd, timeout, max_bytes, bool(sha512))
    try:
        job.start()
        shown: tuple[int, int] | None = None

        def report() -> None:
            nonlocal shown
            if progress and job.total is not None:
                if shown is None:
                    shown = (0, job.total)
                    progress(*shown)
                if (job.done, job.total) != shown:
                    shown = (job.done, job.total)
                    progress(*shown)

        while not job.finished.wait(_POLL):
            if cancelled and cancelled():
                raise DownloadCancelled("download cancelled; nothing was saved")
            report()
        if cancelled and cancelled():
            raise DownloadCancelled("download cancelled; nothing was saved")
        if job.error and job.error.startswith(OFFLINE):
            raise NoConnectionError(f"download from {url} failed: {job.error}; nothing was saved",
                                    job.error[len(OFFLINE):].strip(" ()"))
        if job.error:
            raise DownloadError(f"download from {url} failed: {job.error}; nothing was saved")
        report()
        done, total = job.done, job.total or 0
        if total and done != total:
            raise DownloadError(f"download from {url} was cut off: got {done:,} of {total:,} bytes; nothing was saved")
        if size and abs(done - size) > size_slack:
            raise DownloadError(
                f"download from {url} has {done:,} bytes, but the official file has about {size:,}: it is not "
                "this file (or it was cut off); nothing was saved"
            )
        got = job.sha256.hexdigest()
        if hash_prefix and not got.startswith(hash_prefix):
            raise DownloadError(
                f"downloaded file does not match its checksum (expected sha256 {hash_prefix}..., "
                f"got {got[:len(hash_prefix)]}...); nothing was saved"
            )
        if sha512 and job.sha512 and job.sha512.hexdigest() != sha512:
            raise DownloadError("downloaded file does not match its checksum (SHA-512); nothing was saved")
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            raise DownloadError(f"cannot save the download as {dest}: {exc.strerror or exc}") from None
        return dest
    finally:
        job.stop()
        job.join(2.0)  # the thread closes the temporary file; a stalled connect may take longer, harmlessly
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def mirror_problem(url: str, variant: Variant) -> str | None:
    """Why ``url`` cannot be a mirror of ``variant``'s file, judged by the file name it names; None if it can be.

    A URL that names another variant's file (or carries another sha256 prefix in its name) would silently
    swap the weights, so it is refused rather than checked against the wrong digest.
    """
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path).rsplit("/", 1)[-1]
    for other in VARIANTS.values():
        if other.key != variant.key and name == other.filename:
            return (f"{url} names the {other.key} weights ({other.filename}), but the {variant.key} weights "
                    f"({variant.filename}) were asked for: use --variant {other.key}, or a URL of {variant.filename}")
    prefix = hash_prefix_of(name)
    if prefix and prefix != variant.hash_prefix:
        return (f"{url} names another file (sha256 prefix {prefix}); the {variant.key} weights are "
                f"{variant.filename} (prefix {variant.hash_prefix})")
    return None


def fetch(
    variant: Variant = DEFAULT_VARIANT,
    url: str | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Path:
    """Download an official checkpoint into the torch hub cache (where torchvision looks too).

    ``url`` (or $RESNEXT_GUI_WEIGHTS_URL) points at a mirror. Whatever the source, the file is checked
    against the chosen variant's own digest and size, and saved under the variant's official name.
    """
    from_env = not url and bool(os.environ.get(ENV_MIRROR))
    url = url or os.environ.get(ENV_MIRROR) or variant.url
    problem = mirror_problem(url, variant)
    if problem:
        raise DownloadError(problem + (f" (the URL comes from {ENV_MIRROR})" if from_env else ""))
    return download(
        url,
        hub_checkpoint_dir() / variant.filename,
        variant.hash_prefix,
        progress,
        cancelled,
        size=variant.size_bytes,
        size_slack=variant.size_slack,
        sha512=variant.sha512,
    )
