"""`resnext-gui weights fetch|info`: download the official ImageNet weights, or say which weights would be used."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .options import add_common
from .output import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, emit, say, stopped


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    w = sub.add_parser("weights", help="download or inspect the model weights")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    f = wsub.add_parser("fetch", help="download the official ImageNet weights into the torch hub cache")
    f.add_argument("--variant", default="v2", choices=["v2", "v1"], help="v2: acc@1 81.2 (default); v1: 77.6")
    f.add_argument("--url", help="download from this mirror of the official file instead "
                   "(checked against the variant's own checksum and size)")
    i = wsub.add_parser("info", help="say which weights would be used, from where, and their size")
    i.add_argument("--weights", metavar="FILE", help="checkpoint given on the command line")
    for command in (f, i):
        add_common(command)
    return w


def run(args: argparse.Namespace) -> int:
    from ..core import weights
    from ..core.errors import NoConnectionError, NoWeightsError, ResnextGuiError
    from ..core.throttle import throttled

    if args.weights_command == "fetch":
        variant = weights.VARIANTS[args.variant]
        tty = sys.stderr.isatty()

        def show(done: int, total: int) -> None:
            pct = f"{100 * done / total:5.1f}% " if total else ""
            end = "\r" if tty else "\n"
            sys.stderr.write(f"{pct}{done / 2**20:7.1f} MB{end}")
            sys.stderr.flush()

        print(f"Downloading {variant.describe()} from {args.url or os.environ.get(weights.ENV_MIRROR) or variant.url}",
              file=sys.stderr)
        try:
            path = weights.fetch(variant, url=args.url, progress=throttled(show, every_s=0.2))
        except NoConnectionError as exc:
            print(f"\nresnext-gui: {exc}\nresnext-gui: on a computer that is online, download "
                  f"{variant.url} and copy it into {weights.hub_checkpoint_dir()}, or use a checkpoint you have "
                  "with --weights FILE", file=sys.stderr)
            return EXIT_USAGE
        except ResnextGuiError as exc:
            print(f"\nresnext-gui: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as exc:  # a SIGTERM is main's to report
            return stopped(exc, "nothing was saved", what="download ")
        print(f"\nSaved and verified: {path}", file=sys.stderr)
        return EXIT_OK

    try:
        source = weights.find_weights(args.weights)
    except NoWeightsError as exc:  # an answer, not a mistake: JSON that says so, and exit status 1
        emit(json.dumps({"found": False, "path": None,
                         "looked_in": [{"place": place, "files": files} for place, files in weights.looked_in()]},
                        ensure_ascii=False) + "\n")
        say(str(exc))
        return EXIT_SOME_FAILED
    except ResnextGuiError as exc:  # a file named with --weights or $RESNEXT_GUI_WEIGHTS that can't be used
        say(str(exc))
        return EXIT_USAGE
    size = source.path.stat().st_size
    info = {
        "found": True,
        "path": str(source.path),
        "origin": source.origin,
        "variant": source.variant.name if source.variant else None,
        "size_bytes": size,
        "description": source.describe(),
    }
    emit(json.dumps(info, ensure_ascii=False) + "\n")
    print(f"Would use {source.describe()}, {size / 2**20:.1f} MB", file=sys.stderr)
    return EXIT_OK
