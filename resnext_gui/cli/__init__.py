"""The command line: `classify`, `train`, `weights`, `similar` and `duplicates` (a module each), their parser, and how every command ends."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Protocol

from . import classify, duplicates, similar, train, weights
from .options import add_common
from .output import EXIT_OK, EXIT_SOME_FAILED, OutputError, Terminated, say, silence_stdout, stopped


class Command(Protocol):
    def add_parser(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser: ...
    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {"classify": classify, "train": train, "weights": weights, "similar": similar,
                                "duplicates": duplicates}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnext-gui",
        description="ResNeXt-50 image classifier with Grad-CAM. Without a subcommand, opens the window.",
    )
    add_common(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        add_common(command.add_parser(sub))
    return parser


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        from ..core import logs

        logs.to_stderr(verbose=True)
        logs.start_facts(args.command)
    if sys.stdout is None:  # started with stdout closed (`>&-`): say so instead of failing on the first line
        say("standard output is closed; nowhere to write the results")
        return EXIT_SOME_FAILED
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.command].run(args)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        silence_stdout()
        return EXIT_OK
    except OutputError as exc:
        silence_stdout()
        say(f"cannot write to standard output: {exc}")
        return EXIT_SOME_FAILED
    except (KeyboardInterrupt, Terminated) as exc:  # e.g. while the model loads
        return stopped(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
