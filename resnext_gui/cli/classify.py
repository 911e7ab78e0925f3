"""`resnext-gui classify`: photos and folders in, one JSON line (or CSV row) per photo out, in input order."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.kinds import BACKENDS, LAYERS, METHODS, PRECISIONS
from .answering import Sink, named, one_by_one, open_answers, tell
from .options import add_library_options, add_model_options
from .output import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    CamWriter,
    KeywordWriter,
    OutputError,
    Progress,
    Stdout,
    Terminated,
    done_with_skips,
    expand,
    say,
    silence_stdout,
    stopped,
    utf8_stdout,
)

if TYPE_CHECKING:
    from ..core.answers import CachedAnswer
    from ..core.prediction import Prediction


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    from ..core.faithfulness import DEFAULT_STEPS

    c = sub.add_parser("classify", help="classify photos and folders; one JSON line (or CSV row) per image")
    add_model_options(c)
    c.add_argument("--topk", type=int, default=5, metavar="K", help="classes per image (default 5)")
    c.add_argument("--cam-dir", metavar="DIR", help="write <name>.cam.png (overlay) and <name>.cam.npy (top-1 map); "
                   "with another --cam-method than gradcam, <name>.<method>.cam.png and .npy")
    c.add_argument("--layer", default="layer4", choices=list(LAYERS),
                   help="the stage the maps are computed at: layer4 7x7 (default), layer3 14x14, layer2 28x28")
    c.add_argument("--cam-method", default="gradcam", choices=list(METHODS), metavar="NAME",
                   help="the map's method: " + ", ".join(METHODS) + " (default gradcam). All but scorecam come from "
                        "the one forward pass (plus one gradient pass before layer4). scorecam runs one forward pass "
                        "per activation map of the stage, for each photo: 2048 at layer4, 1024 at layer3, 512 at "
                        "layer2, i.e. as long as classifying that many photos")
    c.add_argument("--faithfulness", action="store_true",
                   help="add the top-1 map's deletion and insertion figures (and a random map's) to each record: "
                        f"{4 * (DEFAULT_STEPS + 1)} more forward passes per photo")
    c.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="photos per forward pass (default: 1 with OpenVINO, whose streams each run their own "
                        "photo at once, 8 with PyTorch; measured fastest per photo, see benchmarks)")
    c.add_argument("--format", default="jsonl", choices=["jsonl", "csv"], help="output format (default jsonl)")
    c.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="bf16: faster on CPUs with native bfloat16 (AVX-512 BF16, AMX), slightly different numbers "
                        "(see benchmarks)")
    c.add_argument("--backend", default="auto", choices=list(BACKENDS),
                   help="CPU inference runtime (default auto: OpenVINO when installed, else PyTorch; "
                        "GPUs always use PyTorch)")
    add_library_options(c)
    c.add_argument("--files-from", metavar="FILE",
                   help="also classify the paths listed in FILE, one a line (files or folders; - reads standard "
                        "input): for lists too long for a command line")
    g = c.add_argument_group("a Ray cluster")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="classify on the nodes of the Ray cluster at ADDRESS (auto, HOST:PORT or ray://HOST:PORT): "
                        "the same records, in input order; every node must see the photos (and --cam-dir) at the "
                        "same paths, and needs the cluster extra: pip install 'resnext-gui[cluster]'")
    c.add_argument("paths", nargs="*", metavar="PATH", help="image files, or folders searched recursively")
    return c


def check_library_options(args: argparse.Namespace) -> str | None:
    """Why the --library / --xmp options can't be used as given (checked before the model loads); None if they can."""
    if args.library_path:
        args.library = True
        if os.path.isdir(args.library_path):
            return f"--library-path {args.library_path} is a folder; give the library's file name"
    if getattr(args, "xmp_into_file", False):
        args.xmp = True
    if getattr(args, "xmp_min_prob", None) is not None:
        if not 0.0 <= args.xmp_min_prob <= 1.0:  # NaN fails too
            return "--xmp-min-prob must be a probability from 0 to 1"
        if not args.xmp:
            return "--xmp-min-prob needs --xmp"
    return None


def check_options(args: argparse.Namespace) -> str | None:
    """Why ``args`` can't be classified as given (checked before the model loads); None if they can."""
    from ..core.cam import method_layers

    if not args.paths and not args.files_from:
        return "classify: name the photos: PATH... or --files-from FILE"
    if args.topk < 1 or (args.batch_size is not None and args.batch_size < 1):
        return "classify: --topk and --batch-size must be at least 1"
    if args.layer not in method_layers(args.cam_method):
        return (f"classify: --cam-method {args.cam_method} is offered at {', '.join(method_layers(args.cam_method))}, "
                f"not at --layer {args.layer}")
    if args.cam_dir:
        problem = CamWriter.check_folder(Path(args.cam_dir))
        if problem:
            return problem
    if args.files_from and args.files_from != "-":
        try:
            with open(args.files_from, "rb"):
                pass
        except OSError as exc:
            return f"classify: --files-from {args.files_from} cannot be read: {exc.strerror or exc}"
    problem = check_library_options(args)
    return f"classify: {problem}" if problem else None


CLOCK: Callable[[], float] = time.monotonic  # Score-CAM's time left is measured with it (tests count instead)


def run(args: argparse.Namespace) -> int:
    problem = check_options(args)
    if problem:
        say(problem)
        return EXIT_USAGE
    if args.ray:  # imported only here: Ray is an extra, and the standalone apps have none
        try:
            from . import cluster
        except ImportError:  # the standalone app leaves the cluster's driver out with Ray
            say("classify --ray needs Ray, which this standalone app does not carry: install resnext-gui with the "
                "cluster extra instead (pip install 'resnext-gui[cluster]')")
            return EXIT_USAGE
        return cluster.run(args)
    return run_here(args)


def run_here(args: argparse.Namespace) -> int:
    """`classify` on this machine."""
    from ..core.cam import ONE_PASS
    from ..core.classifier import MAX_BATCH, Classifier
    from ..core.errors import ResnextGuiError
    from ..core.kinds import DEFAULT_METHOD
    from ..core.records import RecordWriter, extra_columns

    cams = CamWriter(Path(args.cam_dir)) if args.cam_dir else None
    try:
        paths, unreadable, skipped = expand(named(args))
    except OSError as exc:  # the --files-from list could not be read to its end
        say(f"classify: --files-from {args.files_from} cannot be read: {exc.strerror or exc}")
        return EXIT_USAGE
    if not paths:
        say("nothing to classify: no image files were found")
        return EXIT_SOME_FAILED

    from ..core.devices import runtime_problem

    if args.backend == "torch" and runtime_problem("torch"):
        say(f"classify: --backend torch: {runtime_problem('torch')}; use --backend auto or openvino")
        return EXIT_USAGE
    if args.batch_size is not None and args.batch_size > MAX_BATCH:
        say(f"note: --batch-size {args.batch_size} is capped at {MAX_BATCH} (larger batches only cost memory)")
        args.batch_size = MAX_BATCH
    say("loading the model…")
    slow_extras = args.cam_method not in ONE_PASS or args.faithfulness
    # With the library the network is prepared at the first photo it does not know (a run it answers wholly
    # never prepares one); the weights are read and checked now either way.
    lazy = bool(args.library) and not slow_extras
    try:  # a folder streams through the network, several photos at once; one photo (or the slow extras) one by one
        clf = Classifier(args.weights, device=args.device, layer=args.layer, topk=args.topk, precision=args.precision,
                         method=args.cam_method if args.cam_method in ONE_PASS else DEFAULT_METHOD,
                         backend=args.backend, progress=say, lazy=lazy,
                         tuned_for="throughput" if len(paths) > 1 and not slow_extras else "latency")
    except ResnextGuiError as exc:
        say(str(exc))
        return EXIT_USAGE
    if clf.note:  # lazy: said when the runtime starts
        say(f"note: {clf.note}")
    answers = open_answers(args, clf) if args.library else None
    keywords = KeywordWriter(args.xmp_min_prob, args.xmp_into_file, clf.labels, clf.source.path) if args.xmp else None
    if args.precision == "bf16" and clf.device.type == "cpu":
        from ..core.devices import cpu_capability, native_bf16

        if not native_bf16():
            say(f"note: this CPU ({cpu_capability()}) has no native bfloat16; --precision bf16 will be slower than "
                "fp32 here")
    utf8_stdout()
    progress = Progress(len(paths))
    out = RecordWriter(Stdout(), args.format, clf.topk,
                       extra_columns(args.cam_method != DEFAULT_METHOD, args.faithfulness))
    sink = Sink(out, progress, cams, answers, keywords)
    results: Iterator[tuple[Prediction | CachedAnswer, dict[str, Any] | None]]
    try:
        out.begin()
        if slow_extras:  # the slow extras need each photo's model input: one photo at a time
            results = one_by_one(clf, paths, args, keep_images=cams is not None, clock=CLOCK)
        else:
            source = answers if answers is not None else clf  # unchanged photos answered from the library first
            results = ((pred, None) for pred in
                       source.classify_many(paths, batch_size=args.batch_size, keep_images=cams is not None))
        for pred, figures in results:
            sink.put(pred, figures)
    except OutputError as exc:
        silence_stdout()
        say(f"cannot write the results to standard output: {exc}")
        return EXIT_SOME_FAILED
    except (KeyboardInterrupt, Terminated) as exc:
        progress.close()  # ends the progress line itself
        return stopped(exc, "every finished image was written", newline=False)
    progress.close()
    if answers is not None:
        tell(answers)
        answers.library.close()
        say(f"{answers.cached} answered from the results library, {answers.computed} classified")
    done_with_skips(unreadable, skipped)
    return EXIT_SOME_FAILED if sink.failed or unreadable else EXIT_OK
