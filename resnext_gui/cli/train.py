"""`resnext-gui train`: a folder with one subfolder of photos per class in, a new model file out (only its head is learnt)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .options import add_model_options
from .output import EXIT_OK, EXIT_USAGE, Progress, Terminated, emit, say, stopped


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    t = sub.add_parser("train", help="teach new classes: one subfolder of photos per class -> a new model file")
    add_model_options(t)
    t.add_argument("data_dir", metavar="DATA_DIR", help="a folder with one subfolder of photos per class")
    t.add_argument("--out", required=True, metavar="MODEL", help="where to save the new model (a .safetensors file)")
    t.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of each class kept aside to check the model (default 0.2)")
    t.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the validation split (default 0)")
    return t


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ResnextGuiError
    from ..core.train import TrainingError, model_path_problem, save, scan, train

    out = Path(args.out)
    problem = model_path_problem(out)
    if problem:
        say(f"--out {problem}")
        return EXIT_USAGE
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        say(f"cannot write the model into {parent}")
        return EXIT_USAGE
    if not 0.0 <= args.val_fraction < 1.0:
        say("train: --val-fraction must be at least 0 and below 1")
        return EXIT_USAGE
    try:  # the folder first: a refusal costs no model loading
        data = scan(args.data_dir)
    except TrainingError as exc:
        say(str(exc))
        return EXIT_USAGE
    from ..core.classifier import Classifier

    say("loading the model…")
    try:
        clf = Classifier(args.weights, device=args.device)
    except ResnextGuiError as exc:
        say(str(exc))
        say("teaching needs real backbone weights (features of an untrained network are meaningless)")
        return EXIT_USAGE
    progress: Progress | None = None

    def on_progress(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress(total, verb="features of")
        while progress.done < done:
            progress.step(True)

    try:
        result = train(clf, data, val_fraction=args.val_fraction, seed=args.seed, progress=on_progress, log=say)
        if progress is not None:
            progress.close()
        path = save(clf, result, out)
    except TrainingError as exc:
        say(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        say(f"cannot save the model to {out}: {exc.strerror or exc}")
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as exc:
        return stopped(exc, "nothing was saved")
    summary = {"model": str(path), **result.summary()}
    acc = result.validation.get("accuracy") if result.validation else None
    say(f"saved {path}" + (f"; validation accuracy {acc:.1%}" if acc is not None else ""))
    from ..core.records import clean_record

    emit(json.dumps(clean_record(summary), ensure_ascii=False) + "\n")
    return EXIT_OK
