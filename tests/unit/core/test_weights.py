"""Weights lookup order, the no-weights message, and the verified, atomic download against a local server."""

import hashlib
import socket
import threading
from pathlib import Path

import pytest

from resnext_gui.core import weights as W
from resnext_gui.core.errors import DownloadError, NoWeightsError, WeightsError
from tests.support.helpers import WeightsServer


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
    assert got.transforms_variant.preprocessing.resize == 256  # V1's own preprocessing
    places["cache_v1"].unlink()
    with pytest.raises(NoWeightsError):
        W.find_weights()


def test_hub_cache_follows_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert W.hub_checkpoint_dir() == tmp_path / "th" / "hub" / "checkpoints"
    assert W.VARIANTS["v2"].filename == "resnext50_32x4d-1a0047aa.pth"
    assert W.VARIANTS["v1"].filename == "resnext50_32x4d-7cdf4587.pth"


def test_variants_carry_torchvision_s_own_data():
    """Every field the app copied from torchvision's weights enum, checked against the enum itself."""
    from torchvision.models import ResNeXt50_32X4D_Weights
    from torchvision.transforms import InterpolationMode

    assert sorted(v.name for v in W.VARIANTS.values()) == sorted(w.name for w in ResNeXt50_32X4D_Weights)
    assert W.DEFAULT_VARIANT.name == ResNeXt50_32X4D_Weights.DEFAULT.name
    for variant in W.VARIANTS.values():
        official = ResNeXt50_32X4D_Weights[variant.name]
        assert variant.url == official.url
        assert variant.size_bytes == int(round(official.meta["_file_size"] * 2**20))
        assert variant.acc1 == official.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert variant.describe() == f"ImageNet {official.name} (acc@1 {variant.acc1})"
        transforms = official.transforms()
        spec = variant.preprocessing
        assert [spec.resize] == list(transforms.resize_size) and [spec.crop] == list(transforms.crop_size)
        assert list(spec.mean) == list(transforms.mean) and list(spec.std) == list(transforms.std)
        assert transforms.interpolation == InterpolationMode.BILINEAR and transforms.antialias  # what preprocess does
        assert variant.hash_prefix == official.url.rsplit("-", 1)[1].split(".")[0]


def test_imagenet_labels_are_torchvision_s_categories():
    from torchvision.models import ResNeXt50_32X4D_Weights

    from resnext_gui.core.labels import imagenet_labels

    names = imagenet_labels()
    for weights in ResNeXt50_32X4D_Weights:
        assert names == weights.meta["categories"]
    names.append("mine")  # a copy: the next caller still gets the 1000 names
    assert len(imagenet_labels()) == 1000


@pytest.mark.parametrize("name", [
    "resnext50_32x4d-1a0047aa.pth", "resnext50_32x4d-7cdf4587.pth", "model.pth", "a-b-c.tar.gz", "x-ABCDEF.pth",
    "x-.pth", "-0123.safetensors", "weights-12ab.v2-99.pt", "no_hash_here", "", "x-1a2b3c",
])
def test_hash_prefix_is_found_as_torch_hub_finds_it(name):
    import torch.hub

    match = torch.hub.HASH_REGEX.search(name)
    assert W.hash_prefix_of(name) == (match.group(1) if match else None)


@pytest.mark.parametrize("env", [
    {},
    {"TORCH_HOME": "{tmp}/th"},
    {"XDG_CACHE_HOME": "{tmp}/xdg"},
    {"TORCH_HOME": "{tmp}/th", "XDG_CACHE_HOME": "{tmp}/xdg"},
    {"TORCH_HOME": "~/torch-here"},
    {"XDG_CACHE_HOME": "~/cache-here"},
    {"TORCH_HOME": ""},
])
def test_hub_checkpoint_dir_is_torch_hub_s(env, tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("TORCH_HOME", "XDG_CACHE_HOME", "TORCH_HUB"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value.format(tmp=tmp_path))
    assert W.hub_checkpoint_dir() == Path(torch.hub.get_dir()) / "checkpoints"


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


@pytest.fixture
def payload_is_v2(monkeypatch):
    """Make the generated payload stand in for the official V2 file: its hash prefix, size and no SHA-512."""
    import dataclasses

    fake = dataclasses.replace(W.VARIANTS["v2"], hash_prefix=HASH8, size_bytes=len(PAYLOAD), sha512=None)
    monkeypatch.setitem(W.VARIANTS, "v2", fake)
    return fake


def test_fetch_from_mirror_lands_in_hub_cache_under_official_name(payload_is_v2):
    with WeightsServer({"plain-mirror-name.pth": PAYLOAD}) as srv:
        path = W.fetch(payload_is_v2, url=f"{srv.base}/plain-mirror-name.pth")
    assert path == W.hub_checkpoint_dir() / "resnext50_32x4d-1a0047aa.pth"
    assert path.read_bytes() == PAYLOAD
    assert W.find_weights().path == path


def test_mirror_name_does_not_choose_the_hash(tmp_path):
    """A mirror URL whose name carries the payload's own hash must not make unofficial bytes pass."""
    name = f"resnext50_32x4d-{HASH8}.pth"
    with WeightsServer({name: PAYLOAD}) as srv:
        with pytest.raises(DownloadError, match="names another file"):
            W.fetch(W.VARIANTS["v2"], url=f"{srv.base}/{name}")
    with WeightsServer({"mirror.pth": PAYLOAD}) as srv:
        with pytest.raises(DownloadError, match="checksum|bytes"):  # checked against V2's own hash and size
            W.fetch(W.VARIANTS["v2"], url=f"{srv.base}/mirror.pth")
    assert _leftovers(W.hub_checkpoint_dir()) == []


def test_mirror_naming_the_other_variant_is_refused(monkeypatch):
    v1_url = "http://127.0.0.1:9/models/" + W.VARIANTS["v1"].filename
    with pytest.raises(DownloadError, match="names the v1 weights.*--variant v1"):
        W.fetch(W.VARIANTS["v2"], url=v1_url)
    monkeypatch.setenv(W.ENV_MIRROR, v1_url)
    with pytest.raises(DownloadError, match=f"names the v1 weights.*{W.ENV_MIRROR}"):
        W.fetch(W.VARIANTS["v2"])


def test_variant_checks_length_and_full_digest(monkeypatch, tmp_path):
    import dataclasses

    v1 = dataclasses.replace(W.VARIANTS["v1"], hash_prefix=HASH8, size_bytes=len(PAYLOAD), size_slack=0)
    assert v1.sha512 and len(v1.sha512) == 128  # pinned from a public source, see weights.py
    with WeightsServer({"w.pth": PAYLOAD, "longer.pth": PAYLOAD + b"x" * 10}) as srv:
        with pytest.raises(DownloadError, match="SHA-512"):
            W.fetch(v1, url=f"{srv.base}/w.pth")
        ok = dataclasses.replace(v1, sha512=hashlib.sha512(PAYLOAD).hexdigest())
        assert W.fetch(ok, url=f"{srv.base}/w.pth").read_bytes() == PAYLOAD
        with pytest.raises(DownloadError, match="more than"):  # announced too long: refused before reading
            W.fetch(ok, url=f"{srv.base}/longer.pth")
        with pytest.raises(DownloadError, match="more than"):  # endless body: reading stops at the size
            W.download(f"{srv.base}/forever/w.pth", tmp_path / "w.pth", HASH8, size=len(PAYLOAD))
        with pytest.raises(DownloadError, match="about"):
            W.download(f"{srv.base}/nolength/w.pth", tmp_path / "w.pth", HASH8, size=len(PAYLOAD) + 4096)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("path,words", [
    ("/chunked-drop/w.pth", "cut off"),
    ("/reset/w.pth", "connection|cut off"),
    ("/nothing.pth", "404"),
    ("/stall/w.pth", "sent nothing for"),
])
def test_every_network_failure_is_a_download_error(tmp_path, monkeypatch, path, words):
    with WeightsServer({"w.pth": PAYLOAD}) as srv:
        with pytest.raises(DownloadError, match=words):
            W.download(f"{srv.base}{path}", tmp_path / "w.pth", HASH8, timeout=0.5)
    assert _leftovers(tmp_path) == []


def test_refused_connection_and_unwritable_folder(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="failed"):
        W.download(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth", HASH8)
    blocker = tmp_path / "a file"
    blocker.write_bytes(b"")
    with WeightsServer({"w.pth": PAYLOAD}) as srv:
        with pytest.raises(DownloadError, match="cannot save"):
            W.download(f"{srv.base}/w.pth", blocker / "sub" / "w.pth", HASH8)
    assert _leftovers(tmp_path) == ["a file"]


def test_cancel_takes_effect_on_a_stalled_server(tmp_path):
    """A cancel is seen while the server holds the connection silent: with a read timeout longer than the
    server's stall, a download that only noticed the cancel after its read would return after the stall."""
    stop = threading.Event()

    def cancel_once_stalled():
        if srv.stalled.wait(30):
            stop.set()

    with WeightsServer({"w.pth": PAYLOAD}) as srv:
        threading.Thread(target=cancel_once_stalled, daemon=True).start()
        with pytest.raises(W.DownloadCancelled):
            W.download(f"{srv.base}/stall/w.pth", tmp_path / "w.pth", HASH8, cancelled=stop.is_set, timeout=600)
        assert stop.is_set() and not srv.stall_over.is_set()  # ended by the cancel, the server still stalling
    assert _leftovers(tmp_path) == []


# ---- offline, and where the lookup looked ----
@pytest.mark.parametrize("how", ["no name server", "network unreachable"])
def test_an_offline_download_says_there_is_no_connection(tmp_path, monkeypatch, how):
    import errno

    from resnext_gui.core.errors import NoConnectionError

    if how == "no name server":  # what getaddrinfo answers with no network at all
        def lookup(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", lookup)
        url = "https://download.pytorch.org/models/w.pth"
    else:
        def connect(self, address):
            raise OSError(errno.ENETUNREACH, "Network is unreachable")

        monkeypatch.setattr(socket.socket, "connect", connect)
        url = "http://192.0.2.1/w.pth"
    with pytest.raises(NoConnectionError) as info:
        W.download(url, tmp_path / "w.pth", HASH8)
    assert "no connection to the internet" in str(info.value) and str(info.value).endswith("nothing was saved")
    assert _leftovers(tmp_path) == []


def test_a_refused_connection_is_not_called_offline(tmp_path):
    from resnext_gui.core.errors import NoConnectionError

    with socket.socket() as s:  # a port nobody listens on: the network is there, the server is not
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        W.download(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth", HASH8)
    assert not isinstance(info.value, NoConnectionError) and "no connection" not in str(info.value)


def test_looked_in_names_each_place_once_with_the_files_looked_for(monkeypatch):
    """In the frozen app the data folder and this package's own folder are the same: it is named once."""
    import sys

    from resnext_gui.core import resources
    from tests.support.helpers import REPO

    monkeypatch.setattr(sys, "_MEIPASS", str(REPO), raising=False)  # the data folder is where the package is
    assert resources.assets_dirs() == [REPO / "assets"]
    with pytest.raises(NoWeightsError) as info:
        W.find_weights()
    looked = str(info.value).split("Looked in:\n")[1].splitlines()
    places = [line.split(": ", 1)[0] for line in looked]
    assert places == [f"  - ${W.ENV_WEIGHTS}", f"  - {REPO / 'assets' / 'weights'}", f"  - {W.hub_checkpoint_dir()}"]
    for line in looked[1:]:
        assert W.VARIANTS["v2"].filename in line and W.VARIANTS["v1"].filename in line
    assert ".safetensors" in looked[1]  # the bundled folder takes any checkpoint
