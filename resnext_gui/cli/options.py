"""The command-line options that several commands share: the model's, the version's, the library's and keywords'."""

from __future__ import annotations

import argparse

from ..core.kinds import DEVICE_CHOICES


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE", help="checkpoint to use (.pth or .safetensors)")
    p.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES), help="compute device (default: auto)")


def add_common(p: argparse.ArgumentParser) -> None:
    """--version, and --verbose (the log on stderr: what loads, on which device, every failure with its traceback)."""
    from .. import version_line

    p.add_argument("--version", action="version", version=version_line(), help="print the version and exit")
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log to stderr what the command does (versions, runtime, device, failures in detail)")


def add_library_options(c: argparse.ArgumentParser, keywords: bool = True) -> None:
    g = c.add_argument_group("results library and keywords" if keywords else "results library")
    g.add_argument("--library", action="store_true",
                   help="answer unchanged photos from the results library (marked \"cached\": true) and keep new "
                        "answers there (the window's library; not used with --cam-dir, --faithfulness or --cam-method, "
                        "which need the photo computed)")
    g.add_argument("--library-path", metavar="FILE", help="the library file to use (implies --library; default "
                   "$XDG_DATA_HOME/resnext-gui/library.sqlite3)")
    if not keywords:
        return
    g.add_argument("--xmp", action="store_true",
                   help="write the classes as keywords into the sidecar NAME.EXT.xmp beside each photo, merged with "
                        "what is there (dc:subject, and lr:hierarchicalSubject under ResNeXt|...)")
    g.add_argument("--xmp-min-prob", type=float, default=None, metavar="P",
                   help="keywords: the top class, and others at least this probable (0 to 1, default 0.2)")
    g.add_argument("--xmp-into-file", action="store_true",
                   help="write the keywords into the photo file as well (rewrites the photo; implies --xmp)")
