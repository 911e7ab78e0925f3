"""Mid-batch responsiveness of the real window: drop N 12-MP photos, click the first one T s later, time what it shows.

Run on a display (tools/xvfb-check.sh style: Xvfb + openbox, DISPLAY set):
    .venv/bin/python benchmarks/window_priority.py [--photos 240] [--click-after 12] [--shot shot.png] [--block-torch]
Prints one JSON line: when the thumbnail and the full photo appeared after the click, that the batch was
still running then, and whether torch was imported (``--block-torch``: it cannot be, as in the light app).
Uses a generated checkpoint (made once, in a subprocess): the weights' values don't change the timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
DATA = REPO / "benchmarks" / "data"


def twelve_megapixel_photos(n: int) -> Path:
    from PIL import Image
    from skimage import data

    folder = DATA / f"window_{n}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    bases = []
    for name in ("coffee", "chelsea", "astronaut"):
        path = DATA / f"{name}_12mp.jpg"
        if not path.exists():
            Image.fromarray(getattr(data, name)()).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(path, quality=90)
        bases.append(path)
    for i in range(n):
        os.link(bases[i % 3], folder / f"photo{i:04}.jpg")
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photos", type=int, default=240)
    ap.add_argument("--click-after", type=float, default=12.0)
    ap.add_argument("--shot", help="screenshot of the whole screen right after the full photo appeared")
    ap.add_argument("--block-torch", action="store_true", help="torch and torchvision cannot be imported (the light app)")
    args = ap.parse_args()
    if not os.environ.get("DISPLAY"):
        print("needs a display: run under Xvfb (see tools/xvfb-check.sh)", file=sys.stderr)
        return 2
    from bench import GENERATE_CHECKPOINT, block_torch

    if args.block_torch:
        block_torch()
    from PySide6.QtCore import QSettings, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from resnext_gui.ui.gallery import Status
    from resnext_gui.ui.main_window import MainWindow

    DATA.mkdir(parents=True, exist_ok=True)
    ckpt = DATA / "seed0.pth"
    if not ckpt.exists():  # torchvision's seeded init (tests.support.helpers.make_checkpoint), made without torch in here
        subprocess.run([sys.executable, "-c", GENERATE_CHECKPOINT, str(ckpt)], check=True)
    folder = twelve_megapixel_photos(args.photos)
    app = QApplication([sys.argv[0]])
    tmp = tempfile.mkdtemp()
    win = MainWindow(weights=str(ckpt), device="cpu", settings=QSettings(f"{tmp}/s.ini", QSettings.Format.IniFormat))
    win.show()
    out: dict = {"photos": args.photos, "click_after_s": args.click_after}
    state: dict = {}

    def ready(s: str) -> None:
        if s == "ready" and "dropped" not in state:
            state["dropped"] = time.perf_counter()
            win.add_paths([str(folder)])
            QTimer.singleShot(int(args.click_after * 1000), click)

    def click() -> None:
        first = win.photos.index(0)
        win.gallery.scrollTo(first)
        # select another photo first, so that clicking the first one is a real change of selection
        win.select(win.photos.photo(1))
        state["done_at_click"] = win.photos.counts()[Status.DONE]
        state["clicked"] = time.perf_counter()
        QTest.mouseClick(win.gallery.viewport(), Qt.MouseButton.LeftButton, pos=win.gallery.visualRect(first).center())
        state["thumb_shown"] = win.view.has_photo()
        state["thumb_width"] = win.view._photo.width() if win.view.has_photo() else 0
        if state["thumb_width"] > 200:  # still in the display cache: nothing to wait for
            updated(win.photos.photo(0).item_id)

    def updated(item_id: int) -> None:
        photo = win.photos.get(item_id)
        if "clicked" in state and "full" not in state and photo is win.photos.photo(0) and win.view._photo.width() > 200:
            state["full"] = time.perf_counter()
            state["queued_then"] = win.photos.counts()[Status.QUEUED]
            QTimer.singleShot(300, finish)  # let the window paint it first

    def finish() -> None:
        if args.shot:
            subprocess.run(["import", "-window", "root", args.shot], check=False)
        win.close()

    win.modelStateChanged.connect(ready)
    win.photoUpdated.connect(updated)
    QTimer.singleShot(300_000, win.close)
    win.start()
    app.exec()
    if "full" not in state:
        print(json.dumps({**out, "error": "the full photo never appeared"}))
        return 1
    out.update({
        "done_before_click": state["done_at_click"],
        "thumbnail_at_once": state["thumb_shown"], "thumbnail_width_px": state["thumb_width"],
        "full_photo_after_click_s": round(state["full"] - state["clicked"], 3),
        "photos_still_waiting_then": state["queued_then"],
        "backend": win.model_info.backend if win.model_info is not None else None,
        "torch_loaded": "torch" in sys.modules,
    })
    print(json.dumps(out))
    return 0 if out["full_photo_after_click_s"] <= 2.0 and out["photos_still_waiting_then"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
