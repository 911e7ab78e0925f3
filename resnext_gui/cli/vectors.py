"""What `similar` and `duplicates` share: their options, the model and the results library, the photos' vectors
gathered with progress on stderr, and how a run ends (the figures: core/similarity.py; the vectors:
core/similar_photos.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .options import add_model_options
from .output import EXIT_SOME_FAILED, OutputError, Progress, Terminated, silence_stdout, stopped

if TYPE_CHECKING:
    from ..core.classifier import Classifier
    from ..core.library import Library
    from ..core.similar_photos import Gathered


def threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0.0 < value <= 1.0):  # NaN fails too
        raise argparse.ArgumentTypeError("must be above 0 and at most 1 (1: exact copies only)")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_options(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument("--format", default="jsonl", choices=["jsonl", "csv"], help="output format (default jsonl)")
    p.add_argument("--batch-size", type=positive, default=None, metavar="N",
                   help="photos per forward pass for the photos computed (default: as classify)")
    p.add_argument("--library", action="store_true",
                   help="take the features of unchanged photos from the results library and keep those computed "
                        "there; without PATH, compare every photo the library holds for this model")
    p.add_argument("--library-path", metavar="FILE", help="the library file to use (implies --library; default "
                   "$XDG_DATA_HOME/resnext-gui/library.sqlite3)")


def library_path_problem(args: argparse.Namespace) -> str | None:
    if args.library_path:
        args.library = True
        if os.path.isdir(args.library_path):
            return f"--library-path {args.library_path} is a folder; give the library's file name"
    return None


def unique(paths: list[Path]) -> list[Path]:
    """The photos once each (a file named twice, or reached through two links, is one photo)."""
    seen: set[str] = set()
    out = []
    for p in paths:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def load(args: argparse.Namespace, many: bool) -> Classifier | None:
    """The classifier, or None after saying why (no weights, a bad checkpoint: exit 2, as classify)."""
    from ..core.classifier import Classifier
    from ..core.errors import ResnextGuiError

    print("resnext-gui: loading the model…", file=sys.stderr, flush=True)
    try:
        clf = Classifier(args.weights, device=args.device,
                         progress=lambda text: print(f"resnext-gui: {text}", file=sys.stderr, flush=True),
                         tuned_for="throughput" if many else "latency")
    except ResnextGuiError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        return None
    if clf.note:
        print(f"resnext-gui: note: {clf.note}", file=sys.stderr)
    return clf


def open_library(args: argparse.Namespace) -> Library | None:
    if not args.library:
        return None
    from ..core.library import Library

    library = Library(Path(args.library_path) if args.library_path else None)
    note = library.take_note()
    if note:
        print(f"resnext-gui: note: {note}", file=sys.stderr)
    return library


def gather_vectors(paths: list[Path] | None, clf: Classifier, library: Library | None,
            args: argparse.Namespace) -> Gathered:
    """The photos' vectors, with progress on stderr and each failure said there (as classify words it)."""
    from ..core.similar_photos import gather

    progress = Progress(len(paths) if paths is not None else 0, verb="read")

    def show(done: int, total: int) -> None:
        progress.total = total
        while progress.done < done:
            progress.step(True)

    found = gather(paths, clf, library, batch_size=args.batch_size or clf.default_batch_size, progress=show)
    progress.failed = len(found.failures)
    progress.close()
    for bad in found.failures:
        print(f"resnext-gui: {bad.error}", file=sys.stderr)
    if library is not None:
        gone = f", {len(found.gone)} library photos no longer there" if found.gone else ""
        print(f"resnext-gui: {found.cached} from the results library, {found.computed} computed{gone}",
              file=sys.stderr)
    if 0 < len(found.vectors) < 3:
        print("resnext-gui: note: with fewer than 3 photos the features have nothing to be compared against; "
              "the similarity is the perceptual hash's alone", file=sys.stderr)
    return found


def run_body(body: Callable[[], int], library: Library | None) -> int:
    """``body()`` with classify's handling of a stdout that fails and of Ctrl+C / SIGTERM; the library closed
    after it (every vector computed so far is already stored)."""
    try:
        return body()
    except OutputError as exc:
        silence_stdout()
        print(f"resnext-gui: cannot write the results to standard output: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except (KeyboardInterrupt, Terminated) as exc:
        return stopped(exc, "the features computed so far are kept" if library is not None else "")
    finally:
        if library is not None:
            library.close()
