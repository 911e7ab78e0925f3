"""The forward pass with the CPU's kernels limited to AVX2, to estimate machines without AVX-512 (`make bench`).

Runs itself twice: as the machine is, and with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (honoured by
PyTorch and by OpenVINO's CPU plugin). Same cores, caches and clock: an estimate of an AVX2-only CPU, not a
measurement of one. Prints a table (ms per photo, median of 8, batch 1 and 8).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

LIMIT = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def measure() -> None:
    import torch
    from bench import median_ms, weights_path

    from resnext_gui.core.backend import openvino_available
    from resnext_gui.core.classifier import Classifier

    weights, _ = weights_path()
    label = "AVX2 only (limited)" if os.environ.get("ONEDNN_MAX_CPU_ISA") else "as is"
    pt = Classifier(weights, device="cpu", backend="torch")
    ov = Classifier(weights, device="cpu", backend="openvino") if openvino_available() else None
    for batch in (1, 8):
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            eager = median_ms(lambda x=x: pt.loaded.model(x), 8) / batch
        vino = median_ms(lambda x=x: ov._ov.infer(x), 8) / batch if ov is not None and ov._ov is not None else float("nan")
        print(f"| {label} ({torch.backends.cpu.get_cpu_capability()}) | {batch} | {eager:.1f} | {vino:.1f} | "
              f"{vino / eager:.2f} |", flush=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        measure()
        return 0
    from bench import cpu_features

    print(f"CPU features: {cpu_features()}")
    print("| kernels | batch | PyTorch eager fp32 ms/photo | OpenVINO fp32 ms/photo | ratio |")
    print("|---|---:|---:|---:|---:|", flush=True)
    for extra in ({}, LIMIT):
        subprocess.run([sys.executable, __file__, "--measure"], env={**os.environ, **extra}, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
