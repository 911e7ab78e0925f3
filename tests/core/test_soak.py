"""A soak test: 1,000 photos through the Classifier; resident memory stays flat after warm-up."""

from pathlib import Path

import pytest

from resnext_gui.core.classifier import Classifier


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for resident memory")
def test_thousand_photos_memory_stays_flat(checkpoint, tmp_path, photos):
    from PIL import Image

    small = tmp_path / "small.jpg"
    with Image.open(photos["astronaut"]) as im:
        im.convert("RGB").resize((160, 160)).save(small, quality=85)
    clf = Classifier(checkpoint, device="cpu")
    paths = [small] * 1000
    seen, warm = 0, None
    for pred in clf.classify_many(paths, batch_size=8):
        assert pred.ok
        seen += 1
        if seen == 100:
            warm = rss_mb()
    growth = rss_mb() - warm
    assert seen == 1000
    assert growth < 200, f"resident memory grew by {growth:.0f} MB over 900 photos"
