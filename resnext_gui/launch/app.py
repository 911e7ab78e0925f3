"""Start the desktop app: window first, then the worker thread that imports torch and loads the model."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from ..core.kinds import DEVICE_CHOICES

STARTED = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="resnext-gui",
        description="ResNeXt-50 image classifier with Grad-CAM heatmaps. "
        "Subcommands for scripts: `resnext-gui classify --help`, `resnext-gui train --help`, `resnext-gui weights --help`, "
        "`resnext-gui similar --help`, `resnext-gui duplicates --help`.",
    )
    p.add_argument("paths", nargs="*", metavar="PHOTO_OR_FOLDER", help="photos or folders to classify at start")
    p.add_argument("--weights", metavar="FILE", help="checkpoint to use (.pth or .safetensors)")
    p.add_argument("--device", choices=list(DEVICE_CHOICES), help="compute device (default: last used, else auto)")
    from .. import version_line

    p.add_argument("--version", action="version", version=version_line(), help="print the version and exit")
    p.add_argument("--self-test", action="store_true", help="headless check of the installation; prints JSON, exit 0 when fine")
    p.add_argument("--install-desktop-entry", action="store_true",
                   help="add the app to your applications menu and to \"Open with\" for photos (~/.local/share)")
    p.add_argument("--uninstall-desktop-entry", action="store_true", help="remove what --install-desktop-entry added")
    p.add_argument("--startup-report", action="store_true", help=argparse.SUPPRESS)  # timings for tests and benchmarks
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .preflight import ensure_platform

    refused = ensure_platform()  # a missing system library is named before Qt can abort with less to go on
    if refused is not None:
        return refused
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ..ui.gallery import Photo
    from ..ui.main_window import MainWindow

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    from .qt_check import binding_problem

    problem = binding_problem()
    if problem:  # say so now, plainly, rather than crash in the middle of a batch
        sys.stderr.write(f"resnext-gui: {problem}\n")
        if app.platformName() not in ("offscreen", "minimal"):  # started from a menu: no terminal to read
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.critical(None, "resnext-gui cannot start", problem)
        return 3
    from .qt_check import font_problem

    fonts = font_problem()
    if fonts:  # the window still opens (its photos and heatmaps work); the terminal says why it has no text
        sys.stderr.write(f"resnext-gui: {fonts}\n")
    app.setApplicationName("resnext-gui")
    app.setOrganizationName("resnext-gui")
    app.setApplicationDisplayName("ResNeXt Classifier")
    app.setDesktopFileName("resnext-gui")
    from PySide6.QtGui import QIcon

    from ..core.resources import asset

    icon = asset("icon.png")
    if icon:
        app.setWindowIcon(QIcon(str(icon)))
    from ..core import logs

    logs.to_file()
    logs.log_uncaught()
    logs.start_facts("window")
    window = MainWindow(weights=args.weights, device=args.device)

    if args.startup_report:
        def report(event: str, **extra: Any) -> None:
            print(json.dumps({"event": event, "s": round(time.perf_counter() - STARTED, 3),
                              "torch_loaded": "torch" in sys.modules, **extra}), flush=True)

        def on_result(photo: Photo) -> None:
            if photo.result is not None:
                report("result", ok=photo.result.ok)
                window.close()

        def on_model(state: str) -> None:
            report("model", state=state)
            if not args.paths:
                window.close()

        window.shown.connect(lambda: report("window"))
        window.modelStateChanged.connect(on_model)
        if args.paths:  # then time the first photo's answer too (cold start to first result)
            window.controller.updated.connect(on_result)

    # Ctrl+C in the terminal, and SIGTERM (a logout, `systemctl stop`, `kill`), close the window as its close button
    # does: settings saved, the gallery written, the library checkpointed and closed, the worker stopped. The timer
    # lets Python see the signal.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: window.close())
    tick = QTimer()
    tick.start(200)
    tick.timeout.connect(lambda: None)

    window.show()
    QTimer.singleShot(0, window.start)
    if args.paths:
        window.add_paths(args.paths)
    code = app.exec()
    tick.stop()
    if window.worker.is_running():  # the worker is stuck (e.g. a driver call): don't crash on exit
        sys.stderr.write("resnext-gui: the inference thread did not stop in time; exiting anyway\n")
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
