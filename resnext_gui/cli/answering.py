"""What classify does with the photos and their answers, on this machine or on a cluster's nodes: the photos named
(PATH... and --files-from), the slow extras one photo at a time, the results library, and the Sink every answer
goes out through."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .output import CamWriter, EncodedMaps, KeywordWriter, Progress, path_list, say

if TYPE_CHECKING:
    from ..core.answers import CachedAnswer, KnownAnswers
    from ..core.classifier import Classifier
    from ..core.prediction import Prediction
    from ..core.records import RecordWriter


def named(args: argparse.Namespace) -> Iterator[str]:
    """What the user named: the PATH arguments, then the lines of --files-from (read as they are taken)."""
    yield from args.paths
    if args.files_from:
        yield from path_list(args.files_from)


def open_answers(args: argparse.Namespace, clf: Classifier) -> KnownAnswers:
    """--library: the model's answers through the results library (looked up unless the photo must be computed)."""
    from ..core.answers import KnownAnswers
    from ..core.library import Library

    library = Library(Path(args.library_path) if args.library_path else None)
    # a map of another method or stage, the faithfulness figures: those answers need the photo computed
    lookups = not (args.cam_dir or getattr(args, "faithfulness", False)
                   or getattr(args, "cam_method", None) not in (None, "gradcam"))
    answers = KnownAnswers.of(clf, library, lookups)
    assert answers is not None  # a real Classifier has a checkpoint and preprocessing: its key
    tell(answers)
    return answers


def tell(answers: KnownAnswers) -> None:
    """Say on stderr what the results library has to say, each thing once, as soon as it is known."""
    for note in answers.notes():
        say(f"note: {note}")


class ScoreCamProgress:
    """Score-CAM's progress on stderr, with the time left at the rate so far: a redrawn line on a terminal,
    else a line at the start and one every 10 % (a log file is not flooded)."""

    def __init__(self, name: str, clock: Callable[[], float], stream: TextIO | None = None) -> None:
        from ..core.time_left import TimeLeft

        self.name = name
        self.stream: TextIO = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.left = TimeLeft(clock)
        self._next_line = 0.1
        if not self.tty:
            self._line(f"resnext-gui: Score-CAM of {name}…\n")

    def _line(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def __call__(self, done: int, total: int) -> None:
        from ..core.time_left import say_time_left

        left = say_time_left(self.left.update(done, total))
        if self.tty:
            self._line(f"\rScore-CAM: {done}/{total} masked passes{' · ' + left if left else ''}\033[K")
        elif total and done / total >= self._next_line and done < total:
            self._line(f"resnext-gui: Score-CAM of {self.name}: {done / total:.0%}{', ' + left if left else ''}\n")
            self._next_line = (int(done / total * 10) + 1) / 10

    def close(self) -> None:
        if self.tty:
            self._line("\r\033[K")


def one_by_one(clf: Classifier, paths: list[Path], args: argparse.Namespace, keep_images: bool,
               clock: Callable[[], float]) -> Iterator[tuple[Prediction, dict[str, Any] | None]]:
    """(prediction, faithfulness record or None) per photo, for Score-CAM and --faithfulness: each photo decoded,
    classified, then its slow extras computed from its own model input. ``clock`` measures Score-CAM's time left."""
    from ..core import faithfulness
    from ..core.prediction import failure
    from ..core.preprocess import source_name

    for path in paths:
        name = source_name(path)
        try:
            item = clf.prepare(path)
        except Exception as exc:  # this photo's answer, as classify_many gives it
            yield failure(name, exc), None
            continue
        try:
            pred = clf.predict([item])[0]
            if pred.ok and args.cam_method == "scorecam":
                show = ScoreCamProgress(name, clock)
                try:
                    pred.cams = clf.score_cams(item, [t.index for t in pred.top], args.layer, progress=show)
                finally:
                    show.close()
                pred.method = "scorecam"
            figures = None
            if pred.ok and args.faithfulness and pred.cams is not None:
                top = pred.top[0]
                f = clf.faithfulness(item, top.index, pred.cams[0], steps=faithfulness.DEFAULT_STEPS)
                figures = {"method": pred.method, "layer": pred.layer, "label": top.label, **f.to_record(),
                           "sentence": f.sentence(top.label)}
        except Exception as exc:  # the model failed on this photo (out of memory, ...)
            yield failure(name, exc, "classified"), None
            continue
        if keep_images:
            pred.image = item.decoded.image
        yield pred, figures


class Sink:
    """Where each answer goes, in input order, whoever computed it (this machine or a cluster's node): its maps
    into --cam-dir, into the results library (committed before it is printed), its keywords, its record on
    stdout, a step of the progress. ``failed`` counts the photos without a full answer."""

    def __init__(self, out: RecordWriter, progress: Progress, cams: CamWriter | None = None,
                 answers: KnownAnswers | None = None, keywords: KeywordWriter | None = None) -> None:
        self.out, self.progress, self.cams, self.answers, self.keywords = out, progress, cams, answers, keywords
        self.failed = 0

    def put(self, pred: Prediction | CachedAnswer, figures: dict[str, Any] | None = None,
            maps: EncodedMaps | str | None = None, thumbnail: bytes | None = None) -> None:
        """``pred``'s answer out. ``maps``: its --cam-dir files drawn already (or why they could not be), else
        they are drawn here from ``pred.image``; ``thumbnail``: its library thumbnail, made already."""
        from ..core.library import LibraryError

        record = pred.to_record()
        if figures is not None:
            record["faithfulness"] = figures
        if pred.ok and self.cams is not None and pred.cams is not None:
            try:
                if isinstance(maps, str):
                    raise RuntimeError(maps)
                png, npy = self.cams.save(pred.path, maps) if maps is not None else self.cams.write(pred)
                record["cam_png"], record["cam_npy"] = str(png), str(npy)
            except Exception as exc:  # disk full, read-only, ...: this photo's answer says so
                reason = getattr(exc, "strerror", None) or str(exc)
                record = {"path": pred.path, "ok": False, "error": f"{pred.path}: cannot write its Grad-CAM: {reason}"}
        if self.answers is not None and not record["ok"]:
            self.answers.forget_thumbnail(pred)
        elif self.answers is not None:  # committed before the answer is printed: a kill loses nothing shown
            try:
                self.answers.keep(pred.path, pred, record, thumbnail)
            except LibraryError as exc:
                say(f"warning: {exc}")
        if self.answers is not None:
            tell(self.answers)  # after its lookup and its store: damage found meanwhile is said now
        if self.keywords is not None and record["ok"] and not self.keywords.write(record):
            self.failed += 1
        pred.image = None
        self.failed += 0 if record["ok"] else 1
        self.out.write(record)
        self.progress.step(record["ok"])
