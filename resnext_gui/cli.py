"""Command-line front end over the core: `classify` for files and folders, `train` for new classes, `weights fetch|info`;
`similar` and `duplicates` live in similar_cli.py."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: stop as for Ctrl+C, with every finished line written and no half-written file."""


class OutputError(Exception):
    """Standard output can't be written (closed, disk full, I/O error); not a broken pipe."""


def _emit(text: str) -> None:
    """Write and flush one piece of output; a failing stdout becomes an OutputError (a broken pipe stays one)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: the stream was closed
        raise OutputError(getattr(exc, "strerror", None) or str(exc)) from None


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush of what is still buffered can't fail loudly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE", help="checkpoint to use (.pth or .safetensors)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="compute device (default: auto)")


def _add_version(p: argparse.ArgumentParser) -> None:
    from . import version_line

    p.add_argument("--version", action="version", version=version_line(), help="print the version and exit")


def _add_library_options(c: argparse.ArgumentParser) -> None:
    g = c.add_argument_group("results library and keywords")
    g.add_argument("--library", action="store_true",
                   help="answer unchanged photos from the results library (marked \"cached\": true) and keep new "
                        "answers there (the window's library; not used with --cam-dir, --faithfulness or --cam-method, "
                        "which need the photo computed)")
    g.add_argument("--library-path", metavar="FILE", help="the library file to use (implies --library; default "
                   "$XDG_DATA_HOME/resnext-gui/library.sqlite3)")
    g.add_argument("--xmp", action="store_true",
                   help="write the classes as keywords into the sidecar NAME.EXT.xmp beside each photo, merged with "
                        "what is there (dc:subject, and lr:hierarchicalSubject under ResNeXt|...)")
    g.add_argument("--xmp-min-prob", type=float, default=None, metavar="P",
                   help="keywords: the top class, and others at least this probable (0 to 1, default 0.2)")
    g.add_argument("--xmp-into-file", action="store_true",
                   help="write the keywords into the photo file as well (rewrites the photo; implies --xmp)")


def build_parser() -> argparse.ArgumentParser:
    from .core.cam import METHODS
    from .core.faithfulness import DEFAULT_STEPS

    parser = argparse.ArgumentParser(
        prog="resnext-gui",
        description="ResNeXt-50 image classifier with Grad-CAM. Without a subcommand, opens the window.",
    )
    _add_version(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="classify photos and folders; one JSON line (or CSV row) per image")
    _add_model_options(c)
    c.add_argument("--topk", type=int, default=5, metavar="K", help="classes per image (default 5)")
    c.add_argument("--cam-dir", metavar="DIR", help="write <name>.cam.png (overlay) and <name>.cam.npy (top-1 map); "
                   "with another --cam-method than gradcam, <name>.<method>.cam.png and .npy")
    c.add_argument("--layer", default="layer4", choices=["layer4", "layer3", "layer2"],
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
    c.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: faster on CPUs with native bfloat16 (AVX-512 BF16, AMX), slightly different numbers "
                        "(see benchmarks)")
    c.add_argument("--backend", default="auto", choices=["auto", "torch", "openvino"],
                   help="CPU inference runtime (default auto: OpenVINO when installed, else PyTorch; "
                        "GPUs always use PyTorch)")
    _add_library_options(c)
    c.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders searched recursively")

    t = sub.add_parser("train", help="teach new classes: one subfolder of photos per class -> a new model file")
    _add_model_options(t)
    t.add_argument("data_dir", metavar="DATA_DIR", help="a folder with one subfolder of photos per class")
    t.add_argument("--out", required=True, metavar="MODEL", help="where to save the new model (a .safetensors file)")
    t.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of each class kept aside to check the model (default 0.2)")
    t.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the validation split (default 0)")

    w = sub.add_parser("weights", help="download or inspect the model weights")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    f = wsub.add_parser("fetch", help="download the official ImageNet weights into the torch hub cache")
    f.add_argument("--variant", default="v2", choices=["v2", "v1"], help="v2: acc@1 81.2 (default); v1: 77.6")
    f.add_argument("--url", help="download from this mirror of the official file instead "
                   "(checked against the variant's own checksum and size)")
    i = wsub.add_parser("info", help="say which weights would be used, from where, and their size")
    i.add_argument("--weights", metavar="FILE", help="checkpoint given on the command line")
    for command in (c, t, w, f, i):
        _add_version(command)
    from .similar_cli import add_commands

    add_commands(sub)  # similar, duplicates
    return parser


class Progress:
    """Progress on stderr: a redrawn bar on a terminal, a line every 10% otherwise. Never on stdout."""

    def __init__(self, total: int, stream=None, verb: str = "classified") -> None:
        self.verb = verb
        stream = stream or sys.stderr  # looked up now: sys.stderr may have been replaced since import
        self.total, self.stream, self.done, self.failed = total, stream, 0, 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._next_line = 0.1

    def step(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self.total <= 1:
            return
        frac = self.done / self.total
        if self.tty:
            width = 30
            bar = "#" * int(width * frac)
            self.stream.write(f"\r[{bar:<{width}}] {self.done}/{self.total}  {self.failed} failed")
            self.stream.flush()
        elif frac >= self._next_line or self.done == self.total:
            self.stream.write(f"{self.verb} {self.done}/{self.total} ({self.failed} failed)\n")
            self.stream.flush()
            self._next_line = (int(frac * 10) + 1) / 10

    def close(self) -> None:
        if self.tty and self.total > 1:
            self.stream.write("\n")
        if self.total > 1:
            secs = time.perf_counter() - self.start
            self.stream.write(f"{self.done} images in {secs:.1f} s, {self.failed} failed\n")
        self.stream.flush()


class CamWriter:
    """Writes <name>.cam.png / <name>.cam.npy: atomically, never through a planted link, never overwriting twice.

    Each file is written to a temporary file in the same folder and renamed over the target name, so a
    failure (disk full, SIGTERM) leaves no partial or empty file, and a symbolic link planted at the target
    name is replaced, not followed. Names are made valid UTF-8 and shortened to fit the file system's limit;
    two inputs with the same name get ``name`` and ``name-2``.
    """

    MAX_STEM_BYTES = 200  # + "-NN.gradcam++.cam.png" stays well under the usual 255-byte limit

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.used: set[str] = set()

    @staticmethod
    def check_folder(folder: Path) -> str | None:
        """Why ``folder`` can't take the maps (checked before the model loads); None if it can."""
        if folder.exists() and not folder.is_dir():
            return f"--cam-dir {folder} is not a folder"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--cam-dir {folder} cannot be created: {exc.strerror or exc}"
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".resnext-gui-", suffix=".probe")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return f"--cam-dir {folder} is not writable: {exc.strerror or exc}"
        return None

    def _stem(self, path: str) -> str:
        from .core.records import valid_text

        base = valid_text(Path(path).stem) or "image"
        encoded = base.encode("utf-8")
        if len(encoded) > self.MAX_STEM_BYTES:
            base = encoded[: self.MAX_STEM_BYTES].decode("utf-8", "ignore") + "~"
        stem, n = base, 1
        while stem.lower() in self.used:
            n += 1
            stem = f"{base}-{n}"
        self.used.add(stem.lower())
        return stem

    def write(self, pred, cmap: str = "jet") -> tuple[Path, Path]:
        """The overlay of the top-1 class (its PNG text fields say the method, layer and class) and its map;
        named <stem>.cam.png for the default method, <stem>.<method>.cam.png for the others."""
        import numpy as np

        from .core.cam import DEFAULT_METHOD
        from .core.classifier import cam_overlay, overlay_text, save_png

        stem = self._stem(pred.path)
        kind = "cam" if pred.method == DEFAULT_METHOD else f"{pred.method}.cam"
        png, npy = self.folder / f"{stem}.{kind}.png", self.folder / f"{stem}.{kind}.npy"
        overlay = cam_overlay(pred, 1, cmap)
        cam = pred.cams[0].astype(np.float32)
        from .core.files import atomic_file

        # each through a temporary file renamed into place (a link at the name is replaced, never written
        # through); a map without its partner would be a half answer, so the first goes if the second fails
        with atomic_file(png, shared=True) as fh:
            save_png(overlay, fh, overlay_text(pred, 1))
        try:
            with atomic_file(npy, shared=True) as fh:
                np.save(fh, cam)
        except BaseException:
            png.unlink(missing_ok=True)
            raise
        return png, npy


def _expand(paths: list[str]) -> tuple[list[Path], int, int]:
    """The photos to classify, with one stderr warning per folder or link passed over and per empty folder.

    Returns (photos, folders that could not be read, other skips).
    """
    from .core.paths import IMAGE_SUFFIXES, expand_paths

    unreadable, skipped = 0, 0

    def on_skip(path: Path, reason: str) -> None:
        nonlocal unreadable, skipped
        if reason.startswith("cannot be read"):
            unreadable += 1
        else:
            skipped += 1
        print(f"resnext-gui: skipped {path}: {reason}", file=sys.stderr)

    found: list[Path] = []
    for raw in paths:
        mine = expand_paths([raw], on_skip)
        if not mine and os.path.isdir(raw):
            print(f"resnext-gui: warning: {raw} holds no images ({' '.join(IMAGE_SUFFIXES)})", file=sys.stderr)
        found += mine
    return found, unreadable, skipped


FAITHFULNESS_COLUMNS = ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc", "prob",
                        "prob_hidden", "random_prob_hidden")


def _csv_extra(args) -> tuple[str, ...]:
    """The CSV columns beyond the usual ones: the method when it is not the default, the faithfulness figures."""
    extra: tuple[str, ...] = ()
    if args.cam_method != "gradcam":
        extra += ("cam_method",)
    if args.faithfulness:
        extra += tuple(f"faithfulness.{name}" for name in FAITHFULNESS_COLUMNS)
    return extra


def _one_by_one(clf, paths, args, keep_images: bool):
    """(prediction, faithfulness record or None) per photo, for Score-CAM and --faithfulness: each photo decoded,
    classified, then its slow extras computed from its own model input."""
    from .core import faithfulness
    from .core.classifier import failure
    from .core.preprocess import source_name

    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
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
                if not tty:
                    print(f"resnext-gui: Score-CAM of {name}…", file=sys.stderr, flush=True)

                def show(done: int, total: int) -> None:
                    if tty:
                        sys.stderr.write(f"\rScore-CAM: {done}/{total} masked passes")
                        sys.stderr.flush()

                pred.cams = clf.score_cams(item, [t.index for t in pred.top], args.layer, progress=show)
                pred.method = "scorecam"
                if tty:
                    sys.stderr.write("\r\033[K")
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


def cmd_classify(args) -> int:
    from .core.errors import ResnextGuiError
    from .core.records import csv_header, csv_row, json_line

    if args.topk < 1 or (args.batch_size is not None and args.batch_size < 1):
        print("resnext-gui classify: --topk and --batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    from .core.cam import method_layers

    if args.layer not in method_layers(args.cam_method):
        print(f"resnext-gui classify: --cam-method {args.cam_method} is offered at "
              f"{', '.join(method_layers(args.cam_method))}, not at --layer {args.layer}", file=sys.stderr)
        return EXIT_USAGE
    cams = None
    if args.cam_dir:
        problem = CamWriter.check_folder(Path(args.cam_dir))
        if problem:
            print(f"resnext-gui: {problem}", file=sys.stderr)
            return EXIT_USAGE
        cams = CamWriter(Path(args.cam_dir))
    problem = _check_library_options(args)
    if problem:
        print(f"resnext-gui classify: {problem}", file=sys.stderr)
        return EXIT_USAGE
    paths, unreadable, skipped = _expand(args.paths)
    if not paths:
        print("resnext-gui: nothing to classify: no image files were found", file=sys.stderr)
        return EXIT_SOME_FAILED

    from .core.cam import DEFAULT_METHOD, ONE_PASS
    from .core.classifier import MAX_BATCH, Classifier

    if args.batch_size is not None and args.batch_size > MAX_BATCH:
        print(f"resnext-gui: note: --batch-size {args.batch_size} is capped at {MAX_BATCH} "
              "(larger batches only cost memory)", file=sys.stderr)
        args.batch_size = MAX_BATCH
    print("resnext-gui: loading the model…", file=sys.stderr, flush=True)
    one_by_one = args.cam_method not in ONE_PASS or args.faithfulness
    try:  # a folder streams through the network, several photos at once; one photo (or the slow extras) one by one
        clf = Classifier(args.weights, device=args.device, layer=args.layer, topk=args.topk, precision=args.precision,
                         method=args.cam_method if args.cam_method in ONE_PASS else DEFAULT_METHOD,
                         backend=args.backend, progress=lambda text: print(f"resnext-gui: {text}", file=sys.stderr, flush=True),
                         tuned_for="throughput" if len(paths) > 1 and not one_by_one else "latency")
    except ResnextGuiError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if clf.note:
        print(f"resnext-gui: note: {clf.note}", file=sys.stderr)
    if args.batch_size is None:
        args.batch_size = clf.default_batch_size
    answers = LibraryAnswers.open(args, clf) if args.library else None
    if answers is not None:
        clf = answers.wrap(clf)  # its classify_many answers unchanged photos from the library
    keywords = KeywordWriter(args, clf) if args.xmp else None
    if args.precision == "bf16" and clf.device.type == "cpu":
        from .core.devices import cpu_capability, native_bf16

        if not native_bf16():
            print(f"resnext-gui: note: this CPU ({cpu_capability()}) has no native bfloat16; "
                  "--precision bf16 will be slower than fp32 here", file=sys.stderr)
    try:  # the output is UTF-8 whatever the locale says (file names and labels are not all ASCII)
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass

    def csv_text(row: list) -> str:
        buf = io.StringIO()
        csv.writer(buf).writerow(row)
        return buf.getvalue()

    progress = Progress(len(paths))
    failed = 0
    extra = _csv_extra(args)
    try:
        if args.format == "csv":
            _emit(csv_text(csv_header(clf.topk, extra)))
        if one_by_one:  # the slow extras need each photo's model input: one photo at a time
            results = _one_by_one(clf, paths, args, keep_images=cams is not None)
        else:
            results = ((pred, None) for pred in
                       clf.classify_many(paths, batch_size=args.batch_size, keep_images=cams is not None))
        for pred, figures in results:
            record = pred.to_record()
            if figures is not None:
                record["faithfulness"] = figures
            if pred.ok and cams:
                try:
                    png, npy = cams.write(pred)
                    record["cam_png"], record["cam_npy"] = str(png), str(npy)
                except Exception as exc:  # disk full, read-only, ...: this photo's answer says so
                    reason = getattr(exc, "strerror", None) or str(exc)
                    record = {"path": pred.path, "ok": False, "error": f"{pred.path}: cannot write its Grad-CAM: {reason}"}
            if answers is not None:
                answers.keep(pred, record)  # committed before the answer is printed: a kill loses nothing shown
            if keywords is not None and record["ok"] and not keywords.write(record):
                failed += 1
            pred.image = None
            failed += 0 if record["ok"] else 1
            _emit(csv_text(csv_row(record, clf.topk, extra)) if args.format == "csv" else json_line(record) + "\n")
            progress.step(record["ok"])
    except OutputError as exc:
        _silence_stdout()
        print(f"resnext-gui: cannot write the results to standard output: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except (KeyboardInterrupt, Terminated) as exc:
        progress.close()  # ends the progress line itself
        return _stopped(exc, "every finished image was written", newline=False)
    progress.close()
    if answers is not None:
        answers.close()
    if unreadable or skipped:
        print(f"resnext-gui: {unreadable + skipped} folders or links skipped ({unreadable} could not be read)",
              file=sys.stderr)
    return EXIT_SOME_FAILED if failed or unreadable else EXIT_OK


def _check_library_options(args) -> str | None:
    """Why the --library / --xmp options can't be used as given (checked before the model loads); None if they can."""
    if args.library_path:
        args.library = True
        if os.path.isdir(args.library_path):
            return f"--library-path {args.library_path} is a folder; give the library's file name"
    if args.xmp_into_file:
        args.xmp = True
    if args.xmp_min_prob is not None:
        if not 0.0 <= args.xmp_min_prob <= 1.0:  # NaN fails too
            return "--xmp-min-prob must be a probability from 0 to 1"
        if not args.xmp:
            return "--xmp-min-prob needs --xmp"
    return None


class CachedAnswer:
    """A photo answered from the results library: stands where classify_many's Prediction would."""

    ok = True
    image = None
    cams = None

    def __init__(self, path: str, record: dict) -> None:
        self.path, self.record = path, record

    def to_record(self) -> dict:
        return dict(self.record)


class LibraryAnswers:
    """classify --library: photos the results library knows are answered from it, new answers are kept in it."""

    def __init__(self, library, key: str, topk: int, lookups: bool) -> None:
        self.library, self.key, self.topk, self.lookups = library, key, topk, lookups
        self.cached = self.computed = 0
        self.thumbnails: dict[str, bytes] = {}

    @classmethod
    def open(cls, args, clf) -> LibraryAnswers:
        from .core.library import Library, model_key

        library = Library(Path(args.library_path) if args.library_path else None)
        if library.note:
            print(f"resnext-gui: note: {library.note}", file=sys.stderr)
        # a map of another method or stage, the faithfulness figures: those answers need the photo computed
        lookups = not (args.cam_dir or getattr(args, "faithfulness", False)
                       or getattr(args, "cam_method", None) not in (None, "gradcam"))
        return cls(library, model_key(clf.checkpoint.sha256, clf.preprocessing), clf.topk, lookups)

    def wrap(self, clf):
        """``clf`` with its classify_many answering from the library first (what cmd_classify iterates)."""
        return _LibraryClassifier(clf, self)

    def results(self, clf, sources, batch_size: int = 1, keep_images: bool = False, **kwargs):
        """classify_many's answers in order: CachedAnswer for what the library knows, the model's for the rest."""
        from collections import deque

        order: deque = deque()  # a CachedAnswer, or None where the model answers, in input order

        def to_compute():
            for path in sources:
                hit = self._cached(path) if self.lookups else None
                order.append(hit)
                if hit is None:
                    yield path

        # the photo is kept until its thumbnail is made, then let go unless the caller wants it
        for pred in clf.classify_many(to_compute(), batch_size=batch_size, keep_images=True, **kwargs):
            while order and order[0] is not None:
                yield order.popleft()
            order.popleft()
            self.computed += 1
            if pred.ok and pred.image is not None:
                self._thumbnail(pred)
            if not keep_images:
                pred.image = None
            yield pred
        while order:
            yield order.popleft()

    def _cached(self, path) -> CachedAnswer | None:
        from .core.preprocess import source_name

        start = time.perf_counter()
        entry = self.library.lookup(path, self.key, min_top=self.topk)
        if entry is None:
            return None
        record = {k: v for k, v in entry.record.items() if k != "note"}  # a note told of that run, not this one
        record["path"] = source_name(path)
        record["top"] = list(record.get("top") or entry.top)[: self.topk]
        record["ms"] = round((time.perf_counter() - start) * 1000.0, 1)
        record["cached"] = True
        self.cached += 1
        return CachedAnswer(record["path"], record)

    def _thumbnail(self, pred) -> None:
        from .core.library import thumbnail_bytes

        try:
            self.thumbnails[pred.path] = thumbnail_bytes(pred.image)
        except (OSError, ValueError, MemoryError):
            pass

    def keep(self, pred, record: dict) -> None:
        """Store a computed answer (not one the library gave); a failure is a warning, the run goes on."""
        from .core.library import LibraryError, thumbnail_bytes

        if isinstance(pred, CachedAnswer):
            return
        thumb = self.thumbnails.pop(pred.path, None)
        if not record["ok"]:
            return
        if thumb is None and pred.image is not None:
            try:
                thumb = thumbnail_bytes(pred.image)
            except (OSError, ValueError, MemoryError):
                thumb = None
        try:
            self.library.store(pred.path, self.key, pred, thumbnail=thumb, record=record)
        except LibraryError as exc:
            print(f"resnext-gui: warning: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.library.close()
        print(f"resnext-gui: {self.cached} answered from the results library, {self.computed} classified",
              file=sys.stderr)


class _LibraryClassifier:
    """The classifier, with classify_many going through the results library first; everything else is the model's."""

    def __init__(self, clf, answers: LibraryAnswers) -> None:
        self._clf, self._answers = clf, answers

    def classify_many(self, sources, batch_size: int = 1, keep_images: bool = False, **kwargs):
        return self._answers.results(self._clf, sources, batch_size=batch_size, keep_images=keep_images, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._clf, name)


class KeywordWriter:
    """classify --xmp: each answer's classes as keywords in the photo's XMP sidecar (and the photo, if asked)."""

    def __init__(self, args, clf) -> None:
        from .core.xmp import DEFAULT_MIN_PROB, parent_for

        self.min_prob = DEFAULT_MIN_PROB if args.xmp_min_prob is None else args.xmp_min_prob
        self.into_file = bool(args.xmp_into_file)
        self.parent = parent_for(clf.labels, clf.source.path)

    def write(self, record: dict) -> bool:
        """Write the keywords of ``record`` (an ``ok`` answer); a failure goes into the record and onto stderr."""
        from .core.errors import XmpError
        from .core.xmp import keywords_for, write_keywords

        try:
            side = write_keywords(record["path"], keywords_for(record["top"], self.min_prob), self.parent,
                                  into_file=self.into_file)
        except XmpError as exc:
            record["xmp_error"] = str(exc)
            print(f"resnext-gui: {exc}", file=sys.stderr)
            return False
        record["xmp"] = str(side)
        return True


def cmd_train(args) -> int:
    from .core.errors import ResnextGuiError
    from .core.train import TrainingError, model_path_problem, save, scan, train

    out = Path(args.out)
    problem = model_path_problem(out)
    if problem:
        print(f"resnext-gui: --out {problem}", file=sys.stderr)
        return EXIT_USAGE
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        print(f"resnext-gui: cannot write the model into {parent}", file=sys.stderr)
        return EXIT_USAGE
    if not 0.0 <= args.val_fraction < 1.0:
        print("resnext-gui train: --val-fraction must be at least 0 and below 1", file=sys.stderr)
        return EXIT_USAGE
    try:  # the folder first: a refusal costs no model loading
        data = scan(args.data_dir)
    except TrainingError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .core.classifier import Classifier

    print("resnext-gui: loading the model…", file=sys.stderr, flush=True)
    try:
        clf = Classifier(args.weights, device=args.device)
    except ResnextGuiError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        print("resnext-gui: teaching needs real backbone weights (features of an untrained network are meaningless)",
              file=sys.stderr)
        return EXIT_USAGE
    progress: Progress | None = None

    def on_progress(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress(total, verb="features of")
        while progress.done < done:
            progress.step(True)

    try:
        result = train(clf, data, val_fraction=args.val_fraction, seed=args.seed, progress=on_progress,
                       log=lambda m: print(f"resnext-gui: {m}", file=sys.stderr, flush=True))
        if progress is not None:
            progress.close()
        path = save(clf, result, out)
    except TrainingError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"resnext-gui: cannot save the model to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as exc:
        return _stopped(exc, "nothing was saved")
    summary = {"model": str(path), **result.summary()}
    acc = result.validation.get("accuracy") if result.validation else None
    print(f"resnext-gui: saved {path}" + (f"; validation accuracy {acc:.1%}" if acc is not None else ""),
          file=sys.stderr)
    from .core.records import clean_record

    _emit(json.dumps(clean_record(summary), ensure_ascii=False) + "\n")
    return EXIT_OK


def cmd_weights(args) -> int:
    from .core import weights
    from .core.errors import ResnextGuiError
    from .throttle import throttled

    if args.weights_command == "fetch":
        variant = weights.VARIANTS[args.variant]
        tty = sys.stderr.isatty()

        def show(done: int, total: int) -> None:
            pct = f"{100 * done / total:5.1f}% " if total else ""
            end = "\r" if tty else "\n"
            sys.stderr.write(f"{pct}{done / 2**20:7.1f} MB{end}")
            sys.stderr.flush()

        print(f"Downloading {variant.describe()} from {args.url or os.environ.get(weights.ENV_MIRROR) or variant.url}", file=sys.stderr)
        try:
            path = weights.fetch(variant, url=args.url, progress=throttled(show, every_s=0.2))
        except ResnextGuiError as exc:
            print(f"\nresnext-gui: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as exc:  # a SIGTERM is main's to report
            return _stopped(exc, "nothing was saved", what="download ")
        print(f"\nSaved and verified: {path}", file=sys.stderr)
        return EXIT_OK

    try:
        source = weights.find_weights(args.weights)
    except ResnextGuiError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    size = source.path.stat().st_size
    info = {
        "path": str(source.path),
        "origin": source.origin,
        "variant": source.variant.name if source.variant else None,
        "size_bytes": size,
        "description": source.describe(),
    }
    _emit(json.dumps(info, ensure_ascii=False) + "\n")
    print(f"Would use {source.describe()}, {size / 2**20:.1f} MB", file=sys.stderr)
    return EXIT_OK


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _stopped(exc: BaseException, kept: str = "", what: str = "", newline: bool = True) -> int:
    """Ctrl+C (KeyboardInterrupt) or SIGTERM (Terminated): one line on stderr saying what was kept, and the exit
    status a shell expects (130, 143). After Ctrl+C the line starts below the ``^C`` the terminal echoed."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    lead = "\n" if interrupted and newline else ""
    text = f"{what}{'interrupted' if interrupted else 'terminated'}" + (f"; {kept}" if kept else "")
    print(f"{lead}resnext-gui: {text}", file=sys.stderr)
    return EXIT_INTERRUPTED if interrupted else EXIT_TERMINATED


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if sys.stdout is None:  # started with stdout closed (`>&-`): say so instead of failing on the first line
        print("resnext-gui: standard output is closed; nowhere to write the results", file=sys.stderr)
        return EXIT_SOME_FAILED
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if args.command == "classify":
            return cmd_classify(args)
        if args.command == "train":
            return cmd_train(args)
        if args.command in ("similar", "duplicates"):
            from .similar_cli import run

            return run(args)
        return cmd_weights(args)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        _silence_stdout()
        return EXIT_OK
    except OutputError as exc:
        _silence_stdout()
        print(f"resnext-gui: cannot write to standard output: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except (KeyboardInterrupt, Terminated) as exc:  # e.g. while the model loads
        return _stopped(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
