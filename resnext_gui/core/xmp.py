"""Keywords for photo managers: the answer's classes written as XMP (dc:subject and lr:hierarchicalSubject).

Written to the sidecar ``NAME.EXT.xmp`` beside the photo (darktable's and digiKam's naming; Lightroom, Shotwell
and file browsers read it too), and into the photo itself only when asked (``into_file``). An existing sidecar
is merged, never replaced: the XMP is parsed and written back by exiv2 (through pyexiv2, which bundles it), so
darktable's history stack, ratings, labels and everyone else's keywords stay; only this app's own keywords
change. This app's keywords are the hierarchical subjects directly under its parent (``ResNeXt|espresso``;
a taught model's classes under ``ResNeXt|<model name>|robin``), so re-running replaces them instead of adding
duplicates, and a class that no longer applies goes, while keywords the user or other programs set stay.

pyexiv2 is given the sidecar's bytes, not its name: exiv2 reads an XMP packet in memory as an image of type
"XMP sidecar" (application/rdf+xml), so the file is opened here — a regular file only, never through a link —
and the result goes to a temporary file renamed over the sidecar in the same folder.

The merge costs time linear in the sidecar's size. exiv2's own writer for a lone XMP file copies every entry
into a new list one lookup at a time (quadratic: a darktable history of 1,000 steps took half a minute), and
pyexiv2 sets an unordered array (rdf:Bag) one item at a time, each a search of every entry (quadratic in the
keywords). So the packet is written by exiv2 as the XMP of an in-memory 1x1 PNG, with the two arrays each set
in one step, which pyexiv2 can only make ordered (rdf:Seq); their two tags are then renamed rdf:Bag, as the XMP
specification has them, and the result is read back by exiv2 and compared with what was meant, entry by entry,
before anything is written. A sidecar of more than MAX_SIDECAR_ENTRIES elements and attributes (counted
before exiv2 sees it) is refused.

Nothing is written unless everything can be: the sidecar and, with ``into_file``, the photo are both read and
merged first, so a photo that can't hold XMP (GIF, BMP) leaves no sidecar either. A file the user may not write
(read-only, or another user's) is left as it is (``files.replace_problem``). Any failure raises XmpError with a
message for that photo, on one line, and leaves the photo and the sidecar as they were.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import XmpError
from .files import OwnerNotKept, atomic_file, file_kind, replace_problem
from .records import valid_text

DEFAULT_MIN_PROB = 0.2
DEFAULT_PARENT = "ResNeXt"
MAX_SIDECAR_BYTES = 32 * 2**20  # darktable's sidecars with a long history are a few hundred kB
# XML elements and attributes in a sidecar or in a photo's XMP (each '<' and '=' counts, an upper bound): a
# darktable history step is about 12, so this is some 8,000 steps; exiv2 reads such a packet in a few seconds
MAX_SIDECAR_ENTRIES = 100_000
MAX_PHOTO_BYTES = 512 * 2**20  # a photo rewritten with keywords inside (into_file) is held in memory
SIDECAR_MIME = "application/rdf+xml"
_ATTEMPTS = 3  # a sidecar another program changed while it was merged is merged again, this often
# The packet a new sidecar starts from (what exiv2 itself writes for an empty one); exiv2 fills it in.
_EMPTY_PACKET = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                 b'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">\n'
                 b' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
                 b'  <rdf:Description rdf:about=""/>\n'
                 b' </rdf:RDF>\n'
                 b'</x:xmpmeta>\n'
                 b'<?xpacket end="w"?>\n')
_SUBJECT, _HIERARCHY = "Xmp.dc.subject", "Xmp.lr.hierarchicalSubject"
_TAUGHT_NAME = re.compile(r"^taught-\d{8}-\d{6}(-\d+)?$")  # the window's own file names for taught models


class _Changed(Exception):
    """The file changed between being read and being replaced."""


def _pyexiv2() -> Any:
    try:
        import pyexiv2
    except Exception as exc:  # ImportError, or its bundled libexiv2 failing to load
        raise XmpError(f"keywords cannot be written: the XMP library (pyexiv2) is not available ({_one_line(exc)})") from None
    pyexiv2.set_log_level(3)  # errors only, and those are raised: its warnings would go to standard output
    return pyexiv2


def clean_keyword(label: str) -> str:
    """A class name as a keyword: valid Unicode, one line, no ``|`` (the hierarchy's separator; it becomes ``/``)."""
    text = valid_text(str(label)).replace("|", "/")
    text = "".join(" " if ch.isspace() or (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0) else ch for ch in text)
    return " ".join(text.split())


def keywords_for(top: Sequence[dict[str, Any]], min_prob: float = DEFAULT_MIN_PROB) -> list[str]:
    """The keywords of an answer: the top-1 class always, others whose probability is at least ``min_prob``."""
    ranked = sorted(top, key=lambda t: int(t.get("rank", 0)))
    out: list[str] = []
    for i, t in enumerate(ranked):
        prob = t.get("prob")
        if i and (prob is None or not float(prob) >= min_prob):
            continue
        word = clean_keyword(str(t.get("label", "")))
        if word and word not in out:
            out.append(word)
    return out


def sidecar_path(photo: str | os.PathLike[str]) -> Path:
    """``photo.jpg`` -> ``photo.jpg.xmp`` (the full name plus .xmp: darktable's and digiKam's default)."""
    p = Path(photo)
    return p.with_name(p.name + ".xmp")


def parent_for(labels: Sequence[str], model_path: str | os.PathLike[str] | None = None) -> str:
    """The hierarchical parent of a model's keywords.

    ``ResNeXt`` for the ImageNet classes (the official weights, or a fine-tune with the same 1000 classes); a
    model with classes of its own (File -> Teach New Classes..., ``train``) gets ``ResNeXt|<its file name>``
    (``ResNeXt|birds`` for birds.safetensors; ``ResNeXt|taught`` for a model taught in the window and not saved
    under a name of its own), so each model's keywords can be found and removed together."""
    from .labels import imagenet_labels

    if list(labels) == imagenet_labels() or model_path is None:
        return DEFAULT_PARENT
    stem = Path(model_path).name
    for suffix in (".safetensors", ".pth", ".pt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    name = "taught" if _TAUGHT_NAME.match(stem) else clean_keyword(stem)
    return f"{DEFAULT_PARENT}|{name or 'taught'}"


def _parent_of(subject: str) -> str | None:
    return subject.rsplit("|", 1)[0] if "|" in subject else None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value)
    return [] if text.startswith("type=") else [text]  # an empty array reads as its type; a lone text is one item


def merged_keywords(subjects: list[str], hierarchy: list[str], keywords: Sequence[str],
                    parent: str) -> tuple[list[str], list[str]]:
    """(dc:subject, lr:hierarchicalSubject) with this app's keywords under ``parent`` set to ``keywords``.

    Ours are the hierarchical subjects directly under ``parent``. A flat keyword goes with ours only when it was
    one of ours before, is not wanted now, and no other hierarchical subject (someone else's) ends in it; every
    other entry stays, in its order, and nothing is added twice."""
    wanted = [k for k in dict.fromkeys(clean_keyword(k) for k in keywords) if k]
    ours_before = {h.rsplit("|", 1)[1] for h in hierarchy if _parent_of(h) == parent}
    others = [h for h in hierarchy if _parent_of(h) != parent]
    others_leaves = {h.rsplit("|", 1)[-1] for h in others}
    new_hierarchy = list(dict.fromkeys(others + [f"{parent}|{k}" for k in wanted]))
    kept = [s for s in subjects if not (s in ours_before and s not in wanted and s not in others_leaves)]
    new_subjects = list(dict.fromkeys(kept + wanted))
    return new_subjects, new_hierarchy


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """A message (exiv2's may end in a newline, or hold a line per problem it found) as one line, not too long."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count_entries(data: bytes) -> int:
    """An upper bound on the XML elements and attributes in ``data``, without parsing it: each '<' and '='."""
    return data.count(b"<") + data.count(b"=")


def _check_entries(data: bytes, what: str) -> None:
    entries = _count_entries(data)
    if entries > MAX_SIDECAR_ENTRIES:
        raise XmpError(f"{what} holds too many entries (about {entries:,} XML elements and attributes; at most "
                       f"{MAX_SIDECAR_ENTRIES:,} are merged): left as it is")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _carrier(packet: bytes) -> bytes:
    """A 1x1 grey PNG whose only metadata is ``packet``, where PNGs keep XMP (an iTXt chunk "XML:com.adobe.xmp"):
    exiv2 writes a PNG's XMP by encoding it afresh, in time linear in its entries."""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00\x00")) + _png_chunk(b"IEND", b""))


def _as_bag(packet: str, tag: str) -> str:
    """``packet`` (exiv2's serialisation) with the array of property ``tag`` made an rdf:Bag: its opening and closing
    rdf:Seq tags renamed, found by position (the items' text is escaped, so no tag can hide inside it)."""
    start = packet.find(f"<{tag}>")
    if start < 0:
        return packet
    inner = start + len(tag) + 2
    opening = packet.find("<rdf:Seq>", inner)
    closing = packet.find("</rdf:Seq>", opening)
    end = packet.find(f"</{tag}>", closing)
    if min(opening, closing, end) < 0 or packet[inner:opening].strip() or packet[closing + 10 : end].strip():
        raise XmpError(f"exiv2 wrote {tag} in an unexpected form")
    return (packet[:opening] + "<rdf:Bag>" + packet[opening + 9 : closing] + "</rdf:Bag>" + packet[closing + 10 :])


def _with_keywords(pyexiv2: Any, packet: bytes, subjects: list[str], hierarchy: list[str]) -> tuple[bytes, dict[str, Any]]:
    """``packet`` with dc:subject and lr:hierarchicalSubject set to these (unordered arrays; deleted when empty),
    and what exiv2 reads in the result."""
    img = pyexiv2.ImageData(_carrier(packet))
    try:
        img.modify_xmp({_SUBJECT: subjects or None, _HIERARCHY: hierarchy or None})  # a list: one step each
        text = img.read_raw_xmp()
    finally:
        img.close()
    for key, items in ((_SUBJECT, subjects), (_HIERARCHY, hierarchy)):
        if items:
            text = _as_bag(text, "dc:subject" if key == _SUBJECT else "lr:hierarchicalSubject")
    text = re.sub(r"\s+(<\?xpacket end=)", r"\n\1", text, count=1)  # the PNG writer's padding, not wanted here
    out = text.encode("utf-8")
    check = pyexiv2.ImageData(out)
    try:
        return out, check.read_xmp_detail()
    finally:
        check.close()


def _merged_packet(pyexiv2: Any, packet: bytes, keywords: Sequence[str], parent: str, name: str) -> bytes | None:
    """The XMP ``packet`` (a sidecar's bytes, or a photo's packet) with the keywords merged in; None when nothing
    would change. What exiv2 reads in the result is compared with what was meant: every other entry the same, the
    two arrays unordered and holding exactly the merged keywords."""
    _check_entries(packet, name)
    try:
        img = pyexiv2.ImageData(packet)
    except RuntimeError as exc:
        raise XmpError(f"{name} is not an XMP file ({_one_line(exc)})") from None
    try:
        mime = img.get_mime_type()
        if mime != SIDECAR_MIME:
            raise XmpError(f"{name} is not an XMP file (it holds {mime})")
        before = img.read_xmp_detail()
    except RuntimeError as exc:
        raise XmpError(f"{name} is not an XMP file ({_one_line(exc)})") from None
    finally:
        img.close()
    subjects, hierarchy = (_as_list(before.get(k, {}).get("value")) for k in (_SUBJECT, _HIERARCHY))
    new_subjects, new_hierarchy = merged_keywords(subjects, hierarchy, keywords, parent)
    if new_subjects == subjects and new_hierarchy == hierarchy:
        return None
    try:
        out, after = _with_keywords(pyexiv2, packet, new_subjects, new_hierarchy)
    except RuntimeError as exc:
        raise XmpError(f"{name}: the keywords could not be written into it ({_one_line(exc)})") from None
    expected = {k: v for k, v in before.items() if k not in (_SUBJECT, _HIERARCHY)}
    for key, items in ((_SUBJECT, new_subjects), (_HIERARCHY, new_hierarchy)):
        if items:
            expected[key] = {"value": items, "typeName": "XmpBag"}
    got = {k: {"value": v.get("value"), "typeName": v.get("typeName")} for k, v in after.items()}
    meant = {k: {"value": v.get("value"), "typeName": v.get("typeName")} for k, v in expected.items()}
    if got != meant:
        raise XmpError(f"{name}: exiv2 did not write back exactly what it read, so it is left as it is")
    return out


def _merge(data: bytes, keywords: Sequence[str], parent: str, sidecar: bool, name: str) -> bytes | None:
    """``data`` (a sidecar's or a photo's bytes) with the keywords merged in; None when nothing would change."""
    pyexiv2 = _pyexiv2()
    if sidecar:
        return _merged_packet(pyexiv2, data, keywords, parent, name)
    try:
        img = pyexiv2.ImageData(data)
    except RuntimeError as exc:
        if "unknown image type" in str(exc):
            raise XmpError(f"{name}: its format can't hold XMP keywords ({_one_line(exc)})") from None
        raise XmpError(f"{name}: its metadata can't be read, so nothing is written into it ({_one_line(exc)})") from None
    try:
        packet = img.read_raw_xmp().encode("utf-8") or _EMPTY_PACKET
        new = _merged_packet(pyexiv2, packet, keywords, parent, f"{name}'s XMP")
        if new is None:
            return None
        img.modify_raw_xmp(new.decode("utf-8"))
        out: bytes = img.get_bytes()
        return out
    except RuntimeError as exc:
        raise XmpError(f"{name}: the keywords could not be written into it ({_one_line(exc)})") from None
    except UnicodeError as exc:
        raise XmpError(f"{name}: its XMP is not valid text ({exc})") from None
    finally:
        img.close()


def _read(path: Path, limit: int, what: str) -> tuple[bytes, os.stat_result] | None:
    """The bytes of the regular file at ``path`` and its lstat, or None when there is none. Never follows a link
    at ``path``, never waits on a pipe, never reads a folder."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if os.path.islink(path):
            raise XmpError(f"{what} {path.name} is a symbolic link (to nothing); links are not followed") from None
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise XmpError(f"{what} {path.name} is a symbolic link; links are not followed") from None
        raise XmpError(f"{what} {path.name} cannot be read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a folder opens too (read-only); it is refused before it is read
            raise XmpError(f"{what} {path.name} is {file_kind(st.st_mode)}, not a regular file")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        if st.st_size > limit:
            raise XmpError(f"{what} {path.name} is too large ({st.st_size / 2**20:.0f} MB)")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise XmpError(f"{what} {path.name} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise XmpError(f"{what} {path.name} is too large")
    return data, st


def _same_file(path: Path, before: os.stat_result | None) -> bool:
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return before is None
    if before is None:
        return False
    return ((now.st_ino, now.st_dev, now.st_size, now.st_mtime_ns, now.st_ctime_ns)  # ctime: mtime can be set back
            == (before.st_ino, before.st_dev, before.st_size, before.st_mtime_ns, before.st_ctime_ns))


def _write(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


@dataclass
class _Change:
    """One file's new bytes, merged in memory, and what the file was when it was read."""

    path: Path
    what: str  # "the sidecar", "the photo"
    new: bytes
    before: os.stat_result | None  # None: there was no file


def _plan(path: Path, keywords: Sequence[str], parent: str, sidecar: bool, photo: Path) -> _Change | None:
    """Read and merge the file at ``path`` (nothing is written); None when it already has the keywords."""
    what = "the sidecar" if sidecar else "the photo"
    found = _read(path, MAX_SIDECAR_BYTES if sidecar else MAX_PHOTO_BYTES, what)
    if found is None and not sidecar:
        raise XmpError(f"{photo} does not exist")
    data, before = found if found is not None else (_EMPTY_PACKET, None)
    if sidecar and not data.strip():
        data = _EMPTY_PACKET  # an empty file: nothing in it to keep
    new = _merge(data, keywords, parent, sidecar, path.name)
    if new is None:
        return None
    problem = replace_problem(path, before) if before is not None else None
    if problem:
        raise XmpError(f"{what} {path.name} is left as it is: {problem}")
    return _Change(path, what, new, before)


def _commit(change: _Change) -> None:
    """Write one merged file over the old one (raises _Changed when another program changed it meanwhile)."""
    path = change.path
    try:
        with atomic_file(path, shared=True, keep_mode=True, keep_owner=True) as fh:
            _write(fh, change.new)
            if not _same_file(path, change.before):
                raise _Changed()
    except OwnerNotKept as exc:
        raise XmpError(f"{change.what} {path.name} is left as it is: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = f"the folder {path.parent} is not writable ({reason})"
        raise XmpError(f"{change.what} {path.name} could not be written: {reason}") from None


def write_keywords(photo: str | os.PathLike[str], keywords: Sequence[str], parent: str = DEFAULT_PARENT,
                   into_file: bool = False) -> Path:
    """Set this app's keywords (under ``parent``) of ``photo`` in its sidecar, merged with what is there, and
    also inside the photo when ``into_file``. Returns the sidecar's path.

    Raises XmpError with a one-line message naming the photo: the sidecar is not XMP (garbage, a renamed JPEG),
    a link, a pipe, a folder, or holds too many entries; the sidecar or the photo may not be written by this user;
    the folder is read-only; the disk is full; ``into_file`` for a format exiv2 can't write. Both files are read
    and merged before either is written, so then nothing was written (only a write failing half-way, a full disk,
    can leave the sidecar with the keywords and the photo without)."""
    photo = Path(photo)
    try:
        st = os.stat(photo)
    except OSError as exc:
        raise XmpError(f"{photo}: keywords not written: the photo cannot be found ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise XmpError(f"{photo}: keywords not written: it is {file_kind(st.st_mode)}, not a photo")
    side = sidecar_path(photo)
    targets = [(side, True)] + ([(photo, False)] if into_file else [])
    try:
        for _ in range(_ATTEMPTS):
            changes = [c for c in (_plan(p, keywords, parent, sidecar, photo) for p, sidecar in targets) if c]
            try:
                for change in changes:
                    _commit(change)
            except _Changed:
                continue  # another program wrote one of them meanwhile: merged again from what it wrote
            return side
        raise XmpError("the sidecar or the photo kept changing while keywords were written (another program is "
                       "writing it)")
    except XmpError as exc:  # its own parts are one line already (exiv2's cut short): only joined here
        raise XmpError(f"{photo}: keywords not written: {exc}") from None
    except OSError as exc:  # anything the checks above did not foresee: this photo's failure, never the batch's
        raise XmpError(f"{photo}: keywords not written: {_one_line(exc)}") from None



def read_keywords(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """(dc:subject, lr:hierarchicalSubject) of a sidecar or a photo; ([], []) when it has none. Raises XmpError."""
    p = Path(path)
    found = _read(p, MAX_PHOTO_BYTES, "the file")
    if found is None:
        return [], []
    pyexiv2 = _pyexiv2()
    try:
        img = pyexiv2.ImageData(found[0])
    except RuntimeError as exc:
        raise XmpError(f"{p.name} has no readable XMP ({_one_line(exc)})") from None
    try:
        xmp = img.read_xmp()
    except RuntimeError as exc:
        raise XmpError(f"{p.name} has no readable XMP ({_one_line(exc)})") from None
    finally:
        img.close()
    return _as_list(xmp.get(_SUBJECT)), _as_list(xmp.get(_HIERARCHY))
