"""`classify --ray` benchmark (`make bench`): a two-node Ray cluster on this machine against local classify.

The cluster is the test suite's loopback cluster (tests/support/cluster.py): a head and a second node of one CPU
each, in their own network namespace (root only), sharing this machine's cores. Measured:

1. wall time of the whole command for the same N 12-megapixel JPEGs: local `classify` (all cores, one process)
   and `classify --ray` on the two single-CPU nodes; the ratio is the cluster's overhead on one machine;
2. a single-CPU node's steady throughput (half the two nodes', from the records' arrival times) and the driver's
   CPU time per photo (from the two small-photo runs): the scaling table (nodes × photos/s, until one driver core
   is the limit) is computed from these two;
3. the driver's peak memory (VmHWM) for 200 and for 2,000 small photos: it must not grow with the list.

`--quick`: a few photos, printed only (a check that it runs). Without --quick it writes benchmarks/cluster.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench import cpu_features, weights_path  # noqa: E402

from tests.support.cluster import LoopbackCluster, cannot_run  # noqa: E402


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> Path:
    """``n`` JPEGs of ``size`` made from scikit-image's photos (four pictures, each file its own bytes)."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    pictures = [Image.fromarray(getattr(data, name)()).convert("RGB").resize(size, Image.Resampling.BICUBIC)
                for name in ("chelsea", "astronaut", "coffee", "rocket")]
    for i in range(n):
        pictures[i % 4].save(folder / f"IMG_{i:05}.jpg", quality=90 - i % 7)  # another quality: another file
    return folder


class Measured:
    """A command run to its end: wall time, record arrival times, its peak memory and CPU seconds (the kernel's
    own account of that one process, from wait4)."""

    def __init__(self, command: list[str], start: subprocess.Popen | None = None, **popen) -> None:
        t0 = time.perf_counter()
        proc = start or subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
        reader.start()
        self.arrivals = []
        for line in proc.stdout:
            self.arrivals.append(time.perf_counter())
            if '"ok": true' not in line:
                raise RuntimeError(f"a photo failed: {line.strip()}")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        self.wall_s = time.perf_counter() - t0
        self.peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
        self.cpu_s = usage.ru_utime + usage.ru_stime
        reader.join()
        proc.stdout.close()
        proc.stderr.close()
        if code != 0:
            raise RuntimeError(f"{' '.join(command[:6])}... exited {code}: {''.join(err)[-2000:]}")

    def rate(self) -> float:
        """Photos per second once the first records are out (the model loaded, the pipeline full). A cluster's
        records come a chunk at a time: those that came with the first count as its start, not its rate."""
        first = [t for t in self.arrivals if t - self.arrivals[0] < 0.05]
        span = self.arrivals[-1] - self.arrivals[0]
        return (len(self.arrivals) - len(first)) / span if span > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200, help="12-MP photos for the wall-time comparison (default 200)")
    ap.add_argument("--small", type=int, nargs=2, default=(200, 2000), metavar=("FEW", "MANY"),
                    help="small photos for the driver's memory (default 200 2000)")
    ap.add_argument("--quick", action="store_true", help="10 12-MP photos, 20 and 100 small ones; printed only")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/cluster.md alone")
    args = ap.parse_args(argv)
    why = cannot_run()
    if why:
        print(f"benchmarks/cluster.py: skipped: {why}")
        return 0
    big_n, (few, many) = (10, (20, 100)) if args.quick else (args.photos, tuple(args.small))
    weights, described = weights_path()
    app = [sys.executable, "-m", "resnext_gui", "classify", "--weights", str(weights)]
    with tempfile.TemporaryDirectory(prefix="resnext-cluster-bench-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache"), "HOME": str(root / "home")}
        (root / "home").mkdir()
        big = make_photos(root / "big", big_n, (4000, 3000))
        small_few = make_photos(root / "few", few, (160, 120))
        small_many = make_photos(root / "many", many, (160, 120))
        warm = make_photos(root / "warm", 2, (160, 120))

        Measured([*app, str(warm)], env=env, cwd=root)  # OpenVINO's compiled network cached for every run below
        local = Measured([*app, str(big)], env=env, cwd=root)

        cluster = LoopbackCluster(root / "home", {"XDG_CACHE_HOME": str(root / "cache")})
        try:
            cluster.start(2)
            ray = [*app, "--ray", cluster.address]

            def on_cluster(folder: Path) -> Measured:
                command = [*ray, str(folder)]
                return Measured(command, start=cluster.driver(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                               text=True, cwd=root))

            on_cluster(warm)
            two = on_cluster(big)
            mem_few = on_cluster(small_few)
            mem_many = on_cluster(small_many)
        finally:
            cluster.close()

    driver_ms = (mem_many.cpu_s - mem_few.cpu_s) * 1000 / (many - few)  # the driver's CPU per more photo (one core)
    if driver_ms <= 0:  # lost in the start-up's own variation: too few photos to tell
        driver_ms = float("nan")
    driver_limit = 1000 / driver_ms if driver_ms > 0 else float("inf")
    per_node = two.rate() / 2  # each node has one of this machine's cores to itself, more or less
    rows = []
    for nodes in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        rate = min(nodes * per_node, driver_limit)
        rows.append(f"| {nodes} | {rate:.1f} | {'the driver is the limit' if nodes * per_node >= driver_limit else ''} |")
    lines = [
        "# classify on a Ray cluster",
        "",
        f"Machine: {platform.processor() or platform.machine()}, CPU features {cpu_features()}; Python "
        f"{platform.python_version()}, Ray {__import__('ray').__version__}. Weights: {described}. "
        f"`python benchmarks/cluster.py{' --quick' if args.quick else ''}`: a loopback cluster of two single-CPU "
        "nodes on this one machine (tests/support/cluster.py).",
        "",
        "| what | value |",
        "|---|---:|",
        f"| local `classify`, {big_n} 12-MP JPEGs, wall time of the command | {local.wall_s:.1f} s |",
        f"| `classify --ray`, two single-CPU nodes, the same photos, wall time | {two.wall_s:.1f} s |",
        f"| ratio (target at most 1.25) | {two.wall_s / local.wall_s:.2f} |",
        f"| local, steady rate | {local.rate():.1f} photos/s |",
        f"| two nodes, steady rate | {two.rate():.1f} photos/s |",
        f"| so one single-CPU node (half the two nodes' rate) | {per_node:.2f} photos/s |",
        f"| the driver's CPU per photo (one core: {many} photos' less {few} photos', over the difference) | {driver_ms:.2f} ms |",
        f"| so one driver keeps up with | {driver_limit:.0f} photos/s |",
        f"| driver's peak memory, {few} small photos | {mem_few.peak_mb:.0f} MB |",
        f"| driver's peak memory, {many} small photos | {mem_many.peak_mb:.0f} MB |",
        f"| growth (target at most 20 MB) | {mem_many.peak_mb - mem_few.peak_mb:+.1f} MB |",
        "",
        "Scaling, computed: nodes like this one's single CPU × its rate, until the driver is the limit "
        f"(at about {driver_limit / per_node:.0f} such nodes).",
        "",
        "| nodes | photos/s | |",
        "|---:|---:|---|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not (args.quick or args.no_write):
        (HERE / "cluster.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
