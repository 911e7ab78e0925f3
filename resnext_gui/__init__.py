"""resnext-gui: a desktop image classifier (ResNeXt-50, top-5 ImageNet classes, Grad-CAM heatmaps)."""

import sys

__version__ = "0.1.0"


def version_line() -> str:
    """`resnext-gui 0.1.0`: the installed distribution's version, else this source tree's (the frozen app)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return f"resnext-gui {version('resnext-gui')}"
    except (ImportError, PackageNotFoundError, ValueError):
        return f"resnext-gui {__version__}"


# OpenVINO's telemetry: `import openvino` imports openvino.tools.ovc, which (when the openvino_telemetry package
# is importable and no consent file exists) writes ~/intel/openvino_ga_cid and ~/intel/stats and sends a Google
# Analytics event from a child process. Its only opt-out is a file written to ~/intel, and its CI switch is an
# environment variable every child process would inherit. OpenVINO runs without the package (it then uses its
# own no-op stub), so the package is made unimportable here, before any part of this app can import openvino.
# This runs for the window, the CLI and the frozen app alike: every entry point imports this package first.
if "openvino_telemetry" not in sys.modules:
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # documented: import then raises ImportError
