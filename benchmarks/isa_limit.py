"""The forward pass with the CPU's kernels limited to AVX2, to estimate machines without AVX-512 (`make bench`).

Runs itself twice: as the machine is, and with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (honoured by
PyTorch and by OpenVINO's CPU plugin). Same cores, caches and clock: an estimate of an AVX2-only CPU, not a
measurement of one. Each run has its own empty cache folder, so OpenVINO compiles the network for the kernels
it is allowed (a compiled form cached by the other run is never used). Prints a table (ms per photo, median
of 8, batch 1 and 8): torchvision's network in PyTorch, and the app's OpenVINO runtime, same weights.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

LIMIT = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def measure(weights: str) -> None:
    import numpy as np
    import torch
    from bench import median_ms, torch_reference

    from resnext_gui.core.classifier import Classifier
    from resnext_gui.core.runtimes import openvino_available
    from resnext_gui.core.weights import find_weights

    source = find_weights(weights)
    label = "AVX2 only (limited)" if os.environ.get("ONEDNN_MAX_CPU_ISA") else "as is"
    model = torch_reference(source, "cpu")
    ov = Classifier(source, device="cpu", backend="openvino") if openvino_available() else None
    if ov is not None and ov.backend != "openvino":  # OpenVINO failed to start: the Classifier runs PyTorch
        print(f"OpenVINO did not start: {ov.note}", file=sys.stderr)
        ov = None
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        x = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            eager = median_ms(lambda xt=xt: model(xt), 8) / batch
        vino = median_ms(lambda x=x: ov.runtime.infer(x), 8) / batch if ov is not None else float("nan")
        print(f"| {label} ({torch.backends.cpu.get_cpu_capability()}) | {batch} | {eager:.1f} | {vino:.1f} | "
              f"{vino / eager:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measure", metavar="WEIGHTS", help=argparse.SUPPRESS)  # one run, in the environment given
    args = ap.parse_args(argv)
    if args.measure:
        measure(args.measure)
        return 0
    from bench import cpu_features, weights_path

    weights, _ = weights_path()  # found here: the runs' own cache folders hide the user's (and torch hub's)

    print(f"CPU features: {cpu_features()}")
    print("| kernels | batch | PyTorch eager fp32 ms/photo | OpenVINO fp32 ms/photo | ratio |")
    print("|---|---:|---:|---:|---:|", flush=True)
    for extra in ({}, LIMIT):
        with tempfile.TemporaryDirectory() as cache:
            subprocess.run([sys.executable, __file__, "--measure", str(weights)],
                           env={**os.environ, **extra, "XDG_CACHE_HOME": cache}, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
