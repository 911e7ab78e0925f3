"""`resnext-gui --self-test`: a headless check that an installation (or the frozen app) really works."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

from ..core.kinds import DEVICE_CHOICES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="resnext-gui --self-test", description=__doc__)
    ap.add_argument("--weights", metavar="FILE")
    ap.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES))
    args, _ = ap.parse_known_args(argv)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # headless, also where a display exists
    summary: dict[str, Any] = {"ok": False, "frozen": bool(getattr(sys, "frozen", False))}
    stage, detail = "runtimes", ""
    start = time.perf_counter()
    try:
        from ..core.devices import torch_installed, versions

        if torch_installed():  # the CUDA app and the source install; the light CPU app has no torch
            stage = "torchvision operators"  # a build that missed torchvision/_C fails here
            import torch
            import torchvision

            boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]])
            torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)

        stage = "weights"
        from ..core.classifier import Classifier
        from ..core.overlay import cam_overlay
        from ..core.resources import asset
        from ..core.weights import find_weights

        source = find_weights(args.weights)
        summary["weights"] = {"path": str(source.path), "origin": source.origin,
                              "variant": source.variant.name if source.variant else None}
        stage = "model"
        clf = Classifier(source, device=args.device)
        summary["device"] = clf.device.type
        summary["backend"] = clf.backend  # which runtime computed the sample: "openvino" or "torch"
        summary["compiled_from_cache"] = clf.runtime.from_cache  # OpenVINO: this start skipped compiling
        summary["versions"] = {**versions(), "python": sys.version.split()[0]}
        if clf.note:
            summary["backend_note"] = clf.note
        stage = "classify sample photo"
        sample = asset("sample.jpg")
        if sample is None:
            raise RuntimeError("the bundled sample photo (assets/sample.jpg) is missing")
        pred = clf.classify(sample, keep_image=True)
        if not pred.ok or pred.cams is None:
            raise RuntimeError(pred.error)
        summary["sample"] = {"top1": pred.top[0].label, "prob": round(pred.top[0].prob, 4), "ms": round(pred.ms, 1)}
        stage = "Grad-CAM"
        overlay = cam_overlay(pred, 1)
        summary["cam"] = {"shape": list(pred.cams.shape), "overlay": list(overlay.shape),
                          "max": float(pred.cams.max()), "min": float(pred.cams.min())}
        if pred.cams.shape[0] != len(pred.top) or not 0.0 <= pred.cams.min() <= pred.cams.max() <= 1.0:
            raise RuntimeError(f"unexpected Grad-CAM maps: {summary['cam']}")
        stage = "Qt binding"
        from .qt_check import binding_problem

        problem = binding_problem()
        if problem:
            raise RuntimeError(problem)
        summary["qt_binding"] = "keeps its references (checked)"
        stage = "main window"
        summary["window"] = _window_check(str(source.path), args.device)
        summary["ok"] = True
    except Exception as exc:  # the point of a self-test: say what broke, in one line (and all of it on stderr)
        summary["failed_at"] = stage
        summary["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        from ..core.errors import ResnextGuiError

        # our own errors are sentences for the user, with the way out (no weights: how to get them)
        detail = str(exc) if isinstance(exc, ResnextGuiError) else f"{type(exc).__name__}: {exc}"
    summary["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    if not summary["ok"]:
        print(f"resnext-gui self-test FAILED at {stage}: {detail}", file=sys.stderr)
        return 1
    return 0


def _window_check(weights: str, device: str) -> str:
    """Open the main window offscreen, let its worker load the model, close it cleanly."""
    from PySide6.QtCore import QEventLoop, QMessageLogContext, QSettings, QTimer, QtMsgType, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from ..ui.main_window import MainWindow

    def quiet(_mode: QtMsgType, _context: QMessageLogContext, message: str) -> None:
        if "propagateSizeHints" not in message:  # the offscreen platform's own remark, not ours
            sys.stderr.write(message + "\n")

    qInstallMessageHandler(quiet)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(os.path.join(tmp, "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(weights=weights, device=device, settings=settings)
        states: list[str] = []
        loop = QEventLoop()
        def on_state(state: str) -> None:
            states.append(state)
            loop.quit()

        window.modelStateChanged.connect(on_state)
        QTimer.singleShot(120_000, loop.quit)
        window.show()
        window.start()
        loop.exec()
        window.close()
        stopped = not window.worker.is_running()
        window.deleteLater()
        app.processEvents()
    if states[:1] != ["ready"]:
        raise RuntimeError(f"the window's worker did not load the model (got {states or 'no answer in 120 s'})")
    if not stopped:
        raise RuntimeError("the window's worker thread did not stop")
    return "opened, model loaded in its worker, closed"
