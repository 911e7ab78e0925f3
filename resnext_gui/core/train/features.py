"""Teaching's features: each photo's pooled last-stage features and its mirror's, from a cache keyed by the photo's and the backbone's hashes, or through the network."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ImageError
from ..files import NotRegularFile, atomic_file, file_kind, open_regular
from ..records import valid_text
from .data import DataSet, TrainingCancelled

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..preprocess import Prepared

FEATURE_DIM = 2048
FEATURE_BATCH = 8

Progress = Callable[[int, int], None]  # (photos done, photos in all) during feature extraction


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
    for name, array in sorted(backbone_state(clf).items()):
        if name.startswith("fc."):
            continue
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def backbone_state(clf: Classifier) -> dict[str, np.ndarray]:
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
