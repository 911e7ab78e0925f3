"""Fuzzing the image loading entry point: any bytes give an image or the project's own clean error, fast."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from resnext_gui.core.errors import ImageError
from resnext_gui.core.preprocess import load_image


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    out = []
    for fmt, kw in [("JPEG", {}), ("PNG", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {}), ("PNG", {"bits": 4})]:
        buf = io.BytesIO()
        (im.convert("P") if fmt == "GIF" else im).save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


def _check(data: bytes) -> None:
    try:
        decoded = load_image(data, min_side=64)
    except ImageError as exc:
        assert str(exc)  # a message for the user, nothing else escapes
        return
    assert decoded.image.mode == "RGB" and decoded.image.width >= 1


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(data)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_images(seed, flips, cut):
    data = bytearray(SEEDS[seed])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check(bytes(data))


@pytest.mark.parametrize("i", range(len(SEEDS)))
def test_seeds_are_valid_images(i):
    assert load_image(SEEDS[i]).image.size == (32, 24)
