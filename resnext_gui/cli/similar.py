"""`resnext-gui similar PHOTO [PATH...]`: the photos most similar to one photo, most similar first (JSON lines or CSV)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.records import csv_text
from .output import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, emit, expand, utf8_stdout
from .vectors import add_options, gather_vectors, library_path_problem, load, open_library, positive, run_body, unique


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`similar`, on `resnext-gui`'s subparsers."""
    from ..core.similarity import DEFAULT_TOP

    s = sub.add_parser("similar", help="the photos most similar to one photo, most similar first; one JSON line each",
                       description="The photos most similar to PHOTO among PATH (files, folders searched "
                                   "recursively), or among the results library's photos with --library. Each line: "
                                   '{"path": ..., "similarity": ...}; 1.0 is the same picture.')
    s.add_argument("photo", metavar="PHOTO", help="the photo to find others like")
    s.add_argument("paths", nargs="*", metavar="PATH", help="photos and folders to search (with --library: "
                   "optional, default every photo in the library)")
    s.add_argument("--top", type=positive, default=DEFAULT_TOP, metavar="N",
                   help=f"photos to list (default {DEFAULT_TOP})")
    add_options(s)
    return s


def run(args: argparse.Namespace) -> int:
    """`resnext-gui similar PHOTO [PATH...]`: JSON lines {"path", "similarity"}, most similar first."""
    from ..core.records import clean_record, json_line, neutralise

    problem = library_path_problem(args)
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
    candidates, unreadable, _skipped = expand(args.paths) if args.paths else ([], 0, 0)
    if args.paths and not candidates:
        print("resnext-gui: nothing to compare with: no image files were found", file=sys.stderr)
        return EXIT_SOME_FAILED
    query = Path(args.photo)
    clf = load(args, many=True)
    if clf is None:
        return EXIT_USAGE
    library = open_library(args)

    def body() -> int:
        from ..core.similar_photos import gather

        found = gather_vectors(unique([query, *candidates]) if args.paths else None, clf, library, args)
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
        utf8_stdout()
        if args.format == "csv":
            emit(csv_text(["path", "similarity", "path_bytes"]))
        for match in found.similar_to(k, args.top):
            record = {"path": match.path, "similarity": round(match.similarity, 4)}
            if args.format == "csv":
                clean = clean_record(record)
                emit(csv_text([neutralise(clean["path"]), clean["similarity"], clean.get("path_bytes", "")]))
            else:
                emit(json_line(record) + "\n")
        return EXIT_SOME_FAILED if found.failures or unreadable else EXIT_OK

    return run_body(body, library)
