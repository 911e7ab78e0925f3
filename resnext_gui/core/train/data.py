"""Teaching's data set: one folder of photos per class (the ImageFolder convention), scanned, named and counted."""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ResnextGuiError
from ..paths import IMAGE_SUFFIXES, iter_images
from ..records import valid_text

MIN_PHOTOS = 2  # per class, refused below: one for training and one for validation
FEW_PHOTOS = 10  # per class, warned below
MAX_LABEL = 100  # characters of a class name
SHOWN = 5  # names listed in one warning before "and N more"
# At most this many classes are taught at once (ImageNet's own count). The head is fitted on every photo's
# features at once: its memory is about classes x (photos + 40 x 2048) x 8 bytes, some 1-2 GB at 1,000 classes
# of ten photos, and as photos come with classes it grows with the square of their number (tens of GB at 10,000).
MAX_CLASSES = 1000


class TrainingError(ResnextGuiError):
    """The data or the weights can't make a model (too few classes or photos, no real weights...)."""


class TrainingCancelled(TrainingError):
    """The user stopped training."""


# ---- the data set: one folder per class ----
@dataclass
class DataSet:
    root: Path
    labels: list[str]
    files: list[tuple[Path, int]]  # (photo, class index), in class order then sorted path order
    other_files: int = 0  # files that are not images by name, passed over
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> list[int]:
        out = [0] * len(self.labels)
        for _, y in self.files:
            out[y] += 1
        return out


def clean_label(name: str) -> str:
    """A folder name as a class label: valid Unicode in NFC, no control characters, single spaces, at most MAX_LABEL.

    NFC: "café" typed on one system and "cafe" + combining accent written by another (macOS, some zip tools)
    are the same name, shown alike, and one class.
    """
    text = unicodedata.normalize("NFC", valid_text(name))
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:MAX_LABEL].rstrip()


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def scan(root: str | os.PathLike[str] | list[str]) -> DataSet:
    """The ImageFolder convention: each subfolder of ``root`` is a class, its images (found recursively) its photos.

    ``root`` may also be a list of class folders (folders dropped on the window one by one). Refuses
    (TrainingError) a root that is not a folder, fewer than two classes, or a class with fewer than
    MIN_PHOTOS photos; warns (``warnings``) about small classes, renamed labels, classes whose names differ
    only in case, and everything passed over (hidden folders, files that are not images, links leading
    out of their class folder). Folder names are compared in NFC: two spellings of one name are one class.
    """
    loose = 0
    hidden: list[str] = []
    if isinstance(root, (list, tuple)):
        folders = [Path(f) for f in root]
        missing = [valid_text(str(f)) for f in folders if not f.is_dir()]
        if missing:
            raise TrainingError(f"not a folder: {', '.join(missing)}")
        root = Path(os.path.commonpath([os.path.abspath(f) for f in folders])) if folders else Path(".")
    else:
        root = Path(root)
        if not root.is_dir():
            raise TrainingError(f"{root} is not a folder: give a folder with one subfolder of photos per class")
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as exc:
            raise TrainingError(f"cannot read {root}: {exc.strerror or exc}") from None
        folders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                loose += 1
            elif entry.name.startswith("."):  # hidden folders (.git, .thumbnails) are not classes
                hidden.append(valid_text(entry.name))
            else:
                folders.append(Path(entry.path))
    if len(folders) > MAX_CLASSES:  # said before any folder is listed
        raise TrainingError(f"teaching learns at most {MAX_CLASSES:,} classes at once, and "
                            f"{valid_text(str(root))} has {len(folders):,} class folders: teach a set of at most "
                            f"{MAX_CLASSES:,} of them (the head is fitted on all their photos at once, and its memory "
                            "grows with classes times photos)")
    data = DataSet(root, [], [])
    seen: dict[str, str] = {}  # label -> the folder name it came from, as shown
    photos_of: dict[str, list[Path]] = {}
    skipped: list[str] = []

    def other(_path: Path) -> None:
        data.other_files += 1

    def on_skip(path: Path, reason: str) -> None:
        skipped.append(f"skipped {valid_text(str(path))}: {reason}")

    for folder in folders:
        label = clean_label(folder.name)
        shown = valid_text(folder.name)
        if not label:
            data.warnings.append(f"folder {shown!r} has no usable name for a class; skipped")
            continue
        if label != unicodedata.normalize("NFC", shown):
            data.warnings.append(f"folder {shown!r} is not a valid class label as it stands; "
                                 f"the class is called {label!r}")
        if label in seen:
            if seen[label] == shown or unicodedata.normalize("NFC", seen[label]) != unicodedata.normalize("NFC", shown):
                raise TrainingError(f"folders {seen[label]!r} and {shown!r} would both be the class {label!r}: "
                                    "rename one of them")
            data.warnings.append(f"folders {ascii(seen[label])} and {ascii(shown)} are the same name written in two "
                                 f"Unicode forms; their photos are one class {label!r}")
        else:
            seen[label] = shown
            data.labels.append(label)
            photos_of[label] = []
        real_folder = os.path.realpath(folder)
        for photo in iter_images([folder], on_skip=on_skip, on_other=other):
            if os.path.islink(photo) and not _inside(os.path.realpath(photo), real_folder):
                on_skip(photo, "is a link that leads outside the folder; not followed")
                continue
            photos_of[label].append(photo)
    for index, label in enumerate(data.labels):
        data.files += [(p, index) for p in sorted(photos_of[label], key=str)]
    by_case: dict[str, list[str]] = {}
    for label in data.labels:
        by_case.setdefault(label.casefold(), []).append(label)
    for same in by_case.values():
        if len(same) > 1:
            data.warnings.append(f"classes {_listed(same)} differ only in upper and lower case: they are taught as "
                                 "different classes; rename or merge the folders if they are meant to be one")
    data.warnings += skipped
    if hidden:
        data.warnings.append(f"hidden folder{'s' if len(hidden) > 1 else ''} {_listed(hidden)} in "
                             f"{valid_text(str(root))} skipped: names starting with '.' are not classes")
    if loose:
        data.warnings.append(f"{loose} file{'s' if loose > 1 else ''} directly in {valid_text(str(root))} "
                             "ignored: photos belong in one subfolder per class")
    if data.other_files:
        n = data.other_files
        data.warnings.append(f"{n} file{'s that are' if n > 1 else ' that is'} not an image by name skipped "
                             f"(images end in {', '.join(IMAGE_SUFFIXES)})")
    check_counts(data.labels, data.counts(), data.warnings)
    return data


def check_counts(labels: list[str], counts: list[int], warnings: list[str]) -> None:
    """Refuse fewer than two classes or a class below MIN_PHOTOS; warn about classes below FEW_PHOTOS."""
    if len(labels) < 2:
        found = f"found {len(labels)}: {labels[0]!r}" if labels else "found none"
        raise TrainingError("teaching needs at least two classes, one subfolder of photos each "
                            f"({found})")
    small = [f"{lab!r} ({n})" for lab, n in zip(labels, counts, strict=True) if n < MIN_PHOTOS]
    if small:
        raise TrainingError(f"each class needs at least {MIN_PHOTOS} photos (one to learn from, one to check "
                            f"with); too few: {', '.join(small)}")
    few = [f"{lab!r} ({n})" for lab, n in zip(labels, counts, strict=True) if n < FEW_PHOTOS]
    if few:
        message = f"classes with fewer than {FEW_PHOTOS} photos give unreliable models and figures: {', '.join(few)}"
        if message not in warnings:
            warnings.append(message)
