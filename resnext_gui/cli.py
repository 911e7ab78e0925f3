"""Command-line front end over the core: `classify` for files and folders, `weights fetch|info`."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE", help="checkpoint to use (.pth or .safetensors)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="compute device (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnext-gui",
        description="ResNeXt-50 image classifier with Grad-CAM. Without a subcommand, opens the window.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="classify photos and folders; one JSON line (or CSV row) per image")
    _add_model_options(c)
    c.add_argument("--topk", type=int, default=5, metavar="K", help="classes per image (default 5)")
    c.add_argument("--cam-dir", metavar="DIR", help="write <name>.cam.png (overlay) and <name>.cam.npy (top-1 map)")
    c.add_argument("--layer", default="layer4", choices=["layer4", "layer3", "layer2"], help="Grad-CAM stage (default layer4)")
    c.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="photos per forward pass (default 8: faster per photo on CPUs and GPUs alike)")
    c.add_argument("--format", default="jsonl", choices=["jsonl", "csv"], help="output format (default jsonl)")
    c.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: faster on CPUs with bfloat16 support, slightly different numbers (see benchmarks)")
    c.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders searched recursively")

    w = sub.add_parser("weights", help="download or inspect the model weights")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    f = wsub.add_parser("fetch", help="download the official ImageNet weights into the torch hub cache")
    f.add_argument("--variant", default="v2", choices=["v2", "v1"], help="v2: acc@1 81.2 (default); v1: 77.6")
    f.add_argument("--url", help="download from this mirror of the official file instead "
                   "(checked against the variant's own checksum and size)")
    i = wsub.add_parser("info", help="say which weights would be used, from where, and their size")
    i.add_argument("--weights", metavar="FILE", help="checkpoint given on the command line")
    return parser


class Progress:
    """Progress on stderr: a redrawn bar on a terminal, a line every 10% otherwise. Never on stdout."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
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
            self.stream.write(f"classified {self.done}/{self.total} ({self.failed} failed)\n")
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
    """Writes <name>.cam.png / <name>.cam.npy; two inputs with the same name never overwrite each other."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.used: set[str] = set()

    def _stem(self, path: str) -> str:
        base = Path(path).stem or "image"
        stem, n = base, 1
        while stem.lower() in self.used:
            n += 1
            stem = f"{base}-{n}"
        self.used.add(stem.lower())
        return stem

    def write(self, pred, cmap: str = "jet") -> tuple[Path, Path]:
        import numpy as np

        from .core.classifier import cam_overlay, save_png

        stem = self._stem(pred.path)
        png, npy = self.folder / f"{stem}.cam.png", self.folder / f"{stem}.cam.npy"
        save_png(cam_overlay(pred, 1, cmap), png)
        np.save(npy, pred.cams[0].astype(np.float32))
        return png, npy


def cmd_classify(args) -> int:
    from .core.classifier import Classifier
    from .core.errors import ResnextGuiError
    from .core.paths import expand_paths
    from .core.records import csv_header, csv_row, json_line

    if args.topk < 1 or args.batch_size < 1:
        print("resnext-gui classify: --topk and --batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        clf = Classifier(args.weights, device=args.device, layer=args.layer, topk=args.topk, precision=args.precision)
    except ResnextGuiError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.precision == "bf16" and clf.device.type == "cpu":
        import torch

        capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "")()
        if "AVX512" not in capability.upper():
            print(f"resnext-gui: note: this CPU ({capability or 'unknown'}) has no native bfloat16; "
                  "--precision bf16 will be slower than fp32 here", file=sys.stderr)
    paths = expand_paths(args.paths)
    cams = CamWriter(Path(args.cam_dir)) if args.cam_dir else None
    out = sys.stdout
    try:  # the output is UTF-8 whatever the locale says (file names and labels are not all ASCII)
        out.reconfigure(encoding="utf-8", errors="replace")
    except (AttributeError, ValueError, OSError):
        pass
    writer = csv.writer(out) if args.format == "csv" else None
    if writer:
        writer.writerow(csv_header(clf.topk))
    progress = Progress(len(paths))
    failed = 0
    try:
        for pred in clf.classify_many(paths, batch_size=args.batch_size, keep_images=cams is not None):
            record = pred.to_record()
            if pred.ok and cams:
                try:
                    png, npy = cams.write(pred)
                    record["cam_png"], record["cam_npy"] = str(png), str(npy)
                except OSError as exc:
                    record = {"path": pred.path, "ok": False, "error": f"cannot write its Grad-CAM: {exc}"}
            pred.image = None
            failed += 0 if record["ok"] else 1
            if writer:
                writer.writerow(csv_row(record, clf.topk))
            else:
                out.write(json_line(record) + "\n")
            out.flush()
            progress.step(record["ok"])
    except KeyboardInterrupt:
        progress.close()
        print("resnext-gui: interrupted; every finished image was written", file=sys.stderr)
        return 130
    progress.close()
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_weights(args) -> int:
    from .core import weights as W
    from .core.errors import ResnextGuiError

    if args.weights_command == "fetch":
        variant = W.VARIANTS[args.variant]
        tty = sys.stderr.isatty()
        last = [0.0]

        def show(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < 0.2 and done != total:
                return
            last[0] = now
            pct = f"{100 * done / total:5.1f}% " if total else ""
            end = "\r" if tty else "\n"
            sys.stderr.write(f"{pct}{done / 2**20:7.1f} MB{end}")
            sys.stderr.flush()

        print(f"Downloading {variant.describe()} from {args.url or os.environ.get(W.ENV_MIRROR) or variant.url}", file=sys.stderr)
        try:
            path = W.fetch(variant, url=args.url, progress=show)
        except ResnextGuiError as exc:
            print(f"\nresnext-gui: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("\nresnext-gui: download interrupted; nothing was saved", file=sys.stderr)
            return 130
        print(f"\nSaved and verified: {path}", file=sys.stderr)
        return EXIT_OK

    try:
        source = W.find_weights(args.weights)
    except ResnextGuiError as exc:
        print(f"resnext-gui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    size = source.path.stat().st_size
    info = {
        "path": str(source.path),
        "origin": source.origin,
        "variant": source.variant.weights.name if source.variant else None,
        "size_bytes": size,
        "description": source.describe(),
    }
    print(json.dumps(info, ensure_ascii=False))
    print(f"Would use {source.describe()}, {size / 2**20:.1f} MB", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "classify":
            return cmd_classify(args)
        return cmd_weights(args)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
