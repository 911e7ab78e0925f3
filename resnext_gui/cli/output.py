"""What the commands write: records on stdout (through core.records' one writer), progress and messages on stderr, the maps of --cam-dir, the keywords of --xmp, and how a stopped run ends."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple, TextIO

if TYPE_CHECKING:
    from ..core.prediction import Prediction
    from ..core.records import Record

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: stop as for Ctrl+C, with every finished line written and no half-written file."""


class OutputError(Exception):
    """Standard output can't be written (closed, disk full, I/O error); not a broken pipe."""


def say(text: str) -> None:
    """One line for the user on stderr, named after the program."""
    print(f"resnext-gui: {text}", file=sys.stderr, flush=True)


def emit(text: str, stream: TextIO | None = None) -> None:
    """Write and flush one piece of output (to stdout unless another ``stream`` is given); a failing stream becomes
    an OutputError (a broken pipe stays one)."""
    out = stream or sys.stdout
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: the stream was closed
        raise OutputError(getattr(exc, "strerror", None) or str(exc)) from None


class Stdout:
    """Standard output as the records writer's stream: each write is ``emit``ted (flushed, failures said).
    ``stream``: standard output as it was when this was made, whatever ``sys.stdout`` is later."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        emit(text, self.stream)
        return len(text)


def utf8_stdout() -> None:
    """The output is UTF-8 whatever the locale says (file names and labels are not all ASCII)."""
    try:
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush of what is still buffered can't fail loudly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def stopped(exc: BaseException, kept: str = "", what: str = "", newline: bool = True) -> int:
    """Ctrl+C (KeyboardInterrupt) or SIGTERM (Terminated): one line on stderr saying what was kept, and the exit
    status a shell expects (130, 143). After Ctrl+C the line starts below the ``^C`` the terminal echoed."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    lead = "\n" if interrupted and newline else ""
    text = f"{what}{'interrupted' if interrupted else 'terminated'}" + (f"; {kept}" if kept else "")
    print(f"{lead}resnext-gui: {text}", file=sys.stderr)
    return EXIT_INTERRUPTED if interrupted else EXIT_TERMINATED


class Progress:
    """Progress on stderr: a redrawn bar on a terminal, a line every 10% otherwise (every 10 s while the total is
    not known, e.g. a list read from standard input), with the photos per second and the time left. Never on stdout."""

    LINE_EVERY_S = 10.0  # without a total: a line this often (on a terminal the line is redrawn at each photo)

    def __init__(self, total: int | None, stream: TextIO | None = None, verb: str = "classified",
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.verb = verb
        self.stream: TextIO = stream or sys.stderr  # looked up now: sys.stderr may have been replaced since import
        self.total, self.done, self.failed = total, 0, 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.start = clock()
        self._next_line = 0.1
        self._next_time = self.start + self.LINE_EVERY_S

    @property
    def shown(self) -> bool:
        """Whether progress is shown at all: not for a single photo."""
        return self.total is None or self.total > 1

    def rate(self) -> float | None:
        """Photos per second since the start; None before the first one."""
        elapsed = self.clock() - self.start
        return self.done / elapsed if self.done and elapsed > 0 else None

    def left(self) -> float | None:
        """Seconds until the last photo at the rate so far; None without a total or a rate."""
        rate = self.rate()
        if self.total is None or rate is None:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def figures(self) -> str:
        """", 12.5 photos/s, about 0:14 left": what the rate so far says (empty before the first photo)."""
        rate, left = self.rate(), self.left()
        text = f", {rate:.3g} photos/s" if rate is not None else ""
        if left is not None and self.total is not None and self.done < self.total:
            text += f", about {clock_text(left)} left"
        return text

    def step(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if not self.shown:
            return
        if self.tty:
            if self.total is not None:
                width = 30
                bar = "#" * int(width * min(1.0, self.done / self.total))
                line = f"[{bar:<{width}}] {self.done}/{self.total}  {self.failed} failed"
            else:
                line = f"{self.verb} {self.done}  {self.failed} failed"
            self.stream.write(f"\r{line}{self.figures()}\033[K")
            self.stream.flush()
        elif self.total is not None:
            frac = self.done / self.total
            if frac >= self._next_line or self.done == self.total:
                self._line(f"{self.done}/{self.total}")
                self._next_line = (int(frac * 10) + 1) / 10
        elif self.clock() >= self._next_time:
            self._line(str(self.done))
            self._next_time = self.clock() + self.LINE_EVERY_S

    def _line(self, count: str) -> None:
        self.stream.write(f"{self.verb} {count} ({self.failed} failed){self.figures()}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
        if self.shown:
            secs = self.clock() - self.start
            self.stream.write(f"{self.done} images in {secs:.1f} s, {self.failed} failed\n")
        self.stream.flush()


def clock_text(seconds: float) -> str:
    """A duration as a clock shows it: "0:07", "12:05", "3:02:10"."""
    s = int(round(seconds))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class CamWriter:
    """Writes <name>.cam.png / <name>.cam.npy: atomically, never through a planted link, never overwriting twice.

    Each file is written to a temporary file in the same folder and renamed over the target name, so a
    failure (disk full, SIGTERM) leaves no partial or empty file, and a symbolic link planted at the target
    name is replaced, not followed. Names are made valid UTF-8 and shortened to fit the file system's limit;
    two inputs with the same name get ``name`` and ``name-2``.
    """

    MAX_STEM_BYTES = 200  # + "-NN.gradcam++.cam.png" stays well under the usual 255-byte limit

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.used: set[str] = set()

    @staticmethod
    def check_folder(folder: Path) -> str | None:
        """Why ``folder`` can't take the maps (checked before the model loads); None if it can."""
        if folder.exists() and not folder.is_dir():
            return f"--cam-dir {folder} is not a folder"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--cam-dir {folder} cannot be created: {exc.strerror or exc}"
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".resnext-gui-", suffix=".probe")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return f"--cam-dir {folder} is not writable: {exc.strerror or exc}"
        return None

    def _stem(self, path: str) -> str:
        from ..core.records import valid_text

        base = valid_text(Path(path).stem) or "image"
        encoded = base.encode("utf-8")
        if len(encoded) > self.MAX_STEM_BYTES:
            base = encoded[: self.MAX_STEM_BYTES].decode("utf-8", "ignore") + "~"
        stem, n = base, 1
        while stem.lower() in self.used:
            n += 1
            stem = f"{base}-{n}"
        self.used.add(stem.lower())
        return stem

    def write(self, pred: Prediction, cmap: str = "jet") -> tuple[Path, Path]:
        """The overlay of the top-1 class (its PNG text fields say the method, layer and class) and its map;
        named <stem>.cam.png for the default method, <stem>.<method>.cam.png for the others."""
        return self.save(pred.path, self.encode(pred, cmap))

    @staticmethod
    def encode(pred: Prediction, cmap: str = "jet") -> EncodedMaps:
        """The two files of ``pred`` as bytes (made where the photo is: a node of a cluster draws them, the
        driver names and saves them)."""
        import io

        import numpy as np

        from ..core.cam import DEFAULT_METHOD
        from ..core.overlay import cam_overlay, overlay_text, save_png

        if pred.cams is None:
            raise ValueError(f"{pred.path} has no map to write")
        png, npy = io.BytesIO(), io.BytesIO()
        save_png(cam_overlay(pred, 1, cmap), png, overlay_text(pred, 1))
        np.save(npy, pred.cams[0].astype(np.float32))
        kind = "cam" if pred.method == DEFAULT_METHOD else f"{pred.method}.cam"
        return EncodedMaps(kind, png.getvalue(), npy.getvalue())

    def save(self, path: str, maps: EncodedMaps) -> tuple[Path, Path]:
        """Write ``maps`` as the files of the photo ``path``: <stem>.<kind>.png and .npy."""
        from ..core.files import atomic_file

        stem = self._stem(path)
        png, npy = self.folder / f"{stem}.{maps.kind}.png", self.folder / f"{stem}.{maps.kind}.npy"
        # each through a temporary file renamed into place (a link at the name is replaced, never written
        # through); a map without its partner would be a half answer, so the first goes if the second fails
        with atomic_file(png, shared=True) as fh:
            fh.write(maps.png)
        try:
            with atomic_file(npy, shared=True) as fh:
                fh.write(maps.npy)
        except BaseException:
            png.unlink(missing_ok=True)
            raise
        return png, npy


class EncodedMaps(NamedTuple):
    """A photo's --cam-dir files as bytes: ``kind`` names them (<stem>.<kind>.png and .npy)."""

    kind: str
    png: bytes
    npy: bytes


class KeywordWriter:
    """--xmp: each answer's classes as keywords in the photo's XMP sidecar (and the photo, if asked)."""

    def __init__(self, min_prob: float | None, into_file: bool, labels: list[str], weights: Path) -> None:
        from ..core.xmp import DEFAULT_MIN_PROB, parent_for

        self.min_prob = DEFAULT_MIN_PROB if min_prob is None else min_prob
        self.into_file = into_file
        self.parent = parent_for(labels, weights)

    def write(self, record: Record) -> bool:
        """Write the keywords of ``record`` (an ``ok`` answer); a failure goes into the record and onto stderr."""
        from ..core.errors import XmpError
        from ..core.xmp import keywords_for, write_keywords

        try:
            side = write_keywords(record["path"], keywords_for(record["top"], self.min_prob), self.parent,
                                  into_file=self.into_file)
        except Exception as exc:  # XmpError says what, per photo; anything else is this photo's failure too
            text = " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the library said
            if not isinstance(exc, XmpError):
                text = f"{record['path']}: keywords not written: {text}"
            record["xmp_error"] = text
            say(text)
            return False
        record["xmp"] = str(side)
        return True


class Expansion:
    """The photos of what the user named, found as they are needed (a folder is walked as its photos are taken),
    with one stderr warning per folder or link passed over and per empty folder; counts what was passed over.
    Iterating again walks again."""

    def __init__(self, paths: Iterable[str], quiet: bool = False) -> None:
        self.paths, self.quiet = paths, quiet  # quiet: no warnings (a walk that only counts)
        self.unreadable = 0  # folders that could not be read
        self.skipped = 0  # links and other things passed over

    def _on_skip(self, path: Path, reason: str) -> None:
        if reason.startswith("cannot be read"):
            self.unreadable += 1
        else:
            self.skipped += 1
        if not self.quiet:
            say(f"skipped {path}: {reason}")

    def __iter__(self) -> Iterator[Path]:
        from ..core.paths import IMAGE_SUFFIXES, iter_images

        self.unreadable = self.skipped = 0
        for raw in self.paths:
            found = False
            for path in iter_images([raw], self._on_skip):
                found = True
                yield path
            if not found and not self.quiet and os.path.isdir(raw):
                say(f"warning: {raw} holds no images ({' '.join(IMAGE_SUFFIXES)})")


def expand(paths: Iterable[str]) -> tuple[list[Path], int, int]:
    """The photos to classify, with one stderr warning per folder or link passed over and per empty folder.

    Returns (photos, folders that could not be read, other skips).
    """
    found = Expansion(paths)
    photos = list(found)
    return photos, found.unreadable, found.skipped


def path_list(name: str) -> Iterator[str]:
    """The paths of --files-from: one a line, from the file ``name`` or standard input ("-"); blank lines are
    passed over. Read as bytes, so a name that is not valid UTF-8 still names its file. Read as it is taken:
    a list longer than memory streams through."""
    if name == "-":
        yield from _lines(sys.stdin.buffer)
        return
    with open(name, "rb") as fh:
        yield from _lines(fh)


def _lines(stream: IO[bytes]) -> Iterator[str]:
    for line in stream:
        line = line.rstrip(b"\n").rstrip(b"\r")
        if line:
            yield os.fsdecode(line)


def done_with_skips(unreadable: int, skipped: int) -> None:
    if unreadable or skipped:
        say(f"{unreadable + skipped} folders or links skipped ({unreadable} could not be read)")

