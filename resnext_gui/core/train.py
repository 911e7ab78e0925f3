"""Teaching new classes: folders of photos -> frozen-backbone features (cached) -> a new linear head -> a model file."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import stat
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ImageError, ResnextGuiError
from .files import NotRegularFile, atomic_file, cache_root, file_kind, open_regular
from .paths import IMAGE_SUFFIXES, iter_images
from .records import valid_text

if TYPE_CHECKING:
    from .classifier import Classifier
    from .preprocess import Prepared

MIN_PHOTOS = 2  # per class, refused below: one for training and one for validation
FEW_PHOTOS = 10  # per class, warned below
FEATURE_DIM = 2048
L2 = 1e-3  # weight of the L2 penalty on the head (features scaled to unit root mean square)
MAX_LABEL = 100  # characters of a class name
MODEL_SUFFIX = ".safetensors"  # the format of the model files teaching writes
FEATURE_BATCH = 8
SHOWN = 5  # names listed in one warning before "and N more"
# At most this many classes are taught at once (ImageNet's own count). The head is fitted on every photo's
# features at once: its memory is about classes x (photos + 40 x 2048) x 8 bytes, some 1-2 GB at 1,000 classes
# of ten photos, and as photos come with classes it grows with the square of their number (tens of GB at 10,000).
MAX_CLASSES = 1000
WORST_SHOWN = 10  # classes named in the summary's "worst" list
PREDICT_ROWS = 2048  # photos scored at once after the fit: memory PREDICT_ROWS x classes, whatever the photo count

Progress = Callable[[int, int], None]  # (photos done, photos in all) during feature extraction


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


# ---- the feature cache: one small file per photo and backbone ----
def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a regular file's bytes; NotRegularFile (an OSError) for a pipe, a device or a folder."""
    return _photo_sha256(Path(path))[0]


def _photo_sha256(path: Path) -> tuple[str, tuple[int, int, int, int]]:
    """(sha256, identity) of a regular file, read once; the identity (device, inode, size, mtime) tells later
    whether the file that was decoded is still the one that was hashed."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        st = os.fstat(fh.fileno())
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest(), _identity(st)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def backbone_sha256(clf: Classifier) -> str:
    """What the features depend on: every backbone tensor (not ``fc``), the preprocessing and the precision."""
    digest = hashlib.sha256()
    digest.update(f"resize={clf.resize} crop={clf.crop_size} precision={clf.precision}".encode())
    for name, array in sorted(_backbone_state(clf).items()):
        if name.startswith("fc."):
            continue
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _backbone_state(clf: Classifier) -> dict[str, np.ndarray]:
    """Every tensor of the classifier's network, by name, as numpy arrays: the checkpoint it was built from."""
    return dict(clf.checkpoint.state)


ENTRY_MAGIC = b"RXGFEAT1"
ENTRY_FEATURES = 2 * FEATURE_DIM * 4  # (2, 2048) float32
ENTRY_BYTES = len(ENTRY_MAGIC) + 32 + 32 + ENTRY_FEATURES


class FeatureCache:
    """``<cache>/features/<backbone>/<photo sha256>.feat``: a photo's (2, 2048) pooled features and its mirror's.

    Each entry carries what it answers for: ``RXGFEAT1``, the sha256 of the photo's bytes and of the
    backbone (32 bytes each), then the features as little-endian float32. An entry is used only when both
    match what is asked for, so a file copied, swapped or planted under another photo's name (or from
    another network's folder) is recomputed, never believed. Entries are read only from regular files of
    exactly that size.
    """

    def __init__(self, folder: str | os.PathLike[str], backbone: str) -> None:
        self.folder = Path(folder) / "features" / backbone[:32]
        self.backbone = bytes.fromhex(backbone)

    def _path(self, content: str) -> Path:
        return self.folder / content[:2] / f"{content}.feat"

    def get(self, content: str) -> np.ndarray | None:
        """The cached features, or None when absent or unusable (not a regular file, damaged, another photo's or
        another backbone's, not finite)."""
        try:
            with open_regular(self._path(content)) as fh:
                if os.fstat(fh.fileno()).st_size != ENTRY_BYTES:
                    return None
                raw = fh.read(ENTRY_BYTES + 1)
        except OSError:
            return None
        magic, rest = raw[:len(ENTRY_MAGIC)], raw[len(ENTRY_MAGIC):]
        if len(raw) != ENTRY_BYTES or magic != ENTRY_MAGIC:
            return None
        if rest[:32] != bytes.fromhex(content) or rest[32:64] != self.backbone:
            return None
        arr = np.frombuffer(rest[64:], dtype="<f4").reshape(2, FEATURE_DIM).astype(np.float32)
        return arr if np.isfinite(arr).all() else None

    def put(self, content: str, feats: np.ndarray) -> None:
        """Write atomically (a temporary file renamed into place); a cache that can't be written is no error."""
        target = self._path(content)
        body = np.ascontiguousarray(feats, dtype="<f4").reshape(2, FEATURE_DIM).tobytes()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(target) as fh:
                fh.write(ENTRY_MAGIC + bytes.fromhex(content) + self.backbone + body)
        except OSError:
            pass


# ---- features of every photo ----
@dataclass
class Features:
    paths: list[Path]
    labels: np.ndarray  # (N,) class index per photo
    feats: np.ndarray  # (N, 2, 2048): each photo, and its mirror image
    hashes: list[str]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    cache_hits: int = 0
    computed: int = 0  # photos that went through the network
    ms: float = 0.0


def _prepare(clf: Classifier, path: Path, identity: tuple[int, int, int, int]) -> tuple[Prepared | None, str | None]:
    """The photo decoded, if it is still the file that was hashed (else its features would be cached under
    another photo's content)."""
    name = valid_text(str(path))
    try:
        item = clf.prepare(path)
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # MemoryError, ...: this photo is skipped with the reason
        return None, f"{name} could not be read ({type(exc).__name__})"
    try:
        same = _identity(os.stat(path)) == identity
    except OSError:
        same = False
    if not same:
        return None, f"{name} changed while it was being read; skipped (train again once it is complete)"
    return item, None


def _unreadable_reason(path: Path, exc: OSError) -> str:
    name = valid_text(str(path))
    if isinstance(exc, NotRegularFile):
        try:
            kind = file_kind(os.stat(path).st_mode)
        except OSError:
            kind = "not a plain file"
        return f"{name} is not a regular file ({kind}), not a photo; skipped"
    return f"{name} cannot be read: {exc.strerror or exc}"


def extract(clf: Classifier, data: DataSet, cache: FeatureCache | None, progress: Progress | None = None,
            cancelled: Callable[[], bool] | None = None, batch_size: int = FEATURE_BATCH) -> Features:
    """Pooled features of every photo, from the cache when it has them, else through ``clf.pooled_features``;
    in the order of ``data.files`` (scan's: by class, then by path).

    Only regular files are read (a named pipe or a device among the photos is skipped with the reason);
    unreadable photos are skipped and listed; the next batch decodes on a thread while the network runs.
    ``cancelled`` is asked between any two photos: TrainingCancelled as soon as it says so.
    """
    start = time.perf_counter()
    total = len(data.files)
    # Every photo's features go straight into one array, in data.files' order (the photo's slot): memory is the
    # features once (16 KB a photo), however many photos, never a list of them and a stacked copy besides.
    all_feats = np.zeros((total, 2, FEATURE_DIM), np.float32)
    kept = np.zeros(total, bool)
    hashes: list[str] = [""] * total
    result = Features([], np.zeros(0, np.int64), np.zeros((0, 2, FEATURE_DIM), np.float32), [])
    seen: set[tuple[str, int]] = set()
    done = 0
    todo: list[tuple[int, Path, int, str, tuple[int, int, int, int]]] = []

    def keep(slot: int, content: str, feats: np.ndarray) -> None:
        all_feats[slot] = feats
        kept[slot] = True
        hashes[slot] = content

    def stop_if_asked() -> None:
        if cancelled and cancelled():
            raise TrainingCancelled("training stopped; nothing was saved")

    def tick(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)
        stop_if_asked()

    for slot, (path, label) in enumerate(data.files):  # hashes first: the cache answers without decoding
        stop_if_asked()
        try:
            content, identity = _photo_sha256(path)
        except OSError as exc:
            result.unreadable.append((path, _unreadable_reason(path, exc)))
            tick()
            continue
        if (content, label) in seen:
            tick()  # the same photo twice in one class counts once
            continue
        seen.add((content, label))
        cached = cache.get(content) if cache else None
        if cached is not None:
            result.cache_hits += 1
            keep(slot, content, cached)
            tick()
        else:
            todo.append((slot, path, label, content, identity))

    pool = ThreadPoolExecutor(1, thread_name_prefix="teach-decode")
    try:
        chunks = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
        upcoming = [pool.submit(_prepare, clf, p, ident) for _, p, _, _, ident in chunks[0]] if chunks else []
        for k, chunk in enumerate(chunks):
            prepared = []
            for future in upcoming:
                stop_if_asked()
                prepared.append(future.result())
            stop_if_asked()
            upcoming = ([pool.submit(_prepare, clf, p, ident) for _, p, _, _, ident in chunks[k + 1]]
                        if k + 1 < len(chunks) else [])
            good = [(item, meta) for (item, err), meta in zip(prepared, chunk, strict=True) if item is not None]
            for (item, err), (_, path, _, _, _) in zip(prepared, chunk, strict=True):
                if item is None:
                    result.unreadable.append((path, err or f"{path.name} could not be read"))
            if good:
                feats = clf.pooled_features([item for item, _ in good])
                result.computed += len(good)
                for (_, (slot, path, _, content, _)), f in zip(good, feats, strict=True):
                    if not np.isfinite(f).all():
                        result.unreadable.append((path, f"{valid_text(path.name)}: the network's features are not "
                                                        "finite numbers; skipped"))
                        continue
                    if cache:
                        cache.put(content, f)
                    keep(slot, content, f)
            tick(len(chunk))
    finally:  # stopped or failed: photos not yet decoded are dropped, not waited for
        pool.shutdown(wait=False, cancel_futures=True)
    order = np.flatnonzero(kept)
    for dst, src in enumerate(order.tolist()):  # the photos kept moved up in place: no second copy of them all
        if dst != src:
            all_feats[dst] = all_feats[src]
    result.paths = [data.files[i][0] for i in order.tolist()]
    result.labels = np.array([data.files[i][1] for i in order.tolist()], dtype=np.int64)
    result.hashes = [hashes[i] for i in order.tolist()]
    result.feats = all_feats[:len(order)]
    result.ms = (time.perf_counter() - start) * 1000.0
    return result


def duplicates_across_classes(data: DataSet, feats: Features) -> list[str]:
    """One warning per photo found (by content) in more than one class, naming the files."""
    by_hash: dict[str, list[tuple[Path, int]]] = {}
    for path, y, h in zip(feats.paths, feats.labels.tolist(), feats.hashes, strict=True):
        by_hash.setdefault(h, []).append((path, y))
    out = []
    for entries in by_hash.values():
        if len({y for _, y in entries}) > 1:
            names = ", ".join(f"{valid_text(_relative(p, data.root))} ({data.labels[y]!r})" for p, y in entries)
            out.append(f"the same photo is in more than one class: {names}")
    return out


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)))
    except ValueError:
        return str(path)


# ---- the head: multinomial logistic regression with L2 ----
def split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified: each class gives round(n * fraction) photos to validation, at least one each way when n >= 2."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    order = np.argsort(labels, kind="stable")  # the photos of each class, in their order: one sort, not a pass per class
    _, starts = np.unique(labels[order], return_index=True)
    for idx in np.split(order, starts[1:]) if len(order) else []:
        idx = idx[rng.permutation(len(idx))]
        n_val = 0
        if val_fraction > 0 and len(idx) >= 2:
            n_val = min(len(idx) - 1, max(1, int(round(len(idx) * val_fraction))))
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def _softmax_loss(w: np.ndarray, z: np.ndarray, y: np.ndarray, num_classes: int, l2: float) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``z @ W.T`` plus ``l2 / 2 * |W|^2``, and its gradient, for flat float64 ``w``."""
    weight = w.reshape(num_classes, z.shape[1])
    logits = z @ weight.T
    top = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - top)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(np.mean(np.log(total[:, 0]) + top[:, 0] - logits[rows, y])) + 0.5 * l2 * float(np.dot(w, w))
    p = e / total
    p[rows, y] -= 1.0
    grad = (p.T @ z) / len(y) + l2 * weight
    return loss, grad.ravel()


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _cubic_step(t1: float, f1: float, g1: float, t2: float, f2: float, g2: float, lo: float, hi: float) -> float:
    """The minimiser of the cubic through two points with their slopes, kept within [lo, hi] (the middle if none)."""
    if t1 != t2:
        d1 = g1 + g2 - 3.0 * (f1 - f2) / (t1 - t2)
        square = d1 * d1 - g1 * g2
        if square >= 0.0:
            d2 = np.copysign(np.sqrt(square), t2 - t1)
            denominator = g2 - g1 + 2.0 * d2
            if denominator != 0.0:
                t = t2 - (t2 - t1) * (g2 + d2 - d1) / denominator
                if np.isfinite(t):
                    return float(min(max(t, lo), hi))
    return 0.5 * (lo + hi)


def _wolfe_step(fun: Objective, x: np.ndarray, f0: float, g0: np.ndarray, d: np.ndarray, t: float,
                c1: float = 1e-4, c2: float = 0.9, max_evals: int = 25,
                tol_change: float = 1e-9) -> tuple[float, float, np.ndarray]:
    """A step ``t`` along ``d`` meeting the strong Wolfe conditions (Nocedal & Wright, algorithms 3.5 and 3.6).

    Returns (t, f, gradient) at the step; t = 0 (with f0, g0) when no lower point was found.
    """
    gtd0 = float(g0 @ d)
    scale = float(np.abs(d).max())
    prev = (0.0, f0, gtd0, g0)
    evals = 0
    bracket: tuple[tuple[float, float, float, np.ndarray], tuple[float, float, float, np.ndarray]] | None = None
    while evals < max_evals:
        f, g = fun(x + t * d)
        evals += 1
        gtd = float(g @ d)
        here = (t, f, gtd, g)
        if not np.isfinite(f) or f > f0 + c1 * t * gtd0 or (evals > 1 and f >= prev[1]):
            bracket = (prev, here)  # (low, high): the minimum lies between them
            break
        if abs(gtd) <= -c2 * gtd0:
            return t, f, g
        if gtd >= 0:
            bracket = (here, prev)
            break
        prev, t = here, _cubic_step(prev[0], prev[1], prev[2], t, f, gtd, t * 1.1, t * 10.0)
    if bracket is None:
        return prev[0], prev[1], prev[3]
    low, high = bracket
    while evals < max_evals and abs(high[0] - low[0]) * scale >= tol_change:
        left, right = min(low[0], high[0]), max(low[0], high[0])
        margin = 0.1 * (right - left)
        t = _cubic_step(low[0], low[1], low[2], high[0], high[1], high[2], left + margin, right - margin)
        f, g = fun(x + t * d)
        evals += 1
        gtd = float(g @ d)
        here = (t, f, gtd, g)
        if not np.isfinite(f) or f > f0 + c1 * t * gtd0 or f >= low[1]:
            high = here
            continue
        if abs(gtd) <= -c2 * gtd0:
            return t, f, g
        if gtd * (high[0] - low[0]) >= 0:
            high = low
        low = here
    return low[0], low[1], low[3]


def _lbfgs(fun: Objective, x0: np.ndarray, max_iter: int, tol_grad: float = 1e-6, tol_change: float = 1e-9,
           history: int = 20) -> np.ndarray:
    """Minimise a smooth function with L-BFGS and a strong Wolfe line search; deterministic.

    Stops when the largest gradient entry is at most ``tol_grad``, when the step or the change of the
    value falls below ``tol_change``, or after ``max_iter`` iterations (the criteria of torch.optim.LBFGS).
    """
    x = x0.astype(np.float64, copy=True)
    f, g = fun(x)
    pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=history)
    gamma = 1.0
    for iteration in range(max_iter):
        if float(np.abs(g).max()) <= tol_grad:
            break
        q = -g
        alphas = []
        for s, y, rho in reversed(pairs):
            a = rho * float(s @ q)
            alphas.append(a)
            q = q - a * y
        d = gamma * q
        for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
            d = d + s * (a - rho * float(y @ d))
        if float(g @ d) > -tol_change:  # not a descent direction (rounding): start again from the gradient
            pairs.clear()
            gamma, d = 1.0, -g
        first = min(1.0, 1.0 / float(np.abs(g).sum())) if iteration == 0 else 1.0
        t, f_new, g_new = _wolfe_step(fun, x, f, g, d, first, tol_change=tol_change)
        step = t * d
        if t == 0.0 or float(np.abs(step).max()) <= tol_change:
            break
        change = g_new - g
        curvature = float(change @ step)
        if curvature > 1e-10:
            pairs.append((step, change, 1.0 / curvature))
            gamma = curvature / float(change @ change)
        x = x + step
        done = abs(f_new - f) < tol_change
        f, g = f_new, g_new
        if done:
            break
    return x


def fit_head(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float = L2, max_iter: int = 200,
             overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Weights (C, D) and bias (C,) on the raw pooled features, fitted full-batch with L-BFGS.

    The features are divided by one common scale for the fit (their root mean square), and the weights by
    it afterwards: the head is an ordinary ``fc`` on the network's own features. The bias stays zero: the
    pooled features are non-negative and already carry a constant part, and without a bias the evidence
    for a class lives in its weights, which is what Grad-CAM reads at every position. With L2 the weights
    of all classes sum to zero, so the predicted class always has positive evidence somewhere and its map
    is never empty.

    ``overwrite``: ``x`` (float64) is the caller's scratch copy and is scaled in place, so the fit holds one
    copy of the features, not three.
    """
    z = np.array(x, dtype=np.float64, copy=not (overwrite and isinstance(x, np.ndarray) and x.dtype == np.float64))
    labels = np.asarray(y, dtype=np.int64)
    flat = z.reshape(-1)
    scale = max(float(np.sqrt(np.dot(flat, flat) / flat.size)), 1e-12) if z.size else 1.0
    z /= scale
    w = _lbfgs(lambda w: _softmax_loss(w, z, labels, num_classes, l2), np.zeros(num_classes * z.shape[1]), max_iter)
    weight = (w.reshape(num_classes, z.shape[1]) / scale).astype(np.float32)
    return weight, np.zeros(num_classes, np.float32)


def predict_proba(weight: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, C) float64 class probabilities of the head on pooled features (a softmax safe from overflow)."""
    from .classifier import softmax

    return softmax(np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T + np.asarray(bias, np.float64))


def metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy; per class its precision and recall (None when undefined), photos and photos recognised; the
    confusions (true class taken for another, most frequent first); the classes recognised worst.

    Linear in photos and classes: the confusion matrix is kept as its non-zero cells (at most one a photo),
    never as classes x classes numbers (100 million at 10,000 classes).
    """
    k = len(labels)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    right = t == p
    support = np.bincount(t, minlength=k)
    predicted = np.bincount(p, minlength=k)
    correct = np.bincount(t[right], minlength=k)
    per_class = {}
    for c, label in enumerate(labels):
        per_class[label] = {
            "precision": round(int(correct[c]) / int(predicted[c]), 4) if predicted[c] else None,
            "recall": round(int(correct[c]) / int(support[c]), 4) if support[c] else None,
            "support": int(support[c]),
            "correct": int(correct[c]),
        }
    pairs: dict[tuple[int, int], int] = {}
    for a, b in zip(t[~right].tolist(), p[~right].tolist(), strict=True):
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    confused = [{"true": labels[a], "predicted": labels[b], "photos": n}
                for (a, b), n in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))]
    scored = [c for c in range(k) if support[c]]
    worst = sorted(scored, key=lambda c: (int(correct[c]) / int(support[c]), c))[:WORST_SHOWN]
    n = len(t)
    return {
        "accuracy": round(int(right.sum()) / n, 4) if n else None,
        "photos": n,
        "per_class": per_class,
        "confused": confused,
        "worst": [{"class": labels[c], "recall": per_class[labels[c]]["recall"]} for c in worst if correct[c] < support[c]],
    }


def confusion_matrix(validation: dict[str, Any], labels: list[str]) -> dict[tuple[int, int], int]:
    """The confusion matrix's non-zero cells {(true, predicted): photos} from metrics(): its diagonal is each
    class's photos recognised, the rest its confusions."""
    index = {label: i for i, label in enumerate(labels)}
    cells = {(index[label], index[label]): int(v["correct"])
             for label, v in (validation.get("per_class") or {}).items() if label in index and v.get("correct")}
    for entry in validation.get("confused") or []:
        if entry.get("true") in index and entry.get("predicted") in index:
            cells[(index[entry["true"]], index[entry["predicted"]])] = int(entry["photos"])
    return cells


def predict(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, rows: int = PREDICT_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(class predicted, its probability) of the head for each row of ``x``: scored ``rows`` at a time, so memory
    stays rows x classes whatever the number of photos."""
    pred = np.zeros(len(x), np.int64)
    prob = np.zeros(len(x), np.float64)
    for i in range(0, len(x), rows):
        probs = predict_proba(weight, bias, x[i:i + rows])
        pred[i:i + rows] = probs.argmax(1)
        prob[i:i + rows] = probs[np.arange(len(probs)), pred[i:i + rows]]
    return pred, prob


# ---- the whole run ----
@dataclass
class Mistake:
    path: Path
    true: int
    predicted: int
    prob: float  # of the predicted class


@dataclass
class TrainResult:
    labels: list[str]
    weight: np.ndarray  # (C, 2048)
    bias: np.ndarray  # (C,)
    counts: list[int]  # photos used per class
    validation: dict[str, Any]  # metrics() of the validation photos ({} when there are none)
    train_accuracy: float
    mistakes: list[Mistake]
    warnings: list[str]
    unreadable: list[tuple[Path, str]]
    provenance: dict[str, Any]
    cache_hits: int = 0
    computed: int = 0
    extract_ms: float = 0.0
    fit_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON summary the CLI prints."""
        return {
            "classes": self.labels,
            "counts": dict(zip(self.labels, self.counts, strict=True)),
            "validation": self.validation or None,
            "train_accuracy": self.train_accuracy,
            "misclassified": [
                {"path": valid_text(str(m.path)), "true": self.labels[m.true], "predicted": self.labels[m.predicted],
                 "prob": round(m.prob, 4)} for m in self.mistakes
            ],
            "unreadable": [{"path": valid_text(str(p)), "error": e} for p, e in self.unreadable],
            "warnings": self.warnings,
            "features": {"cached": self.cache_hits, "computed": self.computed, "ms": round(self.extract_ms, 1)},
            "fit_ms": round(self.fit_ms, 1),
        }


def require_real_weights(clf: Classifier) -> None:
    """Features of an untrained network are meaningless: refuse to teach without a weights file.

    The Classifier never runs an untrained network: it is built only from a checkpoint found by
    ``find_weights`` (the user's ``--weights``, the environment, the bundled file or the torch hub cache), and
    raises NoWeightsError when there is none. So "real weights" here means "a checkpoint the user has", and
    any such file is taken as the user's word (it may be official, a fine-tune, or, in this project's own
    tests, a seeded stand-in). What can still be told from the network itself is refused: a backbone whose
    features are constant (all-zero weights, say) can't tell photos apart.
    """
    if not Path(clf.source.path).is_file():
        from .weights import no_weights_message

        raise TrainingError("teaching needs real backbone weights; features of an untrained network are "
                            "meaningless.\n" + no_weights_message())


def _check_features_vary(feats: np.ndarray) -> None:
    if len(feats) >= 2 and float(np.ptp(feats[:, 0], axis=0).max()) == 0.0:
        raise TrainingError("the backbone gives the same features for every photo, so it can't tell them apart: "
                            "are these real weights? Use the official ImageNet weights (resnext-gui weights fetch)")


def train(clf: Classifier, data_dir: str | os.PathLike[str] | list[str] | DataSet, val_fraction: float = 0.2, seed: int = 0,
          cache_dir: str | os.PathLike[str] | None = None, progress: Progress | None = None,
          cancelled: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None,
          l2: float = L2) -> TrainResult:
    """Scan ``data_dir`` (or take the DataSet ``scan`` made of it), extract (or reuse) features with ``clf``'s
    frozen backbone, fit and validate a head."""
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingError(f"the validation fraction must be at least 0 and below 1 (got {val_fraction})")
    require_real_weights(clf)
    say = log or (lambda _m: None)
    data = data_dir if isinstance(data_dir, DataSet) else scan(data_dir)
    for w in data.warnings:
        say(f"warning: {w}")
    say(f"{len(data.files)} photos in {len(data.labels)} classes; computing features…")
    backbone = backbone_sha256(clf)
    cache = FeatureCache(cache_dir if cache_dir is not None else cache_root(), backbone)
    feats = extract(clf, data, cache, progress, cancelled)
    warnings = list(data.warnings)
    if feats.unreadable:
        warnings.append(f"{len(feats.unreadable)} unreadable photo{'s' if len(feats.unreadable) > 1 else ''} skipped")
    dups = duplicates_across_classes(data, feats)
    for w in dups + warnings[len(data.warnings):]:
        say(f"warning: {w}")
    warnings += dups
    counts = np.bincount(feats.labels, minlength=len(data.labels)).tolist()
    warnings = [w for w in warnings if not w.startswith(f"classes with fewer than {FEW_PHOTOS}")]  # recounted:
    check_counts(data.labels, counts, warnings)  # without unreadable photos and repeats
    _check_features_vary(feats.feats)
    train_idx, val_idx = split(feats.labels, val_fraction, seed)
    start = time.perf_counter()
    x = _float64_rows(feats.feats, train_idx).reshape(-1, FEATURE_DIM)  # each photo and its mirror image
    y = np.repeat(feats.labels[train_idx], 2)
    weight, bias = fit_head(x, y, len(data.labels), l2, overwrite=True)
    del x
    fit_ms = (time.perf_counter() - start) * 1000.0
    train_pred, _ = predict(weight, bias, feats.feats[train_idx, 0])
    train_acc = round(float((train_pred == feats.labels[train_idx]).mean()), 4) if len(train_idx) else 0.0
    validation: dict[str, Any] = {}
    mistakes: list[Mistake] = []
    if len(val_idx):
        pred, prob = predict(weight, bias, feats.feats[val_idx, 0])
        validation = metrics(feats.labels[val_idx], pred, data.labels)
        for i, p, pr in zip(val_idx.tolist(), pred.tolist(), prob.tolist(), strict=True):
            if p != feats.labels[i]:
                mistakes.append(Mistake(feats.paths[i], int(feats.labels[i]), int(p), float(pr)))
    source = clf.source
    provenance = {
        "base_weights": {
            "file": valid_text(Path(source.path).name),
            "sha256": clf.checkpoint.sha256,  # of the bytes the backbone was built from
            "variant": source.variant.name if source.variant is not None else None,
        },
        "backbone_sha256": backbone,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "classes": dict(zip(data.labels, counts, strict=True)),
        "validation": {k: validation[k] for k in ("accuracy", "photos", "per_class", "confused")} if validation else None,
        "val_fraction": val_fraction,
        "seed": seed,
        "head": f"multinomial logistic regression, L2 {l2}, L-BFGS, horizontal-flip features",
        "preprocessing": {"resize": clf.resize, "crop": clf.crop_size},
    }
    return TrainResult(data.labels, weight, bias, counts, validation, train_acc, mistakes, warnings,
                       feats.unreadable, provenance, feats.cache_hits, feats.computed, feats.ms, fit_ms)


def _float64_rows(feats: np.ndarray, rows: np.ndarray, step: int = 256) -> np.ndarray:
    """``feats[rows]`` as float64, copied a few rows at a time (no float32 copy of them all on the way)."""
    out = np.empty((len(rows), *feats.shape[1:]), np.float64)
    for i in range(0, len(rows), step):
        out[i:i + step] = feats[rows[i:i + step]]
    return out


def checkpoint_state(clf: Classifier, result: TrainResult) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The backbone's tensors with the new ``fc``, and the file's metadata: the labels and the provenance (JSON)."""
    # np.asarray, not np.ascontiguousarray: that makes the 0-d counters (num_batches_tracked) 1-d
    state = {k: np.asarray(v, order="C") for k, v in _backbone_state(clf).items() if not k.startswith("fc.")}
    state["fc.weight"] = np.ascontiguousarray(result.weight, dtype=np.float32)
    state["fc.bias"] = np.ascontiguousarray(result.bias, dtype=np.float32)
    metadata = {
        "labels": json.dumps(list(result.labels), ensure_ascii=False),
        "provenance": json.dumps(_plain(result.provenance), ensure_ascii=False),
    }
    return state, metadata


def _plain(value: Any) -> Any:
    """Only str, int, float, bool, None, lists and dicts: what JSON writes and reads back as it was."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def model_path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a model can't be written to ``path`` (a folder, a pipe or device such as /dev/null, a name not ending
    in .safetensors); None if it can."""
    target = Path(path)
    if target.is_dir():
        return f"{target} is a folder; give a file name for the model (e.g. {target / ('model' + MODEL_SUFFIX)})"
    try:
        mode = os.stat(target).st_mode  # through a link: a link to /dev/null is refused as /dev/null is
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        return (f"{valid_text(str(target))} is {file_kind(mode)}, not a regular file; a model is saved only as an "
                "ordinary file: give a new file name")
    if target.suffix.lower() != MODEL_SUFFIX:
        return (f"{target.name}: models are saved in the safetensors format; give a name ending in {MODEL_SUFFIX} "
                f"(e.g. {target.with_suffix(MODEL_SUFFIX).name})")
    return None


def save(clf: Classifier, result: TrainResult, out: str | os.PathLike[str]) -> Path:
    """Write the model (``.safetensors``) atomically: a temporary file in the same folder, renamed into place."""
    from safetensors.numpy import save as safetensors_bytes

    target = Path(out)
    problem = model_path_problem(target)
    if problem:
        raise TrainingError(problem)
    state, metadata = checkpoint_state(clf, result)
    data = safetensors_bytes(state, metadata=metadata)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target, shared=True, keep_mode=True) as fh:  # an ordinary file; an existing one's mode kept
        fh.write(data)
    return target


def explain(clf: Classifier, result: TrainResult, path: str | os.PathLike[str], classes: list[int]) -> tuple[Prepared, np.ndarray]:
    """(prepared photo, (len(classes), 7, 7) Grad-CAMs in [0, 1]) of the new head for the given classes."""
    from . import cam as cam_mod

    item = clf.prepare(path)
    feats = clf.features([item])  # (1, 2048, 7, 7)
    maps = cam_mod.last_stage_cams(feats, result.weight, np.array([classes], dtype=np.int64))
    return item, maps[0]


KEEP_MODELS = 5  # models taught in the window and not saved elsewhere: the newest few are kept in the cache


def new_model_path(folder: str | os.PathLike[str] | None = None) -> Path:
    """A fresh file name for a model taught in the window (``<cache>/models/taught-<time>.safetensors``); older ones
    pruned (``.pth`` ones too, from versions that wrote those)."""
    models = Path(folder) if folder is not None else cache_root() / "models"
    models.mkdir(parents=True, exist_ok=True)
    old = sorted([*models.glob(f"taught-*{MODEL_SUFFIX}"), *models.glob("taught-*.pth")])
    for path in old[: max(0, len(old) - (KEEP_MODELS - 1))]:
        try:
            path.unlink()
        except OSError:
            pass
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return models / f"taught-{stamp}{MODEL_SUFFIX}"


def copy_model(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy a saved model to where the user chose, atomically (a temporary file renamed into place)."""
    import shutil

    target = Path(target)
    problem = model_path_problem(target)
    if problem:
        raise TrainingError(problem)
    with atomic_file(target, shared=True, keep_mode=True) as out, open_regular(source) as src:
        shutil.copyfileobj(src, out, 1 << 20)
    return target
