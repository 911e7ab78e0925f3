"""Results library benchmark (`make bench`): reopening a gallery of 5,000 photos from the library, and its size on disk.

The entries are synthetic but shaped as the app stores them: top-5 ImageNet labels with probabilities, five
7×7 maps, a crop, the classify record, and a real JPEG thumbnail (at most 256 px a side) of a different crop
of scikit-image's photos for each entry. The photo files themselves are small stand-ins (the library reads
only their change stamp, a stat, when they are unchanged; a stamp taken within two seconds of a file's last change
is checked by content once, at the first reopening). Timed: opening the library, reading the saved gallery and
every entry with its thumbnail (``lookup_many``), the median of three reopenings; and, as an estimate of what the
window does next, decoding those thumbnails with Pillow.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from resnext_gui.core.labels import imagenet_labels  # noqa: E402
from resnext_gui.core.library import Library, model_key, thumbnail_bytes  # noqa: E402
from resnext_gui.core.prediction import Prediction, TopClass  # noqa: E402
from resnext_gui.core.preprocess import Preprocessing  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import cpu_features  # noqa: E402

KEY = model_key("0" * 64, Preprocessing(232, 224))


def sources() -> list[Image.Image]:
    from skimage import data

    return [Image.fromarray(getattr(data, name)()).convert("RGB") for name in ("chelsea", "astronaut", "coffee", "rocket")]


def fill(folder: Path, n: int) -> tuple[Path, list[Path], float, int]:
    """A library of ``n`` entries in ``folder``; (its path, the photos, store ms per entry, thumbnail bytes)."""
    rng = np.random.default_rng(0)
    pictures = sources()
    labels = imagenet_labels()
    path = folder / "library.sqlite3"
    photos, thumb_bytes, store_s = [], 0, 0.0
    with Library(path) as lib:
        for i in range(n):
            photo = folder / "photos" / f"{i // 500:02}" / f"IMG_{i:05}.jpg"
            photo.parent.mkdir(parents=True, exist_ok=True)
            photo.write_bytes(rng.bytes(2048))
            pic = pictures[i % len(pictures)]
            w, h = pic.size
            x, y = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3))
            thumb = thumbnail_bytes(pic.crop((x, y, x + 2 * w // 3, y + 2 * h // 3)))
            thumb_bytes += len(thumb)
            probs = np.sort(rng.dirichlet(np.ones(5) * 0.5))[::-1]
            classes = rng.choice(len(labels), 5, replace=False)
            top = [TopClass(r + 1, int(c), labels[int(c)], float(p)) for r, (c, p) in enumerate(zip(classes, probs))]
            pred = Prediction(path=str(photo), ok=True, top=top, cams=rng.random((5, 7, 7), dtype=np.float32),
                              crop=(0.0, 0.0, 4000.0, 3000.0), image_size=(4000, 3000), ms=95.0)
            start = time.perf_counter()
            lib.store(photo, KEY, pred, thumbnail=thumb)
            store_s += time.perf_counter() - start
            photos.append(photo)
        lib.set_gallery(photos)
    return path, photos, store_s * 1000 / n, thumb_bytes


def reopen(path: Path) -> tuple[float, float, int]:
    """(seconds to open and read the gallery's entries with thumbnails, seconds to decode the thumbnails, entries)."""
    import io

    start = time.perf_counter()
    with Library(path) as lib:
        entries = lib.lookup_many(lib.gallery(), KEY)
    read_s = time.perf_counter() - start
    assert all(e is not None and e.thumbnail for e in entries), "an entry was not found again"
    start = time.perf_counter()
    for e in entries:
        assert e is not None and e.thumbnail is not None
        with Image.open(io.BytesIO(e.thumbnail)) as im:
            im.load()
    return read_s, time.perf_counter() - start, len(entries)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photos", type=int, default=5000, help="entries in the library (default 5000)")
    ap.add_argument("--quick", action="store_true", help="200 entries, printed only (a check that it runs)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/library.md alone")
    args = ap.parse_args(argv)
    n = 200 if args.quick else args.photos
    with tempfile.TemporaryDirectory(prefix="resnext-library-bench-") as tmp:
        path, _photos, store_ms, thumb_bytes = fill(Path(tmp), n)
        size = Library(path).size_bytes()
        runs = [reopen(path) for _ in range(3)]
    read = statistics.median(r[0] for r in runs)
    decode = statistics.median(r[1] for r in runs)
    per_1000 = size * 1000 / n / 2**20
    lines = [
        "# The results library",
        "",
        f"Machine: {platform.processor() or platform.machine()}, CPU features {cpu_features()}; Python "
        f"{platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}. `python benchmarks/library.py"
        f"{' --quick' if args.quick else ''}`; synthetic entries (see the script's docstring), {n:,} photos.",
        "",
        "| what | value |",
        "|---|---:|",
        f"| reopen: open the library, read the gallery and its {n:,} entries with thumbnails (median of 3) | "
        f"{read * 1000:.0f} ms |",
        f"| then decode the {n:,} thumbnails (Pillow; what the window does next, roughly) | {decode * 1000:.0f} ms |",
        f"| store one answer (its own committed transaction) | {store_ms:.2f} ms |",
        f"| size on disk per 1,000 photos | {per_1000:.1f} MB |",
        f"| of which thumbnails | {thumb_bytes * 1000 / n / 2**20:.1f} MB |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not (args.quick or args.no_write):
        (HERE / "library.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
