"""A soak test: 300 camera-sized photos through the Classifier; resident memory stays flat after warm-up."""

from pathlib import Path

import pytest

from resnext_gui.core.classifier import Classifier

N, WARM = 300, 50
SIDE = (1600, 1200)  # decoded: 5.8 MB each, so keeping every photo would add about 1.4 GB over the run


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for resident memory")
def test_memory_stays_flat_over_hundreds_of_photos(checkpoint, tmp_path, photos):
    from PIL import Image

    paths = []
    for name in ("astronaut", "chelsea", "coffee"):
        path = tmp_path / f"{name}.jpg"
        with Image.open(photos[name]) as im:
            im.convert("RGB").resize(SIDE).save(path, quality=85)
        paths.append(path)
    clf = Classifier(checkpoint, device="cpu", fast_decode=False)  # full decodes: the largest images
    seen, warm = 0, None
    for pred in clf.classify_many([paths[i % 3] for i in range(N)], batch_size=8):
        assert pred.ok
        seen += 1
        if seen == WARM:
            warm = rss_mb()
    growth = rss_mb() - warm
    per_photo = SIDE[0] * SIDE[1] * 3 / 2**20
    assert seen == N
    assert growth < 0.2 * (N - WARM) * per_photo, f"resident memory grew by {growth:.0f} MB over {N - WARM} photos"
