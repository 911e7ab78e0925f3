"""XMP keywords: read back by exiftool, merged into darktable's sidecars without losing anything, hostile files refused."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from resnext_gui.core import xmp
from resnext_gui.core.errors import XmpError
from resnext_gui.core.labels import imagenet_labels
from tests.support.helpers import REPO

DARKTABLE = Path(__file__).parents[2] / "data" / "darktable.jpg.xmp"
TOP = [{"rank": 1, "index": 967, "label": "espresso", "prob": 0.61}, {"rank": 2, "index": 968, "label": "cup", "prob": 0.25},
       {"rank": 3, "index": 504, "label": "coffee mug", "prob": 0.08}]


def exiftool(*args) -> list[dict]:
    """exiftool's JSON for ``args``: an independent reader of what was written."""
    tool = shutil.which("exiftool")
    if tool is None:
        if os.environ.get("CI"):  # .ci/run installs it: there a missing one is a failure
            pytest.fail("exiftool is missing in CI (Debian package libimage-exiftool-perl, installed by .ci/run)")
        pytest.skip("exiftool is missing: apt-get install libimage-exiftool-perl (.ci/run installs it)")
    r = subprocess.run([tool, "-j", "-charset", "filename=utf8", *map(os.fsencode, args)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def keywords_read_back(path) -> tuple[list[str], list[str]]:
    (info,) = exiftool("-XMP:Subject", "-XMP:HierarchicalSubject", path)

    def as_list(v):
        return [] if v is None else [str(x) for x in v] if isinstance(v, list) else [str(v)]

    return as_list(info.get("Subject")), as_list(info.get("HierarchicalSubject"))


def jpeg(path: Path) -> Path:
    Image.new("RGB", (64, 48), (120, 80, 40)).save(path, format="JPEG", quality=90)
    return path


def test_keywords_for_top1_always_others_above_threshold():
    assert xmp.keywords_for(TOP) == ["espresso", "cup"]
    assert xmp.keywords_for(TOP, min_prob=0.05) == ["espresso", "cup", "coffee mug"]
    low = [{"rank": 1, "label": "tabby", "prob": 0.05}, {"rank": 2, "label": "tiger cat", "prob": 0.04}]
    assert xmp.keywords_for(low) == ["tabby"]  # the top-1 however unsure
    odd = [{"rank": 2, "label": "b|c", "prob": 0.3}, {"rank": 1, "label": " a\n\tb ", "prob": 0.5},
           {"rank": 3, "label": "a b", "prob": 0.2}]
    assert xmp.keywords_for(odd) == ["a b", "b/c"]  # one line, no separator, no duplicate, rank order


def test_parent_per_model():
    assert xmp.parent_for(imagenet_labels(), "/x/resnext50_32x4d-1a0047aa.pth") == "ResNeXt"
    assert xmp.parent_for(["robin", "wren"], "/models/birds.safetensors") == "ResNeXt|birds"
    assert xmp.parent_for(["robin"], "/cache/taught-20261201-101500-123456.safetensors") == "ResNeXt|taught"
    assert xmp.parent_for(["robin"], "/m/a|b.pth") == "ResNeXt|a/b"


def test_new_sidecar_read_back_by_exiftool_odd_name(tmp_path):
    photo = jpeg(tmp_path / "café 写真 'quoted' $(x);.jpg")
    before = photo.read_bytes()
    side = xmp.write_keywords(photo, xmp.keywords_for(TOP))
    assert side == tmp_path / "café 写真 'quoted' $(x);.jpg.xmp" and side.is_file()
    assert keywords_read_back(side) == (["espresso", "cup"], ["ResNeXt|espresso", "ResNeXt|cup"])
    assert photo.read_bytes() == before  # the photo itself is untouched by default
    assert "rdf:Bag" in side.read_text(encoding="utf-8")  # dc:subject is an unordered array, as the spec has it


def test_darktable_sidecar_keeps_everything_after_two_writes(tmp_path):
    photo = jpeg(tmp_path / "holiday.jpg")
    side = shutil.copy(DARKTABLE, tmp_path / "holiday.jpg.xmp")
    everything = ["-struct", "-XMP:all"]
    (before,) = exiftool(*everything, side)
    xmp.write_keywords(photo, ["espresso", "cup"])
    xmp.write_keywords(photo, ["espresso", "coffee mug"])  # cup no longer applies
    (after,) = exiftool(*everything, side)
    subjects, hierarchy = keywords_read_back(side)
    assert subjects == ["beach", "family", "espresso", "coffee mug"]
    assert hierarchy == ["places|beach", "people|family", "ResNeXt|espresso", "ResNeXt|coffee mug"]
    ignore = {"Subject", "HierarchicalSubject", "SourceFile"}
    assert {k: v for k, v in after.items() if k not in ignore} == {k: v for k, v in before.items() if k not in ignore}
    assert after["Rating"] == 4
    text = side.read_text(encoding="utf-8")
    assert [op for op in ("colorin", "exposure", "filmicrgb") if f'darktable:operation="{op}"' in text] == [
        "colorin", "exposure", "filmicrgb"]  # the whole history stack, in order
    assert 'darktable:multi_name="sunset"' in text and 'darktable:history_end="3"' in text


def test_rerun_changes_nothing_and_models_keep_their_own(tmp_path):
    photo = jpeg(tmp_path / "a.jpg")
    side = xmp.write_keywords(photo, ["espresso"])
    first = side.read_bytes()
    mtime = side.stat().st_mtime_ns
    xmp.write_keywords(photo, ["espresso"])
    assert side.read_bytes() == first and side.stat().st_mtime_ns == mtime  # not even rewritten
    xmp.write_keywords(photo, ["robin"], parent="ResNeXt|birds")
    xmp.write_keywords(photo, ["wren"], parent="ResNeXt|birds")
    assert keywords_read_back(side) == (["espresso", "wren"], ["ResNeXt|espresso", "ResNeXt|birds|wren"])
    xmp.write_keywords(photo, [], parent="ResNeXt|birds")  # nothing left for that model: only its keywords go
    assert xmp.read_keywords(side) == (["espresso"], ["ResNeXt|espresso"])


def test_someone_elses_keyword_of_the_same_name_stays(tmp_path):
    photo = jpeg(tmp_path / "a.jpg")
    xmp.write_keywords(photo, ["cup"], parent="digiKam|Objects")  # as another program's tag tree
    xmp.write_keywords(photo, ["cup"])
    xmp.write_keywords(photo, ["espresso"])
    assert xmp.read_keywords(xmp.sidecar_path(photo)) == (["cup", "espresso"], ["digiKam|Objects|cup", "ResNeXt|espresso"])


def test_into_file_is_opt_in_and_keeps_the_pixels(tmp_path):
    photo = jpeg(tmp_path / "a.jpg")
    pixels = Image.open(photo).tobytes()
    xmp.write_keywords(photo, ["espresso"], into_file=True)
    assert keywords_read_back(photo) == (["espresso"], ["ResNeXt|espresso"])
    assert keywords_read_back(xmp.sidecar_path(photo)) == (["espresso"], ["ResNeXt|espresso"])
    with Image.open(photo) as im:
        assert im.tobytes() == pixels
    gif = tmp_path / "b.gif"
    Image.new("P", (8, 8)).save(gif)
    before = gif.read_bytes()
    with pytest.raises(XmpError, match="b.gif"):
        xmp.write_keywords(gif, ["espresso"], into_file=True)
    assert gif.read_bytes() == before


def _hostile(kind, photo: Path, tmp_path: Path) -> Path:
    side = xmp.sidecar_path(photo)
    if kind == "garbage":
        side.write_bytes(b"\x00\x01 not xmp at all " * 40)
    elif kind == "jpeg renamed":
        jpeg(tmp_path / "other.jpg").rename(side)
    elif kind == "symlink":
        target = shutil.copy(DARKTABLE, tmp_path / "target.xmp")
        os.symlink(target, side)
    elif kind == "dangling symlink":
        os.symlink(tmp_path / "nowhere.xmp", side)
    elif kind == "fifo":
        os.mkfifo(side)
    elif kind == "folder":
        side.mkdir()
        (side / "inside").write_text("kept")
    elif kind == "broken xml":
        side.write_bytes(DARKTABLE.read_bytes()[:1500])
    elif kind == "entity expansion":  # "billion laughs": a few hundred bytes that would expand to gigabytes
        entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
        side.write_text('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                        f'<!DOCTYPE x [<!ENTITY e0 "lol">{entities}]>\n'
                        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" dc:title="&e9;"/>'
                        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>', encoding="utf-8")
    elif kind == "many keywords":  # 1.2 million dc:subject entries, 31 MB: under the size bound
        side.write_bytes(sidecar_with(keywords=1_200_000))
    return side


@pytest.mark.parametrize("kind", ["garbage", "jpeg renamed", "symlink", "dangling symlink", "fifo", "folder",
                                  "broken xml", "entity expansion", "many keywords"])
def test_hostile_sidecar_refused_photo_and_sidecar_untouched(tmp_path, kind):
    photo = jpeg(tmp_path / "p.jpg")
    side = _hostile(kind, photo, tmp_path)
    photo_bytes = photo.read_bytes()
    kept = None if kind in ("fifo", "dangling symlink", "folder") else side.read_bytes()
    target = tmp_path / "target.xmp"
    target_bytes = target.read_bytes() if target.exists() else None
    with pytest.raises(XmpError) as err:
        xmp.write_keywords(photo, ["espresso"])
    message = str(err.value)
    assert message.startswith(f"{photo}: keywords not written: ") and "p.jpg.xmp" in message
    assert photo.read_bytes() == photo_bytes
    assert os.path.lexists(side)
    if kept is not None:
        assert side.read_bytes() == kept
    if kind.endswith("symlink"):
        assert side.is_symlink() and "symbolic link" in message
        if target_bytes is not None:
            assert target.read_bytes() == target_bytes
    if kind == "folder":
        assert "is a folder, not a regular file" in message and (side / "inside").read_text() == "kept"
    if kind == "many keywords":
        assert "too many entries" in message
    assert "\n" not in message
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".partial")]


READ_ONLY = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from resnext_gui.core import xmp
from resnext_gui.core.errors import XmpError
xmp._pyexiv2()  # everything imported first: the user below may not read the installation
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)  # root writes anywhere: as nobody, a folder of mode 0555 is read-only
try:
    xmp.write_keywords(sys.argv[2], ["espresso"])
except XmpError as exc:
    print(exc)
    sys.exit(3)
"""


def test_read_only_folder():
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="resnext-xmp-ro-"))  # outside pytest's private folder: nobody may enter it
    try:
        base.chmod(0o755)
        photo = jpeg(base / "p.jpg")
        side = shutil.copy(DARKTABLE, base / "p.jpg.xmp")
        os.chmod(side, 0o644)
        os.chmod(photo, 0o644)
        before = side.read_bytes()
        base.chmod(0o555)
        r = subprocess.run([sys.executable, "-c", READ_ONLY, str(REPO), str(photo)], capture_output=True, text=True,
                           timeout=60, cwd="/")
        assert r.returncode == 3, r.stderr
        assert "not writable" in r.stdout and str(photo) in r.stdout
        assert side.read_bytes() == before and sorted(os.listdir(base)) == ["p.jpg", "p.jpg.xmp"]
    finally:
        base.chmod(0o755)
        shutil.rmtree(base)


FULL_DISK = r"""
import resource, signal, sys
sys.path.insert(0, sys.argv[1])
from resnext_gui.core import xmp
from resnext_gui.core.errors import XmpError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) as on a full disk (ENOSPC)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    xmp.write_keywords(sys.argv[2], ["espresso"])
except XmpError as exc:
    print(exc)
    sys.exit(3)
"""


def test_write_failing_half_way_leaves_the_sidecar_and_no_temporary(tmp_path):
    photo = jpeg(tmp_path / "p.jpg")
    side = shutil.copy(DARKTABLE, tmp_path / "p.jpg.xmp")  # about 4 kB: its new version can't be written whole
    before = side.read_bytes()
    r = subprocess.run([sys.executable, "-c", FULL_DISK, str(REPO), str(photo)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3, r.stderr
    assert "could not be written" in r.stdout and "p.jpg" in r.stdout
    assert side.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["p.jpg", "p.jpg.xmp"]


def test_missing_photo_and_empty_sidecar(tmp_path):
    with pytest.raises(XmpError, match="cannot be found"):
        xmp.write_keywords(tmp_path / "gone.jpg", ["espresso"])
    assert not (tmp_path / "gone.jpg.xmp").exists()
    photo = jpeg(tmp_path / "p.jpg")
    xmp.sidecar_path(photo).write_bytes(b"")  # an empty file holds nothing to keep
    xmp.write_keywords(photo, ["espresso"])
    assert xmp.read_keywords(xmp.sidecar_path(photo)) == (["espresso"], ["ResNeXt|espresso"])


def test_undecodable_file_name(tmp_path):
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8
    photo = tmp_path / name
    jpeg(photo)
    side = xmp.write_keywords(photo, ["espresso"])
    assert os.fsencode(side.name) == b"caf\xe9.jpg.xmp"
    assert xmp.read_keywords(side) == (["espresso"], ["ResNeXt|espresso"])


def sidecar_with(history: int = 0, keywords: int = 0) -> bytes:
    """A darktable-like sidecar: ``history`` steps in its history stack (a struct of nine fields each, as darktable
    writes them) and ``keywords`` dc:subject entries."""
    steps = "".join(f'<rdf:li darktable:num="{i}" darktable:operation="exposure" darktable:enabled="1" '
                    f'darktable:modversion="6" darktable:params="0000803f{i:08x}" darktable:multi_name="" '
                    f'darktable:multi_priority="0" darktable:blendop_version="11" '
                    f'darktable:blendop_params="gz11eJxjYGBgEGAAgRNODGiAEV0AJ2CEKBwA"/>' for i in range(history))
    words = "".join(f"<rdf:li>k{i}</rdf:li>" for i in range(keywords))
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:darktable="http://darktable.sf.net/" '
            f'darktable:history_end="{history}"><dc:subject><rdf:Bag>{words}</rdf:Bag></dc:subject>'
            f'<darktable:history><rdf:Seq>{steps}</rdf:Seq></darktable:history></rdf:Description></rdf:RDF>'
            '</x:xmpmeta><?xpacket end="w"?>').encode()


LONG_HISTORY = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from resnext_gui.core import xmp
print(xmp.write_keywords(sys.argv[2], ["espresso", "cup"]))
"""


def test_a_long_history_and_many_keywords_are_merged_in_time_linear_in_the_sidecar(tmp_path):
    """3,000 history steps and 1,000 keywords (0.9 MB): exiv2's writer for a lone XMP file and pyexiv2's item by
    item arrays took minutes on such a sidecar (quadratic); merged linearly it takes seconds. Run as a process
    killed at a generous limit, a guard against a hang, not a timing."""
    photo = jpeg(tmp_path / "p.jpg")
    side = xmp.sidecar_path(photo)
    side.write_bytes(sidecar_with(history=3000, keywords=1000))
    before = xmp.read_keywords(side)
    r = subprocess.run([sys.executable, "-c", LONG_HISTORY, str(REPO), str(photo)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    subjects, hierarchy = xmp.read_keywords(side)
    assert subjects == before[0] + ["espresso", "cup"] and hierarchy == ["ResNeXt|espresso", "ResNeXt|cup"]
    import pyexiv2

    img = pyexiv2.ImageData(side.read_bytes())
    try:
        detail = img.read_xmp_detail()
    finally:
        img.close()
    assert detail["Xmp.dc.subject"]["typeName"] == detail["Xmp.lr.hierarchicalSubject"]["typeName"] == "XmpBag"
    assert detail["Xmp.darktable.history[3000]/darktable:params"]["value"] == f"0000803f{2999:08x}"
    assert sum(k.startswith("Xmp.darktable.history[") for k in detail) == 3000 * 10  # every step, every field


def test_into_a_photo_that_cannot_hold_xmp_writes_no_sidecar_either(tmp_path):
    gif = tmp_path / "b.gif"
    Image.new("P", (8, 8)).save(gif)
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    anim = tmp_path / "anim.gif"
    frames[0].save(anim, save_all=True, append_images=frames[1:], duration=50, loop=0)
    for photo in (gif, anim):
        before = photo.read_bytes()
        with pytest.raises(XmpError, match=photo.name):
            xmp.write_keywords(photo, ["espresso"], into_file=True)
        assert photo.read_bytes() == before and not xmp.sidecar_path(photo).exists()  # one or the other: neither
    assert sorted(os.listdir(tmp_path)) == ["anim.gif", "b.gif"]


def test_exiv2s_messages_are_one_line(tmp_path):
    """A JPEG whose Exif block lists bad entries: exiv2 says so in one line per entry, each ending in a newline."""
    import io
    import struct

    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG")
    data = buf.getvalue()
    bad_ifd = b"MM\x00*\x00\x00\x00\x08\x00\x05" + b"\x01\x00\x00\x03\xff\xff\xff\xff\x00\x00\x00\x00" * 5
    body = b"Exif\x00\x00" + bad_ifd
    photo = tmp_path / "odd exif.jpg"
    photo.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:])
    before = photo.read_bytes()
    with pytest.raises(XmpError) as err:
        xmp.write_keywords(photo, ["espresso"], into_file=True)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{photo}: keywords not written: ")
    assert "its metadata can't be read" in message and "Directory" in message
    assert photo.read_bytes() == before and not xmp.sidecar_path(photo).exists()


PROTECTED = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from resnext_gui.core import xmp
from resnext_gui.core.errors import XmpError
xmp._pyexiv2()  # everything imported first: the user below may not read the installation
os.setgroups([])
os.setgid(65534)
os.setuid(65534)  # nobody, who may write the folder but not these files
out = {}
for name, into in (("a.jpg", False), ("b.jpg", False), ("c.jpg", True), ("d.jpg", True)):
    try:
        xmp.write_keywords(os.path.join(sys.argv[2], name), ["espresso"], into_file=into)
        out[name] = "written"
    except XmpError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root, to make files owned by another user and to act as nobody")
def test_files_the_user_may_not_write_are_left_as_they_are():
    """As nobody, in a folder nobody may write: a's sidecar is 0444 (nobody's own), b's belongs to root though
    anyone may write it (0666); c (0444, nobody's) and d (root's, 0644) are photos to be rewritten with keywords
    inside. Renaming a new file over them would work, bypassing their protection or changing their owner: each is
    refused by name, and nothing is written."""
    import hashlib
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="resnext-xmp-protected-"))  # outside pytest's folder: nobody may enter
    try:
        for name in "abcd":
            jpeg(base / f"{name}.jpg")
        shutil.copy(DARKTABLE, base / "a.jpg.xmp")
        shutil.copy(DARKTABLE, base / "b.jpg.xmp")
        for path in base.iterdir():
            os.chown(path, 65534, 65534)
            path.chmod(0o644)
        os.chown(base / "b.jpg.xmp", 0, 0)
        os.chown(base / "d.jpg", 0, 0)
        (base / "a.jpg.xmp").chmod(0o444)
        (base / "b.jpg.xmp").chmod(0o666)
        (base / "c.jpg").chmod(0o444)
        os.chown(base, 65534, 65534)
        base.chmod(0o755)
        before = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_uid, p.stat().st_mode)
                  for p in base.iterdir()}
        r = subprocess.run([sys.executable, "-c", PROTECTED, str(REPO), str(base)], capture_output=True, text=True,
                           timeout=60, cwd="/")
        assert r.returncode == 0, r.stderr
        said = json.loads(r.stdout)
        assert "the sidecar a.jpg.xmp is left as it is: you may not write it" in said["a.jpg"]
        assert "the sidecar b.jpg.xmp is left as it is: it belongs to another user (root)" in said["b.jpg"]
        assert "the photo c.jpg is left as it is: you may not write it" in said["c.jpg"]
        assert "the photo d.jpg is left as it is: you may not write it" in said["d.jpg"]
        after = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_uid, p.stat().st_mode)
                 for p in base.iterdir()}
        assert after == before  # not a byte, not an owner, no sidecar for c or d
    finally:
        shutil.rmtree(base)


def test_the_owner_and_group_of_a_replaced_sidecar_are_kept(tmp_path):
    """The superuser rewriting a user's sidecar gives the new file that user's owner and group, as before."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root, to give files to another user")
    photo = jpeg(tmp_path / "p.jpg")
    side = shutil.copy(DARKTABLE, tmp_path / "p.jpg.xmp")
    os.chown(side, 65534, 65534)
    os.chmod(side, 0o640)
    xmp.write_keywords(photo, ["espresso"])
    st = os.stat(side)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o640)
    assert xmp.read_keywords(side)[0] == ["beach", "family", "espresso"]
