"""`resnext-gui duplicates PATH...`: groups of near-duplicates and the copy to keep (JSON lines or CSV)."""

from __future__ import annotations

import argparse
import os
import sys

from ..core.records import csv_text
from .output import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, emit, expand, utf8_stdout
from .vectors import add_options, gather_vectors, library_path_problem, load, open_library, run_body, threshold, unique


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`duplicates`, on `resnext-gui`'s subparsers."""
    from ..core.similarity import DEFAULT_THRESHOLD

    d = sub.add_parser("duplicates", help="groups of near-duplicates and the copy to keep; one JSON line per group",
                       description="Groups of near-duplicates among PATH (or every photo in the results library with "
                                   '--library and no PATH). Each line: {"paths": [...], "similarity": <the weakest '
                                   'link>, "keep": <the suggested keeper: most pixels, then the newest>}. Photos with '
                                   "no near-duplicate are not listed.")
    d.add_argument("paths", nargs="*", metavar="PATH", help="photos and folders (searched recursively)")
    d.add_argument("--threshold", type=threshold, default=DEFAULT_THRESHOLD, metavar="T",
                   help=f"photos at least this similar are one group (default {DEFAULT_THRESHOLD}: a photo's "
                        "copies and edited versions; 0.95: exact and near-exact copies only)")
    add_options(d)
    return d


def _paths_bytes(paths: list[str]) -> list[str] | None:
    """The exact bytes of each path, in hex, when any of them is not valid UTF-8 (as classify's path_bytes)."""
    from ..core.records import is_valid_text

    if all(is_valid_text(p) for p in paths):
        return None
    return [os.fsencode(p).hex() for p in paths]


def run(args: argparse.Namespace) -> int:
    """`resnext-gui duplicates PATH...`: one JSON line per group {"paths", "similarity", "keep"}."""
    from ..core.records import clean_record, json_line, neutralise

    problem = library_path_problem(args)
    if problem:
        print(f"resnext-gui duplicates: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not args.paths and not args.library:
        print("resnext-gui duplicates: give photos or folders, or --library for every photo in the library",
              file=sys.stderr)
        return EXIT_USAGE
    photos, unreadable, _skipped = expand(args.paths) if args.paths else ([], 0, 0)
    if args.paths and not photos:
        print("resnext-gui: nothing to compare: no image files were found", file=sys.stderr)
        return EXIT_SOME_FAILED
    clf = load(args, many=True)
    if clf is None:
        return EXIT_USAGE
    library = open_library(args)

    def body() -> int:
        found = gather_vectors(unique(photos) if args.paths else None, clf, library, args)
        groups = found.duplicates(args.threshold)
        utf8_stdout()
        if args.format == "csv":
            emit(csv_text(["group", "similarity", "keep", "path", "path_bytes"]))
        for number, group in enumerate(groups, start=1):
            record = group.to_record()
            if args.format == "csv":
                for path in group.paths:
                    clean = clean_record({"path": path})
                    emit(csv_text([number, record["similarity"], path == group.keep, neutralise(clean["path"]),
                                     clean.get("path_bytes", "")]))
            else:
                raw = _paths_bytes(group.paths)
                if raw is not None:
                    record["paths_bytes"] = raw
                emit(json_line(record) + "\n")
        grouped = sum(len(g.paths) for g in groups)
        print(f"resnext-gui: {len(found.vectors)} photos compared: {len(groups)} groups of near-duplicates "
              f"({grouped} photos) at similarity {args.threshold:g} or more", file=sys.stderr)
        return EXIT_SOME_FAILED if found.failures or unreadable else EXIT_OK

    return run_body(body, library)
