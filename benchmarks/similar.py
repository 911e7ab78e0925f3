"""Similar photos and near-duplicates (`make bench`): quality on real photos, speed and size over 100,000 synthetic
library photos. Prints the tables and writes benchmarks/similar.md.

**Quality.** The near-duplicate set of benchmarks/similar_set.py (scikit-image's public-domain photos: each colour
photo in eight versions, and photos with no duplicate), split in two halves by source photo. Every photo goes
through what the app runs (core.similar_photos.gather: the Classifier's features and dHash) with the *test model*:
torchvision's ResNeXt-50 initialised with seed 0 and a head fitted to four photos (tests/support/helpers.py
make_checkpoint / fit_head; the head does not touch the features), so these figures are a floor, not what real
ImageNet weights give (``--weights FILE`` adds a run with other weights). `duplicates` is scored pairwise
(precision, recall, F1 over the pairs of photos it puts in one group) at its default threshold, which is chosen
on half A (the best F1 there; the middle of the widest range of thresholds that reach it, to a multiple of 0.05)
and reported on half B, which played no part in choosing it. imagehash's pHash and dHash are grouped the same way
(single linkage) at *their* best threshold for each half, chosen on the very half they are scored on (their
best case). `similar` is scored by precision@k: for each photo with versions, the share of its versions among the
k photos ranked first, k = its number of versions (ties in a ranking count by their expected share).

**Speed and size.** A library of 100,000 synthetic entries shaped as the app stores them (a 9 KB thumbnail, five
7x7 maps, a record, and a vector: 2,048 float16 values with a low-rank structure, planted near-copies and edited
versions, and 64-bit hashes), written straight into a library file the Library class created. Timed: reading
every vector of the model (``Library.stored_vectors``: one SELECT into one array), building the index (the
collection's statistics: the mean, the principal directions of 4,096 of them, the whitened 128-d vectors),
one `similar` query (a photo against all: the matrix-vector product, the hash distances, the top 20) and
`duplicates` (blockwise, never an N x N matrix), in a fresh process whose peak memory is read. The library's
growth per photo is measured by storing 2,000 real-shaped answers (Library.store) with and without vectors.
Checking that each photo file is unchanged (one stat per photo) is not timed here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from resnext_gui.core import similarity as S  # noqa: E402
from resnext_gui.core.library import Library, model_key  # noqa: E402
from resnext_gui.core.preprocess import Preprocessing  # noqa: E402

KEY = model_key("0" * 64, Preprocessing(232, 224))
GRID = np.round(np.arange(0.30, 0.9501, 0.005), 3)


# ---------------------------------------------------------------------------------------------------------
# quality
def test_model(folder: Path) -> Path:
    """The test suite's model: seeded torchvision init, a head fitted to scikit-image's four photos."""
    from PIL import Image
    from skimage import data

    from tests.support.helpers import fit_head, make_checkpoint

    photos = {}
    for name in ("chelsea", "astronaut", "coffee", "rocket"):
        photos[name] = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(photos[name])
    path = make_checkpoint(folder / "resnext50_seed0.pth")
    return fit_head(path, photos)


def single_linkage(sim: np.ndarray, t: float) -> np.ndarray:
    """Group labels of the connected components of ``sim >= t``."""
    n = len(sim)
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ii, jj = np.nonzero(np.triu(sim >= t, 1))
    for a, b in zip(ii.tolist(), jj.tolist()):
        parent[root(a)] = root(b)
    return np.array([root(x) for x in range(n)])


def labels_of(groups: list[S.Group], n: int) -> np.ndarray:
    labels = np.arange(n)
    for g in groups:
        labels[g.members] = g.members[0]
    return labels


def pairwise(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 over the pairs (i < j) put in one group."""
    iu = np.triu_indices(len(labels), 1)
    said = (labels[:, None] == labels[None, :])[iu]
    real = truth[iu]
    tp = int((said & real).sum())
    precision = tp / max(int(said.sum()), 1)
    recall = tp / max(int(real.sum()), 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def precision_at_k(sim: np.ndarray, truth: np.ndarray) -> float:
    """Mean over photos with versions of the share of versions among the first k ranked (k = their number);
    a tie across the cut counts by its expected share."""
    scores = []
    for i in range(len(sim)):
        rel = truth[i].copy()
        rel[i] = False
        k = int(rel.sum())
        if k == 0:
            continue
        s = np.delete(sim[i], i)
        r = np.delete(rel, i)
        cut = np.sort(s)[::-1][k - 1]
        above = s > cut
        tied = s == cut
        hits = r[above].sum() + (k - above.sum()) * r[tied].mean()
        scores.append(hits / k)
    return float(np.mean(scores))


def best_threshold(score_at) -> tuple[float, float]:
    """(threshold, F1): the best F1 on GRID, at the middle of the widest run of thresholds reaching it."""
    f1 = np.array([score_at(t) for t in GRID])
    best = f1.max()
    runs, start = [], None
    for k, hit in enumerate(np.isclose(f1, best)):
        if hit and start is None:
            start = k
        if not hit and start is not None:
            runs.append((start, k - 1))
            start = None
    if start is not None:
        runs.append((start, len(f1) - 1))
    lo, hi = max(runs, key=lambda r: r[1] - r[0])
    return float(GRID[(lo + hi) // 2]), float(best)


def hash_matrix(hashes: np.ndarray) -> np.ndarray:
    return 1.0 - S.hash_distance(hashes[:, None], hashes[None, :]).astype(np.float64) / 64.0


def measure_quality(weights: Path, folder: Path) -> dict:
    import imagehash
    import similar_set
    from PIL import Image

    from resnext_gui.core.classifier import Classifier
    from resnext_gui.core.similar_photos import gather

    photos = similar_set.build(folder / "set")
    clf = Classifier(weights, device="cpu")
    found = gather([p.path for p in photos], clf)
    assert not found.failures and len(found.vectors) == len(photos)
    feats = np.stack([v.features for v in found.vectors])
    ours_hash = np.array([v.dhash for v in found.vectors], dtype=np.uint64)
    dh, ph = [], []
    for p in photos:
        with Image.open(p.path) as im:
            dh.append(int(str(imagehash.dhash(im)), 16))
            ph.append(int(str(imagehash.phash(im)), 16))
    dh_arr, ph_arr = np.array(dh, dtype=np.uint64), np.array(ph, dtype=np.uint64)
    groups_of = np.array([p.group or f"single:{p.source}" for p in photos])

    def part(which: str | None) -> dict:
        idx = np.array([k for k, p in enumerate(photos) if which is None or p.fold == which])
        truth = groups_of[idx][:, None] == groups_of[idx][None, :]
        index = S.SimilarityIndex(feats[idx], ours_hash[idx])
        ours = np.stack([index.similarities(i) for i in range(len(idx))]).astype(np.float64)
        features_only = (index.vectors @ index.vectors.T).astype(np.float64)
        out = {"photos": len(idx), "pairs": int(np.triu(truth, 1).sum()), "ours_sim": ours, "truth": truth,
               "index": index, "idx": idx}
        out["ours_curve"] = {float(t): pairwise(labels_of(index.groups(float(t)), len(idx)), truth)[2] for t in GRID}
        for name, sim in (("dHash", hash_matrix(dh_arr[idx])), ("pHash", hash_matrix(ph_arr[idx])),
                          ("features alone", features_only)):
            thresholds = np.unique(sim[np.triu_indices(len(idx), 1)])
            scored = [(pairwise(single_linkage(sim, t), truth), t) for t in thresholds]
            (p, r, f), t = max(scored, key=lambda x: (x[0][2], -x[1]))
            out[name] = {"threshold": float(t), "precision": p, "recall": r, "f1": f,
                         "p@k": precision_at_k(sim, truth)}
        out["ours_p@k"] = precision_at_k(ours, truth)
        return out

    a, b, whole = part("A"), part("B"), part(None)
    chosen, best_a = best_threshold(lambda t: a["ours_curve"][float(t)])
    chosen = round(round(chosen / 0.05) * 0.05, 2)

    def ours_at(res: dict, t: float) -> dict:
        p, r, f = pairwise(labels_of(res["index"].groups(t), res["photos"]), res["truth"])
        return {"threshold": t, "precision": p, "recall": r, "f1": f, "p@k": res["ours_p@k"]}

    # the figure each edit gets against its original, over the whole set
    sim, idx = whole["ours_sim"], whole["idx"]
    pos = {(photos[k].source, photos[k].version): n for n, k in enumerate(idx)}
    per_version = {}
    for version in similar_set.VERSIONS[1:]:
        vals = [sim[pos[(src, version)], pos[(src, "original")]] for src in similar_set.COLOUR]
        per_version[version] = (float(np.median(vals)), float(np.min(vals)), float(np.max(vals)))
    iu = np.triu_indices(len(idx), 1)
    unrelated = sim[iu][~whole["truth"][iu]]
    return {
        "photos": len(photos), "fold_sizes": (a["photos"], b["photos"]), "pairs": (a["pairs"], b["pairs"]),
        "chosen": chosen, "best_f1_a": best_a, "default": S.DEFAULT_THRESHOLD,
        "rows": {fold: {"ours": ours_at(res, S.DEFAULT_THRESHOLD),
                        **{m: res[m] for m in ("dHash", "pHash", "features alone")}}
                 for fold, res in (("B", b), ("A", a), ("whole", whole))},
        "per_version": per_version,
        "unrelated": (float(np.median(unrelated)), float(np.quantile(unrelated, 0.99)), float(unrelated.max())),
        "weights": str(weights),
    }


# ---------------------------------------------------------------------------------------------------------
# speed and size
def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(features (n, 2048) float16, hashes (n,) uint64, planted pairs): pooled-activation-like vectors (positive:
    a common profile, 256 latent directions whose variances fall off as 1/rank, as photo features' do, and a
    little noise); 2 % of the photos are near-copies of another (a little noise, 0-4 hash bits changed), 1 %
    edited versions (more noise, 6-16 bits)."""
    rng = np.random.default_rng(seed)
    profile = rng.gamma(2.0, 0.05, 2048).astype(np.float32)  # the common direction
    scales = (0.6 / np.sqrt(np.arange(1, 257))).astype(np.float32)
    loadings = (rng.standard_normal((256, 2048)) / np.sqrt(2048)).astype(np.float32) * scales[:, None]
    feats = np.empty((n, 2048), dtype=np.float16)
    for start in range(0, n, 8192):
        m = min(8192, n - start)
        z = rng.standard_normal((m, 256)).astype(np.float32)
        block = profile + z @ loadings + rng.standard_normal((m, 2048)).astype(np.float32) * 0.003
        feats[start:start + m] = np.maximum(block, 0)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).view(np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(np.uint64)
    copies = rng.choice(n, size=(int(n * 0.03), 2), replace=False)
    for k, (src, dst) in enumerate(copies.tolist()):
        edited = k >= int(n * 0.02)
        noise = 0.01 if edited else 0.002
        feats[dst] = np.maximum(feats[src].astype(np.float32) + rng.standard_normal(2048).astype(np.float32) * noise, 0)
        bits = rng.choice(64, int(rng.integers(6, 17) if edited else rng.integers(0, 5)), replace=False)
        hashes[dst] = hashes[src] ^ np.uint64(sum(1 << int(b) for b in bits))
    return feats, hashes, len(copies)


def write_library(path: Path, n: int) -> tuple[int, float]:
    """A library of ``n`` synthetic entries, written in one transaction; (bytes on disk, seconds to write)."""
    feats, hashes, _ = synthetic(n)
    rng = np.random.default_rng(1)
    Library(path).close()  # the schema, as the app creates it
    start = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    top = json.dumps([{"rank": r, "index": r, "label": f"class {r}", "prob": 0.1} for r in range(1, 6)])
    record = json.dumps({"ok": True, "top": json.loads(top), "device": "cpu", "ms": 95.0})
    signed = hashes.view(np.int64)
    for i in range(n):
        cur = conn.execute(
            "INSERT INTO photos (path, model_key, size, mtime_ns, content_hash, top, maps, maps_shape, crop, image_w, "
            "image_h, thumbnail, classified_at, record, search_text) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (os.fsencode(f"/photos/{i // 1000:03}/IMG_{i:06}.jpg"), KEY, 3_000_000 + i, 1_700_000_000_000_000_000 + i,
             f"{i:032x}", top, rng.bytes(245), "5,7,7", "[0, 0, 4000, 3000]", 4000, 3000, rng.bytes(9200),
             1.7e9 + i, record, f"img_{i:06}.jpg\nclass 1"))
        conn.execute("INSERT INTO vectors (photo, dhash, features) VALUES (?, ?, ?)",
                     (cur.lastrowid, int(signed[i]), feats[i].astype("<f2").tobytes()))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size, time.perf_counter() - start


def growth_per_photo(folder: Path, n: int) -> tuple[float, float]:
    """(bytes a photo's vector adds to the library, bytes a photo takes in all), storing ``n`` real-shaped answers."""
    from PIL import Image
    from skimage import data

    from resnext_gui.core.classifier import Prediction, TopClass
    from resnext_gui.core.library import thumbnail_bytes

    pictures = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in ("chelsea", "astronaut", "coffee")]
    sizes = {}
    for with_vectors in (False, True):
        rng = np.random.default_rng(0)
        where = folder / f"growth-{with_vectors}"
        where.mkdir()
        with Library(where / "library.sqlite3") as lib:
            for i in range(n):
                photo = where / f"IMG_{i:05}.jpg"
                photo.write_bytes(rng.bytes(2048))
                pic = pictures[i % 3]
                x, y = int(rng.integers(0, pic.width // 3)), int(rng.integers(0, pic.height // 3))
                thumb = thumbnail_bytes(pic.crop((x, y, x + 2 * pic.width // 3, y + 2 * pic.height // 3)))
                top = [TopClass(r + 1, r, f"class {r}", 0.2) for r in range(5)]
                pred = Prediction(path=str(photo), ok=True, top=top, cams=rng.random((5, 7, 7), dtype=np.float32),
                                  crop=(0.0, 0.0, 4000.0, 3000.0), image_size=(4000, 3000), ms=95.0)
                if with_vectors:
                    pred.features = rng.gamma(0.5, 0.05, 2048).astype(np.float16)
                    pred.dhash = int(rng.integers(0, 2**63))
                lib.store(photo, KEY, pred, thumbnail=thumb)
        sizes[with_vectors] = (where / "library.sqlite3").stat().st_size
    return (sizes[True] - sizes[False]) / n, sizes[True] / n


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM: its own, where ru_maxrss would count the parent's from before
    the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def duplicates_child(library: str) -> None:
    """In a fresh process: load, index, one query and `duplicates` over the library; JSON on stdout. Each step's
    wall time and CPU time (all threads): on a busy machine the CPU time says more about a quiet one."""
    clocks = []

    def tick() -> None:
        clocks.append((time.perf_counter(), time.process_time()))

    tick()
    with Library(library) as lib:
        stored = lib.stored_vectors(KEY)
    tick()
    index = S.SimilarityIndex(stored.features, stored.hashes)
    n = len(stored.paths)
    del stored
    tick()
    rng = np.random.default_rng(7)
    queries, query_cpu = [], []
    for i in rng.choice(n, 21, replace=False).tolist():
        q0, c0 = time.perf_counter(), time.process_time()
        index.most_similar(i, S.DEFAULT_TOP)
        queries.append(time.perf_counter() - q0)
        query_cpu.append(time.process_time() - c0)
    tick()
    groups = index.groups(S.DEFAULT_THRESHOLD)
    tick()
    wall = [b[0] - a[0] for a, b in zip(clocks, clocks[1:])]
    cpu = [b[1] - a[1] for a, b in zip(clocks, clocks[1:])]
    print(json.dumps({"photos": n, "load_s": wall[0], "index_s": wall[1], "duplicates_s": wall[3],
                      "load_cpu_s": cpu[0], "index_cpu_s": cpu[1], "duplicates_cpu_s": cpu[3],
                      "query_ms": statistics.median(queries[1:]) * 1000,
                      "query_cpu_ms": statistics.median(query_cpu[1:]) * 1000,
                      "groups": len(groups), "grouped": sum(len(g.members) for g in groups), "peak_mib": peak_mib(),
                      "load_average": os.getloadavg()[0]}))


def hash_cost() -> tuple[float, float]:
    """ms of a dHash on a 12-MP photo decoded as the app decodes a JPEG (at reduced size), and at full size."""
    from PIL import Image
    from skimage import data

    big = Image.fromarray(data.coffee()).resize((4000, 3000), Image.Resampling.BICUBIC)
    small = big.resize((928, 696), Image.Resampling.BILINEAR)  # what Pillow's draft gives a 12-MP JPEG here

    def ms(im) -> float:
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            S.dhash(im)
            runs.append(time.perf_counter() - t)
        return statistics.median(runs) * 1000

    return ms(small), ms(big)


# ---------------------------------------------------------------------------------------------------------
def cpu_line() -> str:
    from bench import cpu_features

    return f"{platform.processor() or platform.machine()}, CPU features {cpu_features()}"


def quality_lines(q: dict, label: str) -> list[str]:
    def row(name: str, r: dict, note: str = "") -> str:
        return (f"| {name} | {r['threshold']:.3f}{note} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                f"{r['p@k']:.3f} |")

    a, b = q["fold_sizes"]
    lines = [f"### {label}", "",
             f"{q['photos']} photos: half A {a} photos ({q['pairs'][0]} near-duplicate pairs), half B {b} "
             f"({q['pairs'][1]} pairs). Weights: {q['weights_note']}.", "",
             f"Default threshold chosen on half A: {q['chosen']:.2f} (F1 {q['best_f1_a']:.3f} there); the code's "
             f"`DEFAULT_THRESHOLD`: {q['default']:.2f}" + ("" if abs(q["chosen"] - q["default"]) < 1e-9 else
                                                          " (they differ: rerun, and update the default)") + ".", ""]
    for fold, title in (("B", "half B (held out: the default was not chosen on it)"),
                        ("A", "half A (the default was chosen here)"), ("whole", "the whole set")):
        r = q["rows"][fold]
        lines += [f"**{title}**", "", "| method | threshold | precision | recall | F1 | similar p@k |",
                  "|---|---:|---:|---:|---:|---:|",
                  row("resnext-gui `duplicates` / `similar`", r["ours"], " (default)"),
                  row("imagehash dHash (1 - bits/64)", r["dHash"], " (its best here)"),
                  row("imagehash pHash (1 - bits/64)", r["pHash"], " (its best here)"),
                  row("features alone (centred, whitened cosine)", r["features alone"], " (its best here)"), ""]
    lines += ["**The figure each edit gets against its original** (the whole set; median, lowest, highest)", "",
              "| version | median | lowest | highest |", "|---|---:|---:|---:|"]
    for version, (med, lo, hi) in q["per_version"].items():
        lines.append(f"| {version} | {med:.2f} | {lo:.2f} | {hi:.2f} |")
    med, p99, top = q["unrelated"]
    lines += [f"| pairs of unrelated photos | {med:.2f} | 99th percentile {p99:.2f} | {top:.2f} |", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=100_000, help="synthetic library photos (default 100,000)")
    ap.add_argument("--weights", metavar="FILE", help="also measure quality with these weights (e.g. the official)")
    ap.add_argument("--quick", action="store_true", help="5,000 synthetic photos, printed only (a check that it runs)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/similar.md alone")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--duplicates-child", metavar="LIBRARY", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.duplicates_child:
        duplicates_child(args.duplicates_child)
        return 0
    n = 5000 if args.quick else args.photos
    out = ["# Similar photos and near-duplicates", "",
           f"Machine: {cpu_line()}; Python {platform.python_version()}, numpy {np.__version__}, SQLite "
           f"{sqlite3.sqlite_version}. `python benchmarks/similar.py{' --quick' if args.quick else ''}` (see its "
           "docstring for what is measured). Timings from a shared machine are indicative only.", ""]
    with tempfile.TemporaryDirectory(prefix="resnext-similar-bench-") as tmp:
        folder = Path(tmp)
        if not args.skip_quality:
            runs = [(test_model(folder), "the test model: seeded torchvision init, fitted head (a floor)")]
            if args.weights:
                runs.append((Path(args.weights), f"{args.weights}"))
            out += ["## Quality: the near-duplicate set (benchmarks/similar_set.py)", ""]
            for k, (weights, note) in enumerate(runs):
                q = measure_quality(weights, folder / f"q{k}")
                q["weights_note"] = note
                out += quality_lines(q, "Test model" if k == 0 else f"Weights {weights.name}")
                print("\n".join(out), flush=True)
        if not args.skip_speed:
            lib_path = folder / "library.sqlite3"
            size, write_s = write_library(lib_path, n)
            child = subprocess.run([sys.executable, __file__, "--duplicates-child", str(lib_path)], capture_output=True,
                                   text=True, check=True, cwd=REPO)
            r = json.loads(child.stdout)
            growth_n = 200 if args.quick else 2000
            grow, per_photo = growth_per_photo(folder, growth_n)
            fast, full = hash_cost()
            out += ["## Speed and size", "",
                    f"{r['photos']:,} synthetic library photos (written in {write_s:.0f} s, {size / 2**30:.2f} GiB).", "",
                    f"Load average at the end: {r['load_average']:.1f} on {os.cpu_count()} cores. Wall time, and CPU "
                    "time of all the process's threads (on a busy machine the wall time stretches; the CPU time "
                    "is closer to what a quiet one needs: divide by the threads that ran, 2 for `duplicates`).", "",
                    "| what | wall | CPU | limit |", "|---|---:|---:|---:|",
                    f"| one `similar` query: a photo against all {r['photos']:,} (median of 20) | {r['query_ms']:.1f} ms | "
                    f"{r['query_cpu_ms']:.1f} ms | 100 ms |",
                    f"| before the first query, once per collection: read every vector from the library (one SELECT "
                    f"into one array) | {r['load_s']:.2f} s | {r['load_cpu_s']:.2f} s | |",
                    f"| before the first query, once per collection: the index (statistics, whitened 128-d vectors) | "
                    f"{r['index_s']:.2f} s | {r['index_cpu_s']:.2f} s | |",
                    f"| `duplicates` over all {r['photos']:,}, after the index: {r['groups']:,} groups, "
                    f"{r['grouped']:,} photos | {r['duplicates_s']:.1f} s | {r['duplicates_cpu_s']:.1f} s | |",
                    f"| `duplicates` in all: read + index + groups | "
                    f"{r['load_s'] + r['index_s'] + r['duplicates_s']:.1f} s | "
                    f"{r['load_cpu_s'] + r['index_cpu_s'] + r['duplicates_cpu_s']:.1f} s | 60 s |",
                    f"| peak memory of that process (read, index, one query, duplicates) | {r['peak_mib']:.0f} MiB | | "
                    "1,024 MiB |",
                    f"| library growth per photo for its vector ({growth_n:,} answers stored with and without) | "
                    f"{grow:,.0f} bytes | | 5,000 bytes |",
                    f"| library size per photo in all (thumbnail, maps, record, vector) | {per_photo / 1024:.1f} KiB | | |",
                    f"| dHash of a 12-MP photo as a JPEG is decoded (at reduced size, 928 x 696) / at full size | "
                    f"{fast:.2f} / {full:.1f} ms | | |",
                    ""]
    text = "\n".join(out)
    print(text)
    if not (args.quick or args.no_write):
        (HERE / "similar.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
