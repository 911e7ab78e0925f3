"""Similar photos and near-duplicates: one similarity figure from the network's features and a perceptual hash.

Every photo the Classifier answers brings two things: the last stage's pooled activations (2,048 values, the
photo's *features*) and a 64-bit difference hash of its pixels (*dHash*, computed here exactly as
``imagehash.dhash`` computes it). Two photos are compared by both:

- **features**: raw pooled activations are all positive and share one dominant direction, so the raw cosine
  of any two photos is 0.97 or more and says little. They are compared *relative to the photos being
  compared*: centred on those photos' mean, projected on their principal directions (PCA, at most
  ``PCA_DIMS`` of them) and whitened with shrinkage (each direction scaled by 1/sqrt(variance + the mean
  variance of the kept directions), so that rare directions count more without blowing up noise). The
  *feature similarity* f is the cosine of two photos' whitened vectors, from -1 to 1. It needs others to
  compare with: with fewer than three photos (or for a photo equal to the collection's mean) it can't raise
  the figure, and the hash alone decides.
- **hash**: the *hash similarity* is h = 1 - d/32, at least 0, where d is the number of bits in which the two
  dHashes differ: 1 for the same hash, 0 at 32 bits or more (what two unrelated photos differ by on average).

**The similarity** is s = max(h, (f + h) / 2): the hash's figure, raised half-way towards the features' where
the features find the photos closer than the hash does. So an exact copy is 1.0 whatever the other photos are
(same pixels, same hash); a recompressed, resized or brightened copy keeps its hash within a few bits and
stays about 0.9 or more; an edit that moves pixels (a crop, a caption, a turn of a few degrees, the next shot
of a burst) breaks much of the hash and is found through the features: about 0.5 to 0.9. Two unrelated
photos are about 0 to 0.5. The scale, measured on a near-duplicate set with a network of random weights
(benchmarks/similar.md): ``EXACT`` (0.95) and up, exact copies (the same picture, recompressed, resized,
brightened); ``DEFAULT_THRESHOLD`` (0.60), a photo's copies and edited versions, the same shot; 0.45 to 0.60,
the same scene (crops, shots further apart), where unrelated photos begin to reach.

Qt-free and torch-free; numpy only (and Pillow's resize for the hash).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from PIL.Image import Image

FEATURE_DIM = 2048  # pooled last-stage activations of ResNeXt-50
HASH_BITS = 64  # dHash of 8 x 8 differences
HASH_SCALE = 32  # bits of hash distance at which the hash similarity reaches 0 (unrelated photos: 32 on average)
PCA_DIMS = 128  # principal directions kept: the whitened vectors a collection is compared by
STATS_SAMPLE = 4096  # photos the principal directions are estimated from, at most (a fixed random sample)
NO_DIRECTION = 1e-4  # a whitened vector shorter than this (in standard deviations) has no direction: f = 0
EXACT_ROWS = 1024  # up to this many photos the principal directions are computed exactly
SHRINK = 1.0  # whitening shrinkage, in units of the kept directions' mean variance
DEFAULT_THRESHOLD = 0.60  # `duplicates`: photos at least this similar are one group (see benchmarks/similar.md)
EXACT = 0.95  # at or above: an exact or near-exact copy (same picture, recompressed, resized, brightened)
DEFAULT_TOP = 20  # `similar`: photos listed
BLOCK_ROWS = 1024  # `duplicates`: a tile of this many photos against BLOCK_COLS others at once
BLOCK_COLS = 2048  # (the tile's buffers: 30 MB, reused)
HEAD_DIMS = 64  # `duplicates` bounds the cosines by the first 64 whitened directions and the rest's length ...
VERIFY_SHARE = 0.02  # ... and computes a tile's cosines whole where more than this share of its pairs pass
THREADS = 2  # `duplicates` compares on this many threads at most (one per core)

Floats = npt.NDArray[np.float32]
Hashes = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.int64]


# ---- the perceptual hash ----
def dhash(image: Image) -> int:
    """The 64-bit difference hash of ``image``, bit for bit ``int(str(imagehash.dhash(image)), 16)``.

    The photo in greyscale, resized to 9 x 8 with Lanczos; each bit says whether a pixel is brighter than its
    left neighbour, row by row, the first bit the most significant."""
    from PIL import Image as PILImage

    small = image.convert("L").resize((9, 8), PILImage.Resampling.LANCZOS)
    pixels = np.asarray(small)
    bits = (pixels[:, 1:] > pixels[:, :-1]).reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def as_hashes(values: Sequence[int] | npt.ArrayLike) -> Hashes:
    """Hashes as an unsigned 64-bit array, from Python ints (0 to 2**64 - 1, or the signed 64-bit form SQLite
    keeps) or an int64 / uint64 array."""
    if isinstance(values, np.ndarray):
        if values.dtype == np.uint64:
            return values.reshape(-1)
        if values.dtype == np.int64:
            return values.reshape(-1).view(np.uint64)
        if values.dtype != object:
            raise TypeError(f"hashes must be 64-bit integers, not {values.dtype}")
    mask = 0xFFFF_FFFF_FFFF_FFFF
    return np.fromiter((int(v) & mask for v in np.asarray(values, dtype=object).reshape(-1)), dtype=np.uint64)


def hash_distance(a: Hashes | int, b: Hashes) -> npt.NDArray[np.uint8]:
    """Bits in which the hashes differ (broadcast), 0 to 64."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), b)
    out: npt.NDArray[np.uint8] = np.bitwise_count(x)
    return out


def hash_similarity(distance: npt.ArrayLike) -> Floats:
    """1 - distance/32, at least 0."""
    d = np.asarray(distance, dtype=np.float32)
    out: Floats = np.maximum(np.float32(0.0), np.float32(1.0) - d / np.float32(HASH_SCALE))
    return out


def combine(feature_sim: npt.ArrayLike, hash_sim: npt.ArrayLike) -> Floats:
    """The similarity: max(h, (f + h) / 2) (see the module's docstring)."""
    f = np.asarray(feature_sim, dtype=np.float32)
    h = np.asarray(hash_sim, dtype=np.float32)
    out: Floats = np.maximum(h, (f + h) * np.float32(0.5))
    return out


# ---- the features, relative to the photos compared ----
def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@dataclass(frozen=True)
class FeatureSpace:
    """The statistics of a collection's features: its mean and its shrunk-whitened principal directions."""

    mean: Floats  # (2048,)
    basis: Floats  # (2048, d): principal directions, each divided by sqrt(its variance + shrinkage)

    @property
    def dims(self) -> int:
        return int(self.basis.shape[1])

    @classmethod
    def fit(cls, features: npt.ArrayLike, dims: int = PCA_DIMS, sample: int = STATS_SAMPLE,
            shrink: float = SHRINK) -> FeatureSpace:
        """The statistics of ``features`` (N, 2048): the mean of all, the principal directions of at most
        ``sample`` of them (a fixed random choice), ``dims`` of them at most."""
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"features must be an (N, D) array with N >= 1, not {x.shape}")
        n, width = x.shape
        total = np.zeros(width, dtype=np.float64)
        for rows in _blocks(n, 8192):
            total += x[rows].sum(axis=0, dtype=np.float64)
        mean = (total / n).astype(np.float32)
        picked = np.arange(n) if n <= sample else np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
        variances, directions = _principal(np.asarray(x[picked], dtype=np.float32) - mean, dims)
        top = float(variances[0]) if len(variances) else 0.0
        rank = int(np.count_nonzero(variances > max(top, 1e-30) * 1e-6)) if top > 0 else 0
        keep = min(dims, rank)
        if keep == 0:  # every photo the same: nothing to compare by
            return cls(mean, np.zeros((width, 1), dtype=np.float32))
        kept = variances[:keep]
        beta = shrink * float(kept.mean())
        basis = (directions[:, :keep] / np.sqrt(kept + beta)).astype(np.float32)
        return cls(mean, basis)

    def embed(self, features: npt.ArrayLike) -> Floats:
        """(N, d) float32: the features centred, projected and whitened, each row of length 1 (all zeros where
        a photo has no direction of its own: it equals the mean)."""
        x = np.asarray(features)
        out = np.empty((x.shape[0], self.dims), dtype=np.float32)
        for rows in _blocks(x.shape[0], 8192):
            v = (np.asarray(x[rows], dtype=np.float32) - self.mean) @ self.basis
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            tiny = norms <= np.float32(NO_DIRECTION)
            out[rows] = np.where(tiny, np.float32(0.0), v / np.where(tiny, np.float32(1.0), norms))
        return out


def _principal(centred: Floats, k: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(variances, directions (D, m)) of the centred rows' principal directions, largest first: exact for up to
    EXACT_ROWS rows (the eigenvectors of their Gram matrix), else the top ``k`` by randomised subspace iteration
    (Halko, Martinsson & Tropp 2011; a fixed seed, so the same photos give the same figures).

    Only small eigenproblems go to LAPACK (at most EXACT_ROWS or k + 16 wide); the work on the tall sample is
    matrix products, which keep their speed on a busy machine where a threaded QR or SVD of it does not."""
    n = centred.shape[0]
    if n <= EXACT_ROWS:
        x = centred.astype(np.float64)
        values, vectors = np.linalg.eigh(x @ x.T)
        order = np.argsort(values)[::-1]
        values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
        singular = np.sqrt(values)
        return values / n, (x.T @ vectors) / np.where(singular > 0, singular, 1.0)
    x32 = np.ascontiguousarray(centred, dtype=np.float32)
    width = min(k + 16, min(x32.shape))
    y = (x32 @ np.random.default_rng(1).standard_normal((x32.shape[1], width)).astype(np.float32)).astype(np.float64)
    for _ in range(3):  # power iterations sharpen the spectrum's top
        q32 = _orthonormal(y).astype(np.float32)
        y = (x32 @ (x32.T @ q32)).astype(np.float64)
    b = _orthonormal(y).T @ x32.astype(np.float64)  # (m, D): the sample in the subspace found
    values, u = np.linalg.eigh(b @ b.T)
    order = np.argsort(values)[::-1]
    values, u = np.maximum(values[order], 0.0), u[:, order]
    singular = np.sqrt(values)
    directions = (b.T @ u) / np.where(singular > 0, singular, 1.0)
    return values / n, directions


def _orthonormal(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """An orthonormal basis of ``y``'s columns, through their small Gram matrix."""
    values, vectors = np.linalg.eigh(y.T @ y)
    keep = values > max(float(values.max(initial=0.0)), 1e-300) * 1e-12
    out: npt.NDArray[np.float64] = y @ (vectors[:, keep] / np.sqrt(values[keep]))
    return out


# ---- a collection, ready to be compared ----
@dataclass(frozen=True)
class Group:
    """Near-duplicates: ``members`` (indices into the collection, ascending) hold together at ``similarity``:
    each is joined to the others by a chain of pairs at least this similar (the weakest link)."""

    members: list[int]
    similarity: float


class SimilarityIndex:
    """Photos to compare: their whitened features and hashes. Build it once per collection (its statistics
    are the collection's), then ask it for one photo's ranking or for every group of near-duplicates.

    ``features``: (N, 2048), float16 or float32; ``hashes``: N 64-bit dHashes. ``space``: the statistics to
    use (default: fitted on ``features``). Holds N x PCA_DIMS float32 (51 MB for 100,000 photos; ``groups``
    adds N x 65 and its tiles' buffers), not the features themselves.
    """

    def __init__(self, features: npt.ArrayLike, hashes: Sequence[int] | npt.ArrayLike,
                 space: FeatureSpace | None = None) -> None:
        feats = np.asarray(features)
        self.hashes: Hashes = as_hashes(hashes)
        if feats.ndim != 2 or feats.shape[0] != self.hashes.shape[0]:
            raise ValueError(f"{feats.shape} features for {self.hashes.shape[0]} hashes")
        self.space = space if space is not None else FeatureSpace.fit(feats) if len(feats) else None
        dims = self.space.dims if self.space is not None else 1
        self.vectors: Floats = self.space.embed(feats) if self.space is not None else np.zeros((0, dims), np.float32)
        self._bound_vectors: Floats | None = None

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    def similarities(self, i: int) -> Floats:
        """(N,) the similarity of photo ``i`` to every photo of the collection (to itself: 1.0)."""
        f = self.vectors @ self.vectors[i]
        s = combine(np.clip(f, -1.0, 1.0), hash_similarity(hash_distance(self.hashes[i], self.hashes)))
        s[i] = 1.0
        return s

    def similarity(self, i: int, j: int) -> float:
        if i == j:
            return 1.0
        f = float(np.clip(self.vectors[i] @ self.vectors[j], -1.0, 1.0))
        h = float(hash_similarity(hash_distance(self.hashes[i], self.hashes[j : j + 1]))[0])
        return float(combine(f, h))

    def most_similar(self, i: int, top: int | None = DEFAULT_TOP, among: npt.ArrayLike | None = None
                     ) -> list[tuple[int, float]]:
        """(index, similarity) of the photos most similar to photo ``i``, most similar first (ties: lower index
        first), ``i`` itself left out; ``top`` of them (None: all). ``among``: only these indices."""
        s = self.similarities(i)
        candidates = np.arange(len(self)) if among is None else np.unique(np.asarray(among, dtype=np.int64))
        candidates = candidates[candidates != i]
        if top is not None and top < len(candidates):
            scores = s[candidates]
            part = np.argpartition(-scores, top - 1)[:top]
            cut = scores[part].min()  # everything tied with the last one taken, so that ties order by index
            candidates = candidates[scores >= cut]
        order = np.lexsort((candidates, -s[candidates]))
        ranked = candidates[order][: top if top is not None else None]
        return [(int(j), float(s[j])) for j in ranked]

    def _bounds(self) -> Floats:
        """(N, HEAD_DIMS + 1): each vector's first HEAD_DIMS coordinates and the length of the rest. The dot
        product of two of them is an upper bound of the cosine (Cauchy-Schwarz on the rest), from half the work."""
        if self._bound_vectors is None:
            head = self.vectors[:, :HEAD_DIMS]
            rest = np.linalg.norm(self.vectors[:, HEAD_DIMS:], axis=1, keepdims=True)
            self._bound_vectors = np.ascontiguousarray(np.hstack([head, rest]), dtype=np.float32)
        return self._bound_vectors

    def pairs(self, threshold: float, share: tuple[int, int] = (0, 1)) -> Iterator[tuple[Ints, Ints, Floats]]:
        """Every pair (i < j) at least ``threshold`` similar, a tile at a time: (i, j, similarity) arrays.

        Blockwise, never an N x N matrix: a tile of photos against the photos after them, in buffers reused from
        tile to tile. A pair reaches the threshold through its hash alone (h >= threshold) or with its features
        (then f > threshold, since h < threshold). So each tile's hash distances are compared with the first
        bound and an upper bound of its cosines (the first HEAD_DIMS directions, and the rest's lengths: half
        the work of the cosines) with the second; only the pairs that pass get their cosine computed and the
        two combined. Where too many pass (collections whose whitened directions weigh about the same), the
        tile's cosines are computed whole instead. ``share``: (k, m): only the k-th of every m row blocks (for m
        threads at once: numpy's comparisons run on one core each)."""
        t = float(threshold)
        n = len(self)
        max_bits = int(np.floor(HASH_SCALE * (1.0 - t) + 1e-9)) if t > 0 else HASH_BITS
        feature_floor = np.float32(t - 1e-5)
        bounded = self.space is not None and self.space.dims > HEAD_DIMS + 16
        first = self._bounds() if bounded else self.vectors
        # one set of tile buffers, reused (no allocation, no page faults per tile), each tile contiguous in them
        size = BLOCK_ROWS * BLOCK_COLS
        f_buf, x_buf = np.empty(size, dtype=np.float32), np.empty(size, dtype=np.uint64)
        d_buf, m_buf, n_buf = np.empty(size, dtype=np.uint8), np.empty(size, dtype=bool), np.empty(size, dtype=bool)
        for number, rows in enumerate(_blocks(n, BLOCK_ROWS)):
            if number % share[1] != share[0]:
                continue
            rh = self.hashes[rows][:, None]
            for cols in _blocks(n - rows.start, BLOCK_COLS):
                cols = slice(cols.start + rows.start, cols.stop + rows.start)
                r, c = rows.stop - rows.start, cols.stop - cols.start
                f, x, d = f_buf[: r * c].reshape(r, c), x_buf[: r * c].reshape(r, c), d_buf[: r * c].reshape(r, c)
                m, near = m_buf[: r * c].reshape(r, c), n_buf[: r * c].reshape(r, c)
                np.matmul(first[rows], first[cols].T, out=f)
                np.bitwise_xor(rh, self.hashes[cols][None, :], out=x)
                np.bitwise_count(x, out=d)
                np.greater_equal(f, feature_floor, out=m)
                np.less_equal(d, max_bits, out=near)
                np.logical_or(m, near, out=m)
                if cols.start < rows.stop:  # a tile across the diagonal: only j > i
                    m &= np.arange(cols.start, cols.stop)[None, :] > np.arange(rows.start, rows.stop)[:, None]
                if not m.any():
                    continue
                ti, tj = np.divmod(np.flatnonzero(m), c)  # (far quicker than nonzero of a 2-d array)
                if not bounded:
                    cos = f[ti, tj]
                elif len(ti) > VERIFY_SHARE * r * c:
                    np.matmul(self.vectors[rows], self.vectors[cols].T, out=f)
                    cos = f[ti, tj]
                else:
                    cos = np.einsum("ij,ij->i", self.vectors[ti + rows.start], self.vectors[tj + cols.start])
                s = combine(np.clip(cos, -1.0, 1.0), hash_similarity(d[ti, tj]))
                keep = s >= np.float32(t)
                if keep.any():
                    yield ((ti[keep] + rows.start).astype(np.int64), (tj[keep] + cols.start).astype(np.int64),
                           s[keep])

    def groups(self, threshold: float = DEFAULT_THRESHOLD) -> list[Group]:
        """The groups of near-duplicates at ``threshold``: photos joined by chains of pairs at least that similar
        (single linkage), each with its weakest link; photos with no pair that similar are in no group. The
        surest groups first (highest weakest link), then by their first member."""
        workers = max(1, min(THREADS, os.cpu_count() or 1, (len(self) + BLOCK_ROWS - 1) // BLOCK_ROWS))
        if workers == 1:
            blocks = list(self.pairs(threshold))
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="duplicates") as pool:
                shares = pool.map(lambda k: list(self.pairs(threshold, (k, workers))), range(workers))
                blocks = [b for share in shares for b in share]
        if not blocks:
            return []
        ii = np.concatenate([b[0] for b in blocks])
        jj = np.concatenate([b[1] for b in blocks])
        ss = np.concatenate([b[2] for b in blocks])
        order = np.lexsort((jj, ii, -ss))  # strongest links first: Kruskal's maximum spanning forest
        parent: dict[int, int] = {}
        weakest: dict[int, float] = {}

        def root(x: int) -> int:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for k in order.tolist():
            a, b = root(int(ii[k])), root(int(jj[k]))
            if a != b:
                parent[b] = a
                weakest[a] = float(ss[k])  # links come strongest first: this one is the group's weakest so far
                weakest.pop(b, None)
        members: dict[int, list[int]] = {}
        for x in list(parent):
            members.setdefault(root(x), []).append(x)
        out = [Group(sorted(m), weakest[r]) for r, m in members.items()]
        out.sort(key=lambda g: (-g.similarity, g.members[0]))
        return out


# ---- which copy to keep ----
@dataclass(frozen=True)
class KeeperFacts:
    """What the keeper is chosen by."""

    path: str
    pixels: int  # width x height of the photo (oriented, full size); 0 when not known
    mtime_ns: int  # the file's modification time


def choose_keeper(photos: Sequence[KeeperFacts]) -> int:
    """The index of the copy to keep: the most pixels, then the newest (latest modification time), then the
    first path in sorted order."""
    if not photos:
        raise ValueError("no photos to choose from")
    best = min(range(len(photos)), key=lambda k: (-photos[k].pixels, -photos[k].mtime_ns, photos[k].path))
    return best
