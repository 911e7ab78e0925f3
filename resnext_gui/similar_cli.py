"""The `similar` and `duplicates` commands: a photo's most similar photos, and groups of near-duplicates with the
copy to keep (the figures: core/similarity.py; the photos' vectors: core/similar_photos.py)."""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    OutputError,
    Progress,
    Terminated,
    _add_model_options,
    _add_version,
    _emit,
    _expand,
    _silence_stdout,
    _stopped,
)

if TYPE_CHECKING:
    from .core.classifier import Classifier
    from .core.library import Library
    from .core.similar_photos import Gathered

COMMANDS = ("similar", "duplicates")


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0.0 < value <= 1.0):  # NaN fails too
        raise argparse.ArgumentTypeError("must be above 0 and at most 1 (1: exact copies only)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    _add_model_options(p)
    p.add_argument("--format", default="jsonl", choices=["jsonl", "csv"], help="output format (default jsonl)")
    p.add_argument("--batch-size", type=_positive, default=None, metavar="N",
                   help="photos per forward pass for the photos computed (default: as classify)")
    p.add_argument("--library", action="store_true",
                   help="take the features of unchanged photos from the results library and keep those computed "
                        "there; without PATH, compare every photo the library holds for this model")
    p.add_argument("--library-path", metavar="FILE", help="the library file to use (implies --library; default "
                   "$XDG_DATA_HOME/resnext-gui/library.sqlite3)")
    _add_version(p)


def add_similar_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """`similar`, on `resnext-gui`'s subparsers."""
    from .core.similarity import DEFAULT_TOP

    s = sub.add_parser("similar", help="the photos most similar to one photo, most similar first; one JSON line each",
                       description="The photos most similar to PHOTO among PATH (files, folders searched "
                                   "recursively), or among the results library's photos with --library. Each line: "
                                   '{"path": ..., "similarity": ...}; 1.0 is the same picture.')
    s.add_argument("photo", metavar="PHOTO", help="the photo to find others like")
    s.add_argument("paths", nargs="*", metavar="PATH", help="photos and folders to search (with --library: "
                   "optional, default every photo in the library)")
    s.add_argument("--top", type=_positive, default=DEFAULT_TOP, metavar="N",
                   help=f"photos to list (default {DEFAULT_TOP})")
    _add_common(s)
    return s  # type: ignore[no-any-return]


def add_duplicates_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """`duplicates`, on `resnext-gui`'s subparsers."""
    from .core.similarity import DEFAULT_THRESHOLD

    d = sub.add_parser("duplicates", help="groups of near-duplicates and the copy to keep; one JSON line per group",
                       description="Groups of near-duplicates among PATH (or every photo in the results library with "
                                   '--library and no PATH). Each line: {"paths": [...], "similarity": <the weakest '
                                   'link>, "keep": <the suggested keeper: most pixels, then the newest>}. Photos with '
                                   "no near-duplicate are not listed.")
    d.add_argument("paths", nargs="*", metavar="PATH", help="photos and folders (searched recursively)")
    d.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD, metavar="T",
                   help=f"photos at least this similar are one group (default {DEFAULT_THRESHOLD}: a photo's "
                        "copies and edited versions; 0.95: exact and near-exact copies only)")
    _add_common(d)
    return d  # type: ignore[no-any-return]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Both subcommands, on `resnext-gui`'s subparsers."""
    add_similar_parser(sub)
    add_duplicates_parser(sub)


# ---- shared steps ----
def _library_path_problem(args: argparse.Namespace) -> str | None:
    if args.library_path:
        args.library = True
        if os.path.isdir(args.library_path):
            return f"--library-path {args.library_path} is a folder; give the library's file name"
    return None


def _unique(paths: list[Path]) -> list[Path]:
    """The photos once each (a file named twice, or reached through two links, is one photo)."""
    seen: set[str] = set()
    out = []
    for p in paths:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def _load(args: argparse.Namespace, many: bool) -> Classifier | None:
    """The classifier, or None after saying why (no weights, a bad checkpoint: exit 2, as classify)."""
    from .core.classifier import Classifier
    from .core.errors import ResnextGuiError

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


def _open_library(args: argparse.Namespace) -> Library | None:
    if not args.library:
        return None
    from .core.library import Library

    library = Library(Path(args.library_path) if args.library_path else None)
    if library.note:
        print(f"resnext-gui: note: {library.note}", file=sys.stderr)
    return library


def _gather(paths: list[Path] | None, clf: Classifier, library: Library | None,
            args: argparse.Namespace) -> Gathered:
    """The photos' vectors, with progress on stderr and each failure said there (as classify words it)."""
    from .core.similar_photos import gather

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


def _csv_text(row: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue()


def _utf8_stdout() -> None:
    try:
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass


def _run(body: Callable[[], int], library: Library | None) -> int:
    """``body()`` with classify's handling of a stdout that fails and of Ctrl+C / SIGTERM; the library closed
    after it (every vector computed so far is already stored)."""
    try:
        return body()
    except OutputError as exc:
        _silence_stdout()
        print(f"resnext-gui: cannot write the results to standard output: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except (KeyboardInterrupt, Terminated) as exc:
        return _stopped(exc, "the features computed so far are kept" if library is not None else "")
    finally:
        if library is not None:
            library.close()


# ---- similar ----
def cmd_similar(args: argparse.Namespace) -> int:
    """`resnext-gui similar PHOTO [PATH...]`: JSON lines {"path", "similarity"}, most similar first."""
    from .core.records import clean_record, json_line, neutralise

    problem = _library_path_problem(args)
    if problem:
        print(f"resnext-gui similar: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if os.path.isdir(args.photo):
        print(f"resnext-gui similar: PHOTO {args.photo} is a folder; give one photo, and the folders to search "
              "after it", file=sys.stderr)
        return EXIT_USAGE
    if not args.paths and not args.library:
        print("resnext-gui similar: nothing to compare with: give photos or folders after PHOTO, or --library",
              file=sys.stderr)
        return EXIT_USAGE
    candidates, unreadable, _skipped = _expand(args.paths) if args.paths else ([], 0, 0)
    if args.paths and not candidates:
        print("resnext-gui: nothing to compare with: no image files were found", file=sys.stderr)
        return EXIT_SOME_FAILED
    query = Path(args.photo)
    clf = _load(args, many=True)
    if clf is None:
        return EXIT_USAGE
    library = _open_library(args)

    def body() -> int:
        from .core.similar_photos import gather

        found = _gather(_unique([query, *candidates]) if args.paths else None, clf, library, args)
        if not args.paths:  # the library's photos, and the photo itself (looked up or computed, and kept)
            asked = gather([query], clf, library)
            for bad in asked.failures:
                print(f"resnext-gui: {bad.error}", file=sys.stderr)
            others = [v for v in found.vectors if os.path.realpath(v.path) != os.path.realpath(query)]
            found.vectors = asked.vectors + others
            found.failures += asked.failures
            k = 0 if asked.vectors else None
        else:
            k = found.position(query)
        if k is None:
            print(f"resnext-gui: {query} could not be compared (see above)", file=sys.stderr)
            return EXIT_SOME_FAILED
        _utf8_stdout()
        if args.format == "csv":
            _emit(_csv_text(["path", "similarity", "path_bytes"]))
        for match in found.similar_to(k, args.top):
            record = {"path": match.path, "similarity": round(match.similarity, 4)}
            if args.format == "csv":
                clean = clean_record(record)
                _emit(_csv_text([neutralise(clean["path"]), clean["similarity"], clean.get("path_bytes", "")]))
            else:
                _emit(json_line(record) + "\n")
        return EXIT_SOME_FAILED if found.failures or unreadable else EXIT_OK

    return _run(body, library)


# ---- duplicates ----
def _paths_bytes(paths: list[str]) -> list[str] | None:
    """The exact bytes of each path, in hex, when any of them is not valid UTF-8 (as classify's path_bytes)."""
    from .core.records import is_valid_text

    if all(is_valid_text(p) for p in paths):
        return None
    return [os.fsencode(p).hex() for p in paths]


def cmd_duplicates(args: argparse.Namespace) -> int:
    """`resnext-gui duplicates PATH...`: one JSON line per group {"paths", "similarity", "keep"}."""
    from .core.records import clean_record, json_line, neutralise

    problem = _library_path_problem(args)
    if problem:
        print(f"resnext-gui duplicates: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not args.paths and not args.library:
        print("resnext-gui duplicates: give photos or folders, or --library for every photo in the library",
              file=sys.stderr)
        return EXIT_USAGE
    photos, unreadable, _skipped = _expand(args.paths) if args.paths else ([], 0, 0)
    if args.paths and not photos:
        print("resnext-gui: nothing to compare: no image files were found", file=sys.stderr)
        return EXIT_SOME_FAILED
    clf = _load(args, many=True)
    if clf is None:
        return EXIT_USAGE
    library = _open_library(args)

    def body() -> int:
        found = _gather(_unique(photos) if args.paths else None, clf, library, args)
        groups = found.duplicates(args.threshold)
        _utf8_stdout()
        if args.format == "csv":
            _emit(_csv_text(["group", "similarity", "keep", "path", "path_bytes"]))
        for number, group in enumerate(groups, start=1):
            record = group.to_record()
            if args.format == "csv":
                for path in group.paths:
                    clean = clean_record({"path": path})
                    _emit(_csv_text([number, record["similarity"], path == group.keep, neutralise(clean["path"]),
                                     clean.get("path_bytes", "")]))
            else:
                raw = _paths_bytes(group.paths)
                if raw is not None:
                    record["paths_bytes"] = raw
                _emit(json_line(record) + "\n")
        grouped = sum(len(g.paths) for g in groups)
        print(f"resnext-gui: {len(found.vectors)} photos compared: {len(groups)} groups of near-duplicates "
              f"({grouped} photos) at similarity {args.threshold:g} or more", file=sys.stderr)
        return EXIT_SOME_FAILED if found.failures or unreadable else EXIT_OK

    return _run(body, library)


def run(args: argparse.Namespace) -> int:
    """The command ``args.command`` names (one of COMMANDS)."""
    return cmd_similar(args) if args.command == "similar" else cmd_duplicates(args)

