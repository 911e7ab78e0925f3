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
and the result goes to a temporary file renamed over the sidecar in the same folder. Any failure raises
XmpError with a message for that photo, and leaves the photo and the sidecar as they were.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .errors import XmpError
from .files import atomic_file, file_kind
from .records import valid_text

DEFAULT_MIN_PROB = 0.2
DEFAULT_PARENT = "ResNeXt"
MAX_SIDECAR_BYTES = 32 * 2**20  # darktable's sidecars with a long history are a few hundred kB
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
        raise XmpError(f"keywords cannot be written: the XMP library (pyexiv2) is not available ({exc})") from None
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


def _array(key: str, items: list[str]) -> dict[str, str | None]:
    """pyexiv2's modify_xmp entries that make ``key`` an unordered array (rdf:Bag, as the XMP spec has dc:subject)
    of ``items``, or delete it when there are none. (pyexiv2 writes a Python list as an rdf:Seq.)"""
    if not items:
        return {key: None}
    out: dict[str, str | None] = {key: 'type="Bag"'}
    for i, item in enumerate(items, 1):
        out[f"{key}[{i}]"] = item
    return out


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


def _merge(data: bytes, keywords: Sequence[str], parent: str, sidecar: bool, name: str) -> bytes | None:
    """``data`` (a sidecar's or a photo's bytes) with the keywords merged in; None when nothing would change."""
    pyexiv2 = _pyexiv2()
    try:
        img = pyexiv2.ImageData(data)
    except RuntimeError as exc:
        raise XmpError(f"{name} is not an XMP file ({exc})" if sidecar else
                       f"{name}: its format can't hold XMP keywords ({exc})") from None
    try:
        mime = img.get_mime_type()
        if sidecar and mime != SIDECAR_MIME:
            raise XmpError(f"{name} is not an XMP file (it holds {mime})")
        xmp = img.read_xmp()
        subjects, hierarchy = _as_list(xmp.get(_SUBJECT)), _as_list(xmp.get(_HIERARCHY))
        new_subjects, new_hierarchy = merged_keywords(subjects, hierarchy, keywords, parent)
        if new_subjects == subjects and new_hierarchy == hierarchy:
            return None
        if sidecar:
            # exiv2 derives Exif and IPTC copies of a sidecar's XMP when reading it and writes them back into the
            # XMP when saving, which would bring the old dc:subject back from IPTC Keywords. In a sidecar they are
            # only copies, so they are dropped first; the XMP itself is unchanged by that (tests check it).
            img.clear_iptc()
            img.clear_exif()
        img.modify_xmp({**_array(_SUBJECT, new_subjects), **_array(_HIERARCHY, new_hierarchy)})
        out: bytes = img.get_bytes()
        return out
    except RuntimeError as exc:
        raise XmpError(f"{name}: the keywords could not be written into it ({exc})") from None
    finally:
        img.close()


def _read(path: Path, limit: int, what: str) -> tuple[bytes, os.stat_result] | None:
    """The bytes of the regular file at ``path`` and its lstat, or None when there is none. Never follows a link
    at ``path``, never waits on a pipe."""
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
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise XmpError(f"{what} {path.name} is {file_kind(st.st_mode)}, not a regular file")
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
    return (now.st_ino, now.st_dev, now.st_size, now.st_mtime_ns) == (before.st_ino, before.st_dev, before.st_size,
                                                                       before.st_mtime_ns)


def _write(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def _update(path: Path, keywords: Sequence[str], parent: str, sidecar: bool, photo: Path) -> bool:
    """Merge the keywords into the file at ``path``; False when it already had them. Raises XmpError."""
    what = "the sidecar" if sidecar else "the photo"
    for _ in range(_ATTEMPTS):
        found = _read(path, MAX_SIDECAR_BYTES if sidecar else MAX_PHOTO_BYTES, what)
        if found is None and not sidecar:
            raise XmpError(f"{photo} does not exist")
        data, before = found if found is not None else (_EMPTY_PACKET, None)
        if sidecar and not data.strip():
            data = _EMPTY_PACKET  # an empty file: nothing in it to keep
        new = _merge(data, keywords, parent, sidecar, path.name)
        if new is None:
            return False
        try:
            with atomic_file(path, shared=True, keep_mode=True) as fh:
                _write(fh, new)
                if not _same_file(path, before):
                    raise _Changed()
        except _Changed:
            continue
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                reason = f"the folder {path.parent} is not writable ({reason})"
            raise XmpError(f"{what} {path.name} could not be written: {reason}") from None
        return True
    raise XmpError(f"{what} {path.name} kept changing while keywords were written (another program is writing it)")


def write_keywords(photo: str | os.PathLike[str], keywords: Sequence[str], parent: str = DEFAULT_PARENT,
                   into_file: bool = False) -> Path:
    """Set this app's keywords (under ``parent``) of ``photo`` in its sidecar, merged with what is there, and
    also inside the photo when ``into_file``. Returns the sidecar's path.

    Raises XmpError with a message naming the photo: the sidecar is not XMP (garbage, a renamed JPEG), a link,
    a pipe; the folder is read-only; the disk is full; ``into_file`` for a format exiv2 can't write. The photo
    and any existing sidecar are then as they were (the sidecar may already hold the keywords when only the
    photo could not take them)."""
    photo = Path(photo)
    try:
        st = os.stat(photo)
    except OSError as exc:
        raise XmpError(f"{photo}: keywords not written: the photo cannot be found ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise XmpError(f"{photo}: keywords not written: it is {file_kind(st.st_mode)}, not a photo")
    side = sidecar_path(photo)
    try:
        _update(side, keywords, parent, sidecar=True, photo=photo)
        if into_file:
            _update(photo, keywords, parent, sidecar=False, photo=photo)
    except XmpError as exc:
        raise XmpError(f"{photo}: keywords not written: {exc}") from None
    return side


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
        raise XmpError(f"{p.name} has no readable XMP ({exc})") from None
    try:
        xmp = img.read_xmp()
    except RuntimeError as exc:
        raise XmpError(f"{p.name} has no readable XMP ({exc})") from None
    finally:
        img.close()
    return _as_list(xmp.get(_SUBJECT)), _as_list(xmp.get(_HIERARCHY))
