"""Reopening the window with last time's gallery from the results library: the time until every photo is shown
with its answer, and the library's size on disk per 1,000 photos (`make bench`).

    .venv/bin/python benchmarks/library_restore.py [--photos 5000] [--side 640]

The photos are generated (each its own content) and their answers stored once, as the window stores them
(the top 5, the last stage's 5 x 7 x 7 maps, a 256-pixel thumbnail). The window then starts with a stand-in
model that loads at once and counts forward passes (there must be none): what is timed is the library and the
window, from ``start()`` to the last photo answered, not the model's load (timed by bench.py's launch rows).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_photos(folder: Path, n: int, side: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (side * 3 // 4, side, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        path = folder / f"photo{i:05}.jpg"
        img = base.copy()
        img[0, :8] = np.frombuffer(i.to_bytes(24, "little"), dtype=np.uint8).reshape(8, 3)  # its own bytes
        Image.fromarray(img).save(path, quality=85)
        out.append(path)
    return out


def fill_library(path: Path, photos: list[Path], clf) -> float:
    """Store every photo's answer as the window does; returns the seconds it took."""
    from resnext_gui.core.library import Library, model_key, thumbnail_bytes

    key = model_key(clf.checkpoint.sha256, clf.preprocessing)
    start = time.perf_counter()
    lib = Library(path)
    for p in photos:
        pred = clf.classify(str(p), keep_image=True)
        lib.store(str(p), key, pred, thumbnail_bytes(pred.image))
    lib.set_gallery([str(p) for p in photos])
    lib.close()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=5000, help="photos in last time's gallery (default 5000)")
    ap.add_argument("--side", type=int, default=640, help="width of the generated photos in pixels (default 640)")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from resnext_gui.ui.gallery import Status
    from resnext_gui.ui.main_window import MainWindow
    from resnext_gui.worker.runner import Worker
    from tests.support.fakes import FakeClassifier

    made: list[FakeClassifier] = []

    def factory(weights, device, *, backend, precision, progress):
        made.append(FakeClassifier(weights, device, None, backend, precision))
        return made[-1]

    with tempfile.TemporaryDirectory(prefix="library-bench-") as tmp:
        root = Path(tmp)
        photos = make_photos(root / "photos", args.photos, args.side)
        library = root / "library.sqlite3"
        fill_s = fill_library(library, photos, FakeClassifier("bench.pth", "cpu"))
        size = sum(f.stat().st_size for f in root.iterdir() if f.name.startswith("library.sqlite3"))

        app = QApplication.instance() or QApplication(sys.argv[:1])
        settings = QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat)
        worker = Worker("bench.pth", "cpu", classifier_factory=factory, library=library)
        win = MainWindow(weights="bench.pth", device="cpu", settings=settings, worker=worker)
        win.show()
        app.processEvents()
        marks: dict[str, float] = {}
        loop = QEventLoop()

        def check() -> None:
            n = len(win.photos)
            if "listed" not in marks and n == args.photos:
                marks["listed"] = time.perf_counter()
            if n == args.photos and all(p.status is Status.DONE for p in win.photos):
                marks["shown"] = time.perf_counter()
                loop.quit()

        win.controller.updated.connect(lambda _photo: win.controller.photos.counts()[Status.QUEUED] == 0 and check())
        win.photos.rowsInserted.connect(lambda *_: check())
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(loop.quit)
        deadline.start(600_000)
        start = time.perf_counter()
        win.start()
        loop.exec()
        passes = sum(len(c.calls) for c in made)
        win.close()
        app.processEvents()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench import cpu_features

    row = {
        "cpu": cpu_features(),
        "photos": args.photos,
        "gallery_listed_s": round(marks["listed"] - start, 3) if "listed" in marks else None,
        "restored_gallery_shown_s": round(marks["shown"] - start, 3) if "shown" in marks else None,
        "forward_passes": passes,
        "library_mb_per_1000_photos": round(size / args.photos * 1000 / 2**20, 2),
        "fill_s": round(fill_s, 2),
    }
    print(json.dumps(row), flush=True)
    return 0 if "shown" in marks and passes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
