"""Weights lookup order, the no-weights message, and the verified, atomic download against a local server."""

import hashlib

import pytest

from resnext_gui.core import weights as W
from resnext_gui.core.errors import DownloadError, NoWeightsError, WeightsError
from tests.helpers import WeightsServer


@pytest.fixture
def places(tmp_path, monkeypatch):
    """One candidate file for each origin; the bundled folder is redirected to a temporary one."""
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(W, "bundled_weights_dirs", lambda: [bundled])
    files = {
        "explicit": tmp_path / "mine.pth",
        "env": tmp_path / "from_env.pth",
        "bundled": bundled / W.VARIANTS["v2"].filename,
        "cache_v1": W.hub_checkpoint_dir() / W.VARIANTS["v1"].filename,
        "cache_v2": W.hub_checkpoint_dir() / W.VARIANTS["v2"].filename,
    }
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    return files


def test_lookup_order(places, monkeypatch):
    monkeypatch.setenv(W.ENV_WEIGHTS, str(places["env"]))
    got = W.find_weights(places["explicit"])
    assert (got.path, got.origin, got.variant) == (places["explicit"], "--weights", None)
    got = W.find_weights()
    assert (got.path, got.origin) == (places["env"], W.ENV_WEIGHTS)
    monkeypatch.delenv(W.ENV_WEIGHTS)
    got = W.find_weights()
    assert (got.path, got.origin, got.variant.key) == (places["bundled"], "bundled", "v2")
    places["bundled"].unlink()
    got = W.find_weights()
    assert (got.path, got.origin, got.variant.key) == (places["cache_v2"], "torch hub cache", "v2")
    places["cache_v2"].unlink()
    got = W.find_weights()
    assert (got.path, got.variant.key) == (places["cache_v1"], "v1")
    assert got.transforms_variant.weights.transforms().resize_size == [256]  # V1's own preprocessing
    places["cache_v1"].unlink()
    with pytest.raises(NoWeightsError):
        W.find_weights()


def test_hub_cache_follows_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert W.hub_checkpoint_dir() == tmp_path / "th" / "hub" / "checkpoints"
    assert W.VARIANTS["v2"].filename == "resnext50_32x4d-1a0047aa.pth"
    assert W.VARIANTS["v1"].filename == "resnext50_32x4d-7cdf4587.pth"


def test_named_file_must_exist(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="not found.*--weights"):
        W.find_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(W.ENV_WEIGHTS, str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsError, match=W.ENV_WEIGHTS):
        W.find_weights()


def test_no_weights_message_gives_both_ways_out(monkeypatch, tmp_path):
    monkeypatch.setattr(W, "bundled_weights_dirs", lambda: [tmp_path / "none"])
    with pytest.raises(NoWeightsError) as info:
        W.find_weights()
    text = str(info.value)
    assert "resnext-gui weights fetch" in text and "--weights FILE" in text


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB stands in for the 96 MB file
HASH8 = hashlib.sha256(PAYLOAD).hexdigest()[:8]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_good_file_is_verified_and_reports_progress(tmp_path):
    seen = []
    with WeightsServer({"w.pth": PAYLOAD}) as srv:
        dest = W.download(f"{srv.base}/w.pth", tmp_path / "out" / "w.pth", HASH8, progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "out") == ["w.pth"]
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_download_wrong_hash_leaves_nothing(tmp_path):
    with WeightsServer({"w.pth": PAYLOAD}) as srv:
        with pytest.raises(DownloadError, match="checksum"):
            W.download(f"{srv.base}/w.pth", tmp_path / "w.pth", "deadbeef")
    assert _leftovers(tmp_path) == []


def test_download_dropped_half_way_leaves_nothing_and_retry_works(tmp_path):
    with WeightsServer({"w.pth": PAYLOAD}) as srv:
        with pytest.raises(DownloadError, match="cut off|failed"):
            W.download(f"{srv.base}/drop/w.pth", tmp_path / "w.pth", HASH8)
        assert _leftovers(tmp_path) == []
        W.download(f"{srv.base}/w.pth", tmp_path / "w.pth", HASH8)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_download_cancel_and_unreachable_leave_nothing(tmp_path):
    with WeightsServer({"w.pth": PAYLOAD}) as srv:
        with pytest.raises(W.DownloadCancelled):
            W.download(f"{srv.base}/w.pth", tmp_path / "w.pth", HASH8, cancelled=lambda: True)
        with pytest.raises(DownloadError, match="404|failed"):
            W.download(f"{srv.base}/nothing.pth", tmp_path / "w.pth", HASH8)
    assert _leftovers(tmp_path) == []


def test_fetch_from_mirror_lands_in_hub_cache_under_official_name(tmp_path):
    name = f"resnext50_32x4d-{HASH8}.pth"
    with WeightsServer({name: PAYLOAD}) as srv:
        path = W.fetch(W.VARIANTS["v2"], url=f"{srv.base}/{name}")
        assert path == W.hub_checkpoint_dir() / "resnext50_32x4d-1a0047aa.pth"
        assert path.read_bytes() == PAYLOAD
        with pytest.raises(DownloadError, match="no sha256 prefix"):
            W.fetch(W.VARIANTS["v1"], url=f"{srv.base}/plain.pth")
    assert W.find_weights().path == path
