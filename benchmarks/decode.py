"""The decode step measured: JPEG decoders reachable from PyPI at each DCT scale, per 12-MP photo (`make bench`).

For each decoder (Pillow, simplejpeg, PyTurboJPEG) and each decode size (full; the app's default, shorter side
at least 2x the resize target; a smaller DCT scale, at least 1x) it reports the decode time, the decode plus
the app's preprocessing (numpy; the same numbers as the weights' transforms in torchvision), how far the
model's input moves from the full-size Pillow decode, and whether the top-5 stays the same (torchvision's
network with the same weights). Writes benchmarks/decode.md (and prints it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench import cpu_features, describe_machine, make_photos, torch_reference, weights_path  # noqa: E402

from resnext_gui.core.weights import WeightsSource, find_weights  # noqa: E402

SCALES = (8, 4, 2, 1)  # libjpeg's DCT scaling: 1/8 ... 1/1


def reduction(size: tuple[int, int], min_side: int | None) -> int:
    """The largest 1/n reduction that keeps the shorter side at least ``min_side`` (what Pillow's draft picks)."""
    if not min_side:
        return 1
    return next((n for n in SCALES if min(size) // n >= min_side), 1)


def pillow(data: bytes, min_side: int | None) -> Image.Image:
    import io

    im = Image.open(io.BytesIO(data))
    if min_side:
        n = reduction(im.size, min_side)
        im.draft("RGB", (im.width // n, im.height // n))
    return im.convert("RGB")


def simplejpeg_decoder() -> Callable[[bytes, int | None], Image.Image] | str:
    try:
        import simplejpeg
    except ImportError:
        return "not installed (pip install simplejpeg)"

    def decode(data: bytes, min_side: int | None) -> Image.Image:
        w, h = simplejpeg.decode_jpeg_header(data)[:2]
        n = reduction((w, h), min_side)
        arr = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=-(-w // n), min_height=-(-h // n))
        return Image.fromarray(arr)

    return decode


def turbojpeg_decoder() -> Callable[[bytes, int | None], Image.Image] | str:
    try:
        import turbojpeg

        jpeg = turbojpeg.TurboJPEG()
    except (ImportError, OSError, RuntimeError) as exc:
        return f"not usable here: {str(exc).splitlines()[0]}"

    def decode(data: bytes, min_side: int | None) -> Image.Image:
        w, h = jpeg.decode_header(data)[:2]
        n = reduction((w, h), min_side)
        arr = jpeg.decode(data, pixel_format=turbojpeg.TJPF_RGB, scaling_factor=(1, n))
        return Image.fromarray(arr)

    return decode


def stand_in_reference(source: WeightsSource, description: str, inputs: torch.Tensor) -> tuple[torch.nn.Module, str]:
    """torchvision's network with the weights: the official ones when present; else the seeded network with a
    head fitted so that every photo (``inputs``, their reference model inputs) has its own well-separated top-5
    (logits 12, 9, 6, 4, 2), so "same top-5" compares real answers, not ties."""
    from resnext_gui.core.model import forward_to

    model = torch_reference(source, "cpu")
    if not description.startswith("generated"):
        return model, description
    with torch.inference_mode():
        feats = forward_to(model, inputs, "layer4").mean((2, 3)).double()
    rng = np.random.default_rng(0)
    targets = torch.zeros(len(inputs), model.fc.out_features, dtype=torch.float64)
    for row, classes in enumerate(rng.permutation(model.fc.out_features)[: 5 * len(inputs)].reshape(-1, 5)):
        targets[row, torch.as_tensor(classes)] = torch.tensor([12.0, 9.0, 6.0, 4.0, 2.0], dtype=torch.float64)
    with torch.no_grad():
        model.fc.weight.copy_((torch.linalg.pinv(feats) @ targets).T.float())
        model.fc.bias.zero_()
    return model, "the seeded network, head fitted to these photos (no official weights here)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3, help="timed decodes of each photo per row (median)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/decode.md alone")
    args = ap.parse_args(argv)
    big, _small = make_photos()
    blobs = [p.read_bytes() for p in big]
    weights, description = weights_path()
    from resnext_gui.core.preprocess import model_input

    source = find_weights(weights)
    spec = source.transforms_variant.preprocessing  # the weights' own: resize, centre crop, mean and std
    resize = spec.resize

    def transforms(image: Image.Image) -> torch.Tensor:
        """The app's preprocessing (numpy, what ``Classifier.prepare`` runs after decoding), as a tensor."""
        return torch.from_numpy(model_input(image, spec))

    reference_inputs = [transforms(pillow(b, None)) for b in blobs]
    model, model_desc = stand_in_reference(source, description, torch.stack(reference_inputs))

    def probabilities(inputs: list[torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(model(torch.stack(inputs)), 1)

    reference_top5 = probabilities(reference_inputs).topk(5, dim=1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1) * 255

    decoders: dict[str, Callable[[bytes, int | None], Image.Image] | str] = {
        f"Pillow {Image.__version__} (draft)": pillow, "simplejpeg": simplejpeg_decoder(), "PyTurboJPEG": turbojpeg_decoder()}
    sizes = [("full size", None), (f"shorter side ≥ {2 * resize} (default)", 2 * resize),
             (f"shorter side ≥ {resize}", resize)]
    lines = [
        "# The decode step",
        "",
        f"Machine: {describe_machine(torch.device('cpu'))}; CPU features: {cpu_features()}.",
        f"{len(big)} JPEGs of 12 MP (4000×3000, quality 90, from scikit-image's photos); median of "
        f"{args.repeats} decodes of each. Top-5 compared with: {model_desc}.",
        "Preprocessing: the app's own (numpy: resize, centre crop, normalise; the same numbers as the weights' "
        "transforms in torchvision). Input Δ: the model's 224×224 input against the full-size Pillow decode, in "
        "0–255 pixel units (mean and largest absolute difference); top-5 prob. Δ: the largest change of a "
        "reference top-5 probability.",
        "",
        "| decoder | decode size | decode ms | decode + preprocessing ms | input Δ mean / max | same top-5 | top-5 prob. Δ |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for name, decode in decoders.items():
        if isinstance(decode, str):
            line = f"| {name} | — | — | — | — | — | {decode} |"
            lines.append(line)
            print(line, flush=True)
            continue
        for label, min_side in sizes:
            dec_ms, full_ms = [], []
            for data in blobs:
                decode(data, min_side)  # warm
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    im = decode(data, min_side)
                    t1 = time.perf_counter()
                    transforms(im)
                    t2 = time.perf_counter()
                    dec_ms.append((t1 - t) * 1000)
                    full_ms.append((t2 - t) * 1000)
            inputs = [transforms(decode(b, min_side)) for b in blobs]
            deltas = [((x - ref) * std).abs() for x, ref in zip(inputs, reference_inputs)]
            probs = probabilities(inputs)
            same = sum(a == b for a, b in zip(probs.topk(5, dim=1).indices.tolist(), reference_top5.indices.tolist()))
            moved = float((probs.gather(1, reference_top5.indices) - reference_top5.values).abs().max())
            line = (f"| {name} | {label} | {statistics.median(dec_ms):.1f} | {statistics.median(full_ms):.1f} | "
                    f"{statistics.mean(float(d.mean()) for d in deltas):.2f} / {max(float(d.max()) for d in deltas):.0f} | "
                    f"{same}/{len(blobs)} | {moved:.4f} |")
            lines.append(line)
            print(line, flush=True)
    if not args.no_write:
        (HERE / "decode.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
