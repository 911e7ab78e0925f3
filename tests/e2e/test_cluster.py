"""`classify --ray` on a real two-node Ray cluster (loopback only, its own namespaces): local classify's records, in
input order, through a killed worker process, a killed node and a killed driver; clear refusals."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.cluster import LoopbackCluster, cannot_run
from tests.support.helpers import copies, make_mixed_folder, run_cli

pytestmark = pytest.mark.slow
CANNOT = cannot_run()
HANG_GUARD = 300  # seconds: a run that takes longer hangs (a guard, not a timing)


def need_cluster() -> None:
    if CANNOT:
        if os.environ.get("CI") and os.geteuid() == 0:  # CI installs what it needs: there it is a failure
            pytest.fail(CANNOT)
        pytest.skip(CANNOT)


def need_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("Ray is not installed: pip install -e '.[test,cluster]' (make test does)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, model_cache):
    need_cluster()
    c = LoopbackCluster(tmp_path_factory.mktemp("cluster-home"), {"XDG_CACHE_HOME": str(model_cache)})
    try:
        yield c.start(2)
    finally:
        c.close()
    assert not c.processes(), "the cluster's processes are gone"


@pytest.fixture(scope="module")
def album(tmp_path_factory, photos):
    """40 photos: five chunks of eight, so both nodes have work queued when the first records are printed. Each
    file its own (a text chunk with its number; the same pixels as its source), so that the results library,
    which knows a photo by its content, answers none of them from another's answer."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    folder = tmp_path_factory.mktemp("album")
    for i, path in enumerate(copies(list(photos.values()), 40, folder)):
        info = PngInfo()
        info.add_text("copy", str(i))
        with Image.open(path) as image:
            image.load()
        image.save(path, pnginfo=info)
    return folder


@pytest.fixture(scope="module")
def album_here(album, checkpoint):
    """Local classify's records of the album: what every cluster run of it must give."""
    code, records = local(checkpoint, album)
    assert code == 0 and len(records) == 40
    return records


def same(records):
    """The records as local classify's are compared: all fields but timing, device and whether the library gave it."""
    return [{k: v for k, v in r.items() if k not in ("ms", "device", "cached")} for r in records]


def parse(stdout: str):
    return [json.loads(line) for line in stdout.splitlines()]


def local(checkpoint, *paths):
    r = run_cli("classify", "--weights", checkpoint, *paths, timeout=HANG_GUARD)
    return r.returncode, parse(r.stdout)


def on_cluster(cluster, checkpoint, *args, cwd, stdin=None):
    command = [sys.executable, "-m", "resnext_gui", "classify", "--ray", cluster.address, "--weights", str(checkpoint),
               *map(str, args)]
    proc = cluster.driver(*command, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, text=True)
    out, err = proc.communicate(stdin, timeout=HANG_GUARD)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


class Started:
    """A driver reading its photos from standard input, ``first`` of them at once and the rest only when ``after``
    has acted (so the run cannot end before the test acts, however loaded the machine): ``after(n, act)`` acts once
    n records are printed, then sends the rest and ends the list."""

    def __init__(self, cluster, checkpoint, photos, *args, cwd, first=16):
        command = [sys.executable, "-m", "resnext_gui", "classify", "--ray", cluster.address, "--weights",
                   str(checkpoint), *map(str, args), "--files-from", "-"]
        self.proc = cluster.driver(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE,
                                   cwd=cwd, text=True)
        self.rest = [str(p) for p in photos[first:]]
        self.proc.stdin.write("".join(f"{p}\n" for p in photos[:first]))
        self.proc.stdin.flush()
        self.err: list[str] = []
        self.reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self.reader.start()
        self.lines: list[str] = []
        self.guard = threading.Timer(HANG_GUARD, self.proc.kill)
        self.guard.start()

    def after(self, n: int, act) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if len(self.lines) == n:
                act()
                break
        try:
            self.proc.stdin.write("".join(f"{p}\n" for p in self.rest))
            self.proc.stdin.close()
        except OSError:  # it stopped, as asked
            pass

    def finish(self) -> subprocess.CompletedProcess:
        self.lines += list(self.proc.stdout)
        code = self.proc.wait()
        self.guard.cancel()
        self.reader.join(30)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return subprocess.CompletedProcess(self.proc.args, code, "".join(self.lines), "".join(self.err))


def in_order(album_here):
    """The album's photos in the order local classify gave them."""
    return [r["path"] for r in album_here]


# ---- the same records -------------------------------------------------------------------------------------------

def test_the_cluster_gives_local_records_in_input_order(cluster, checkpoint, photos, tmp_path):
    mixed = tmp_path / "mixed"
    make_mixed_folder(mixed, photos["chelsea"])
    paths = [photos["coffee"], mixed, photos["rocket_jpg"], tmp_path / "gone.png"]
    code, expected = local(checkpoint, *paths)
    r = on_cluster(cluster, checkpoint, *paths, cwd=tmp_path)
    assert (r.returncode, code) == (1, 1), r.stderr  # the broken files fail, as they do here
    assert "Traceback" not in r.stderr
    got = parse(r.stdout)
    assert same(got) == same(expected)
    assert [g["path"] for g in got] == [str(photos["coffee"]), *sorted(g["path"] for g in got[1:-2]),
                                        str(photos["rocket_jpg"]), str(tmp_path / "gone.png")]
    assert sum(not g["ok"] for g in got) == 7  # six broken files in the folder, and the missing one
    assert "photos/s" in r.stderr


def test_relative_paths_and_a_list_on_standard_input(cluster, checkpoint, photos, tmp_path):
    """The nodes read relative paths as the driver does, and --files-from - streams the list."""
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(photos["astronaut"].read_bytes())
    r = on_cluster(cluster, checkpoint, "a.png", "--files-from", "-", cwd=tmp_path, stdin=f"b.png\n\n{photos['coffee']}\n")
    assert r.returncode == 0, r.stderr
    code, expected = local(checkpoint, tmp_path / "a.png", tmp_path / "b.png", photos["coffee"])
    got = parse(r.stdout)
    assert [g["path"] for g in got] == ["a.png", "b.png", str(photos["coffee"])]
    for g, e in zip(got, expected):
        g["path"] = e["path"]
    assert same(got) == same(expected)


def test_maps_drawn_on_the_nodes_are_saved_as_here(cluster, checkpoint, photos, tmp_path):
    """--cam-dir: the nodes draw each photo's files, the driver names and saves them: the names, pictures and maps
    of a local run (two photos of one name: name and name-2)."""
    import numpy as np
    from PIL import Image

    (tmp_path / "sub").mkdir()
    twin = tmp_path / "sub" / "coffee.png"
    twin.write_bytes(photos["chelsea"].read_bytes())
    inputs = [photos["coffee"], twin]
    here = run_cli("classify", "--weights", checkpoint, "--cam-dir", tmp_path / "here", *inputs)
    there = on_cluster(cluster, checkpoint, "--cam-dir", tmp_path / "there", *inputs, cwd=tmp_path)
    assert here.returncode == there.returncode == 0, there.stderr
    got, expected = parse(there.stdout), parse(here.stdout)
    assert [Path(g["cam_png"]).name for g in got] == ["coffee.cam.png", "coffee-2.cam.png"]
    for g, e in zip(got, expected):
        assert Path(g["cam_png"]).parent == tmp_path / "there"
        assert np.allclose(np.load(g["cam_npy"]), np.load(e["cam_npy"]), atol=1e-5)
        with Image.open(g["cam_png"]) as a, Image.open(e["cam_png"]) as b:
            assert a.size == b.size and a.text == b.text
            assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1
    assert same([{k: v for k, v in g.items() if k not in ("cam_png", "cam_npy")} for g in got]) == \
        same([{k: v for k, v in e.items() if k not in ("cam_png", "cam_npy")} for e in expected])


def test_a_photo_a_node_cannot_see_is_its_own_error_naming_the_node(cluster, checkpoint, photos, tmp_path):
    """A photo the driver sees and the nodes do not (storage not shared as it should be): its own error record,
    naming the node and what is wrong; the other photos are answered as here."""
    hidden = tmp_path / "not shared"
    hidden.mkdir()
    (hidden / "cat.png").write_bytes(photos["chelsea"].read_bytes())
    cluster.hide_from_nodes(hidden)
    try:
        r = on_cluster(cluster, checkpoint, photos["coffee"], hidden / "cat.png", photos["rocket_jpg"], cwd=tmp_path)
    finally:
        cluster.show_to_nodes(hidden)
    assert r.returncode == 1, r.stderr  # one photo without an answer
    got = parse(r.stdout)
    assert [g["path"] for g in got] == [str(photos["coffee"]), str(hidden / "cat.png"), str(photos["rocket_jpg"])]
    assert not got[1]["ok"] and re.fullmatch(
        rf"{re.escape(str(hidden / 'cat.png'))} does not exist on node 127\.0\.0\.1 \(.+, node [0-9a-f]{{8}}\): "
        "every node must see the photos at the same path", got[1]["error"])
    code, expected = local(checkpoint, photos["coffee"], photos["rocket_jpg"])
    assert code == 0 and same([got[0], got[2]]) == same(expected)


# ---- nothing lost -----------------------------------------------------------------------------------------------

def test_a_killed_worker_process(cluster, checkpoint, album, album_here, tmp_path):
    before = set(cluster.workers())  # an earlier run's, perhaps still on their way out: not this run's
    run = Started(cluster, checkpoint, in_order(album_here), cwd=tmp_path)
    killed = []

    def kill_a_worker():
        workers = [pid for pid in cluster.workers() if pid not in before]
        assert workers, "the classifying actors run as ray::NodeClassifier processes"
        os.kill(workers[0], signal.SIGKILL)
        killed.append(workers[0])

    run.after(1, kill_a_worker)
    r = run.finish()
    assert killed
    assert r.returncode == 0, r.stderr
    assert "run again" in r.stderr, r.stderr  # the dead worker's photos were sent again
    got = parse(r.stdout)
    assert same(got) == same(album_here)  # every photo once, in order, as here


def test_a_rerun_after_the_driver_was_killed_computes_only_the_rest(cluster, checkpoint, album, album_here, tmp_path):
    library = tmp_path / "library.sqlite3"
    run = Started(cluster, checkpoint, in_order(album_here), "--library-path", library, cwd=tmp_path)
    run.after(8, run.proc.kill)  # SIGKILL once a chunk's records are out
    first = run.finish()
    assert first.returncode == -signal.SIGKILL
    printed = len(first.stdout.splitlines())
    assert 8 <= printed <= 16  # of the 16 photos it had been given

    again = on_cluster(cluster, checkpoint, "--library-path", library, album, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    cached, computed = map(int, re.search(r"(\d+) answered from the results library, (\d+) classified", again.stderr).groups())
    assert printed <= cached <= printed + 1  # each printed answer was committed first (one more, if killed between)
    assert computed == 40 - cached  # only the rest was computed
    got = parse(again.stdout)
    assert sum(bool(g.get("cached")) for g in got) == cached
    assert same(got) == same(album_here)
    import sqlite3

    with sqlite3.connect(library) as db:  # each with the thumbnail its node made, and its features for `similar`
        assert db.execute("SELECT count(*), count(thumbnail) FROM photos").fetchone() == (40, 40)
        assert db.execute("SELECT count(*) FROM vectors").fetchone() == (40,)


def test_sigterm_stops_the_driver_as_it_stops_local_classify(cluster, checkpoint, album, album_here, tmp_path):
    run = Started(cluster, checkpoint, in_order(album_here), cwd=tmp_path)
    run.after(8, lambda: run.proc.send_signal(signal.SIGTERM))
    r = run.finish()
    assert r.returncode == 143, r.stderr
    assert "terminated; every finished image was written" in r.stderr and "Traceback" not in r.stderr
    got = parse(r.stdout)  # whole lines only, each as here
    assert 8 <= len(got) <= 16 and same(got) == same(album_here[:len(got)])


def test_a_killed_node(cluster, checkpoint, album, album_here, tmp_path):
    """A node's raylet SIGKILLed while its worker has photos (a third node, joined for this: the last test of the
    shared cluster): its chunks run on the other nodes; every photo once."""
    before = set(cluster.raylets(head=False))
    cluster.add_node()
    joined = set(cluster.raylets(head=False)) - before
    assert len(joined) == 1
    (raylet,) = joined
    run = Started(cluster, checkpoint, in_order(album_here), cwd=tmp_path)

    def its_worker() -> bool:
        return any(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == raylet
                   for pid in cluster.workers() if Path(f"/proc/{pid}").exists())

    had_a_worker = False
    for line in run.proc.stdout:  # the joined node's worker is up (or the photos given so far are all answered) ...
        run.lines.append(line)
        had_a_worker = its_worker()
        if had_a_worker or len(run.lines) == 16:
            break
    run.proc.stdin.write("".join(f"{p}\n" for p in run.rest))  # ... then the rest, which the idle worker takes
    run.proc.stdin.close()
    run.lines.append(next(run.proc.stdout))
    had_a_worker = had_a_worker or its_worker()
    os.kill(raylet, signal.SIGKILL)
    r = run.finish()
    assert had_a_worker, "the joined node never ran a worker of this run"
    assert r.returncode == 0, r.stderr
    # (its worker may finish the chunk it holds before it notices its raylet is gone: then nothing runs again)
    assert "Raylet is terminated" in r.stderr or "run again" in r.stderr or "left the cluster" in r.stderr, r.stderr
    assert same(parse(r.stdout)) == same(album_here)


# ---- clear refusals ---------------------------------------------------------------------------------------------

def test_nodes_without_resnext_gui_or_with_another_version_are_named(checkpoint, photos, tmp_path, model_cache):
    need_cluster()
    old = tmp_path / "old" / "resnext_gui"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text('__version__ = "0.0.1"\n')
    missing = tmp_path / "missing" / "resnext_gui"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'resnext_gui\'", name="resnext_gui")\n')
    c = LoopbackCluster(tmp_path / "home", {"XDG_CACHE_HOME": str(model_cache)})
    try:
        c.start(1)
        c.add_node(PYTHONPATH=str(old.parent))
        c.add_node(PYTHONPATH=str(missing.parent))
        r = on_cluster(c, checkpoint, photos["coffee"], cwd=tmp_path)
    finally:
        c.close()
    assert r.returncode == 2
    assert r.stdout == ""
    from resnext_gui import __version__

    assert re.search(rf"node 127\.0\.0\.1 \(.*\) has resnext-gui 0\.0\.1, this machine {re.escape(__version__)}", r.stderr)
    assert re.search(r"node 127\.0\.0\.1 \(.*\) has no resnext-gui .*pip install 'resnext-gui\[cluster\]'", r.stderr)
    assert len(re.findall(r"^resnext-gui: node ", r.stderr, re.M)) == 2  # the head node has this version: not named


def test_no_cluster_listening_at_the_address(checkpoint, photos, tmp_path):
    need_ray()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed
    r = run_cli("classify", "--ray", f"127.0.0.1:{port}", "--weights", checkpoint, photos["coffee"], process=True,
                timeout=HANG_GUARD, cwd=tmp_path)
    assert r.returncode == 2
    assert f"no Ray cluster answered at 127.0.0.1:{port}" in r.stderr and "ray start --head" in r.stderr
    assert r.stdout == ""


def test_something_that_is_not_a_cluster_at_the_address(checkpoint, photos, tmp_path):
    """A listener that never answers: Ray would try for minutes; the command gives up and says so."""
    need_ray()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        r = run_cli("classify", "--ray", address, "--weights", checkpoint, photos["coffee"], process=True,
                    timeout=HANG_GUARD, cwd=tmp_path)
    assert r.returncode == 2
    assert f"no Ray cluster answered at {address}: nothing answered as a Ray cluster within 30 s" in r.stderr
    assert r.stdout == ""
