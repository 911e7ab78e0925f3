"""The driver of `classify --ray`, without a cluster: where the models go, who is named for what, and its loop over
a stand-in for Ray (answers in input order whatever order they come back in, a dead worker's photos sent again,
a photo that kills its worker isolated, a window that does not grow with the list)."""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from resnext_gui import __version__
from resnext_gui.cli import cluster as C
from resnext_gui.core.prediction import Prediction
from tests.support.helpers import REPO, import_blocker, run_cli


def node(name, cpus=1.0, gpus=0.0):
    return C.Node(f"{name}{'0' * 40}", "10.0.0.1", name, cpus, gpus)


def test_one_model_per_node_and_one_per_gpu():
    cpu, gpu, head = node("cpu", 16), node("gpu", 8, 2), node("head", 0)
    assert [(p.node.host, p.device, p.num_cpus, p.num_gpus) for p in C.placements([cpu, gpu, head], "auto")] == [
        ("cpu", "cpu", 1.0, 0.0), ("gpu", "cuda", 1.0, 1.0), ("gpu", "cuda", 1.0, 1.0)]  # a head without CPUs: none
    assert [(p.node.host, p.device) for p in C.placements([cpu, gpu], "cpu")] == [("cpu", "cpu"), ("gpu", "cpu")]
    assert [p.node.host for p in C.placements([cpu, gpu], "cuda")] == ["gpu", "gpu"]
    assert C.placements([cpu], "cuda") == []


def test_nodes_without_this_resnext_gui_are_named():
    name = "10.0.0.2 (b, node b)"
    assert C.version_problem({"version": "1.0", "problem": None}, name, "1.0") is None
    assert C.version_problem({"version": "0.9", "problem": None}, name, "1.0") == (
        "node 10.0.0.2 (b, node b) has resnext-gui 0.9, this machine 1.0: install 1.0 there "
        "(pip install 'resnext-gui[cluster]==1.0')")
    assert C.version_problem({"version": None, "problem": "ModuleNotFoundError: No module named 'resnext_gui'"},
                             name, "1.0") == ("node 10.0.0.2 (b, node b) has no resnext-gui (ModuleNotFoundError: No "
                                              "module named 'resnext_gui'): pip install 'resnext-gui[cluster]' there")


def test_the_actor_says_which_resnext_gui_its_node_has_before_loading_anything():
    """Ray sends a module's own classes by reference: a node without resnext-gui could not even load the actor.
    This one is made in a function, so its code travels; it loads the model only for the driver's version."""
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    blob = cloudpickle.dumps(C.actor_class())
    make = "import pickle, sys\nactor = pickle.loads(sys.stdin.buffer.read())(sys.argv[1], {}, [], 'cpu', 'n', '/')\n" \
           "print(actor.ready(), actor.model)\n"
    for prelude, version, expect in (
            ("", "0.0.1", f"{{'version': '{__version__}', 'problem': None}} None"),  # another version: no model
            (import_blocker("resnext_gui"), __version__, "{'version': None, 'problem': 'ImportError: resnext_gui is blocked")):
        r = subprocess.run([sys.executable, "-c", prelude + make, version], input=blob, capture_output=True, cwd="/",
                           timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        assert expect in r.stdout.decode()


def test_addresses():
    assert C.host_port("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert C.host_port("ray://head.example:10001") == ("head.example", 10001)
    assert C.host_port("[::1]:6379") == ("::1", 6379)
    assert C.host_port("head") is None and C.host_port("head:port") is None


def test_a_listener_that_never_answers_as_a_cluster_is_given_up_after_the_timeout():
    """Ray's own join would keep trying for minutes: connect gives up after the timeout it is given (the command
    gives 30 s), naming the address and how to start a cluster. The join is a stand-in that never returns."""
    import socket
    import threading

    never = threading.Event()
    joins = []

    class Ray:
        def init(self, **kwargs):
            joins.append(kwargs["address"])
            never.wait()

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        try:
            why = C.connect(Ray(), address, timeout=0.5)
        finally:
            never.set()
    assert joins == [address]
    assert why.startswith(f"no Ray cluster answered at {address}: nothing answered as a Ray cluster within 0.5 s. ")
    assert "ray start --head" in why
    assert C.CONNECT_TIMEOUT_S <= 30  # what the command gives it


def test_a_token_at_hand_turns_rays_token_mode_on_unless_another_was_asked_for(tmp_path, monkeypatch):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(name, "")  # recorded as it was, so that what use_token sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    C.use_token()
    assert "RAY_AUTH_MODE" not in os.environ  # no token anywhere: Ray's own default
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    C.use_token()
    assert os.environ["RAY_AUTH_MODE"] == "token"  # the file the head node's token is copied to
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    C.use_token()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # asked for: left alone


def test_rays_messages_become_one_line_each_on_stderr(capsys):
    notes = C.RayNotes()
    notes.write("\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task. To troubleshoot, look.\n"
                "    [state-dump] NodeManager...\n\n(raylet) Raylet is ")
    notes.write("terminated. Termination is unexpected.\n")
    assert capsys.readouterr().err.splitlines() == [
        "resnext-gui: ray: (raylet) A worker died or was killed while executing a task",
        "resnext-gui: ray: (raylet) Raylet is terminated"]


def test_without_ray_the_pip_command_is_given(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it raises ImportError
    r = run_cli("classify", "--ray", "auto", "--weights", tmp_path / "w.pth", tmp_path / "photo.jpg")
    assert r.returncode == 2 and r.stdout == ""
    assert "classify --ray needs Ray, which is not installed here: pip install 'resnext-gui[cluster]'" in r.stderr


def test_without_the_cluster_driver_the_app_says_so(tmp_path, monkeypatch):
    """The standalone apps leave the driver out (build.spec) with Ray: --ray is refused with the way to it."""
    import resnext_gui.cli

    monkeypatch.delattr(resnext_gui.cli, "cluster", raising=False)
    monkeypatch.setitem(sys.modules, "resnext_gui.cli.cluster", None)
    r = run_cli("classify", "--ray", "auto", "--weights", tmp_path / "w.pth", tmp_path / "photo.jpg")
    assert r.returncode == 2 and r.stdout == ""
    assert "this standalone app does not carry" in r.stderr and "pip install 'resnext-gui[cluster]'" in r.stderr


def test_the_command_line_imports_neither_ray_nor_the_cluster_driver():
    code = ("import sys, resnext_gui.cli, resnext_gui.cli.classify as c\n"
            "c.add_parser(__import__('argparse').ArgumentParser().add_subparsers())\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'resnext_gui.cli.cluster'))))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ---- the driver's loop, over a stand-in for Ray ------------------------------------------------------------------

class Died(Exception):
    """What Ray raises for a call whose worker process died."""


class Ref:
    """An ObjectRef stand-in: equal (and hashed) by its id, as Ray's are; ``again`` is the same ref as another
    object, as Ray's ``wait`` may hand back."""

    made = 0

    def __init__(self, compute, key=None):
        self.compute = compute
        Ref.made += 1
        self.key = Ref.made if key is None else key

    def again(self):
        return Ref(self.compute, self.key)

    def __eq__(self, other):
        return isinstance(other, Ref) and other.key == self.key

    def __hash__(self):
        return hash(self.key)


class Actor:
    """A NodeClassifier stand-in: ``deadly`` photos kill its process (every call of theirs fails)."""

    def __init__(self, world, deadly=(), chunk=3):
        self.world, self.deadly, self.chunk = world, set(deadly), chunk
        self.version = __version__
        self.calls = []  # the photos of each classify call it answered
        self.ready = self._method(lambda: {"chunk": self.chunk, "note": None, "version": self.version})
        self.classify = self._method(self._classify)

    def _method(self, fn):
        actor = self

        class Method:
            @staticmethod
            def remote(*args):
                ref = Ref(lambda: fn(*args))
                actor.world.submitted.append(ref)
                return ref
        return Method

    def _classify(self, paths):
        if self.deadly & set(paths):
            raise Died("The actor is dead because its worker process has died")
        self.world.classified.extend(paths)
        self.calls.append(list(paths))
        return [C.NodeAnswer(Prediction(path=p, ok=True)) for p in paths]


class World:
    """Ray, as the loop uses it: calls finish in an order chosen by ``seed``."""

    def __init__(self, seed):
        self.random = random.Random(seed)
        self.submitted, self.classified, self.killed = [], [], 0

    def wait(self, refs, num_returns=1, timeout=None):
        if timeout == 0:
            return [], refs
        pick = self.random.choice(refs)
        return [pick], [r for r in refs if r is not pick]

    def get(self, ref, timeout=None):
        return ref.compute()

    def kill(self, actor, no_restart=True):
        self.killed += 1

    def nodes(self):
        return [{"NodeID": "n" * 48, "Alive": True, "NodeManagerAddress": "10.0.0.1", "NodeManagerHostname": "a",
                 "Resources": {"CPU": 1}}]


class Sink:
    def __init__(self):
        self.records = []
        self.progress = type("P", (), {"start": 0.0, "clock": staticmethod(lambda: 0.0)})()

    def put(self, pred, figures=None, maps=None, thumbnail=None):
        self.records.append(pred.to_record())


PLACE = C.Placement(C.Node("n" * 48, "10.0.0.1", "a", 1, 0), "cpu", 1, 0)


def workers_of(*makers):
    """Workers on one stand-in node, one for each of ``makers`` (placement -> actor), started."""
    workers = [C.Worker(PLACE, make) for make in makers]
    for w in workers:
        w.start()
    return workers


def run_loop(world, photos, actors=2, deadly=(), answers=None):
    workers = workers_of(*[lambda _: Actor(world, deadly)] * actors)
    sink = Sink()
    loop = C.Run(world, workers, iter(photos), sink, answers, __version__)
    return loop, loop.run(), sink.records


@pytest.mark.parametrize("seed", range(5))
def test_answers_come_out_in_input_order_whatever_order_they_come_back_in(seed):
    photos = [Path(f"p{i:03}.jpg") for i in range(50)]
    world = World(seed)
    _, why, records = run_loop(world, photos)
    assert why is None
    assert [r["path"] for r in records] == [str(p) for p in photos]
    assert sorted(world.classified) == sorted(map(str, photos))  # each computed once


def test_refs_handed_back_by_wait_as_other_objects_still_find_their_worker():
    """Ray's ``wait`` hands back refs equal to those given, not always the same objects: a worker's answer to
    "ready" looked up by identity was dropped, and that worker never got a photo (with none ready, the run
    waited for ever)."""

    class Copies(World):
        waits = 0

        def wait(self, refs, num_returns=1, timeout=None):
            self.waits += 1
            assert self.waits < 10_000, "the run never ends: no worker's answer is found"
            done, rest = super().wait(refs, num_returns, timeout)
            return [r.again() for r in done], [r.again() for r in rest]

    photos = [Path(f"p{i:03}.jpg") for i in range(60)]
    world = Copies(0)
    loop, why, records = run_loop(world, photos, actors=2)
    assert why is None and [r["path"] for r in records] == [str(p) for p in photos]
    assert sorted(world.classified) == sorted(map(str, photos))
    assert [w.ready for w in loop.workers] == [True, True]


def test_the_list_is_read_ahead_of_the_loop():
    """The thread reading the list holds many paths ready, not one: read one at a time, the loop found a photo or
    two at each step and sent them all to its first worker, and the second worker never got one."""
    import threading

    read_all = threading.Event()

    def photos():
        yield from (Path(f"p{i:03}.jpg") for i in range(300))
        read_all.set()

    ahead = C.Ahead(photos())
    assert read_all.wait(timeout=60)  # a guard against a hang: the whole list is read with nothing taken yet
    assert [ahead.take() for _ in range(301)] == [Path(f"p{i:03}.jpg") for i in range(300)] + [None]
    assert ahead.ended


@pytest.mark.parametrize("seed", range(3))
def test_with_the_photos_read_every_worker_gets_full_chunks(seed):
    """Two workers and a list already read: both classify, and every chunk but the last of each is full."""
    import threading

    read_all = threading.Event()

    def photos():
        yield from (Path(f"p{i:03}.jpg") for i in range(60))
        read_all.set()

    world = World(seed)
    actors = []
    workers = workers_of(*[lambda _: actors.append(Actor(world)) or actors[-1]] * 2)
    sink = Sink()
    loop = C.Run(world, workers, photos(), sink, None, __version__)
    assert read_all.wait(timeout=60)  # a guard: the reading thread has the whole list before the loop starts
    assert loop.run() is None and [r["path"] for r in sink.records] == [f"p{i:03}.jpg" for i in range(60)]
    assert all(actor.calls for actor in actors)  # both workers classified
    assert all(len(call) == 3 for actor in actors for call in actor.calls[:-1])
    assert sum(len(call) for actor in actors for call in actor.calls) == 60


@pytest.mark.parametrize("seed", range(5))
def test_a_photo_that_kills_its_worker_is_isolated_and_the_others_are_answered_once(seed):
    photos = [Path(f"p{i:03}.jpg") for i in range(20)]
    world = World(seed)
    _, why, records = run_loop(world, photos, deadly={"p007.jpg"})
    assert why is None
    assert [r["path"] for r in records] == [str(p) for p in photos]
    bad = records[7]
    assert not bad["ok"] and f"stopped {C.TRIES} times" in bad["error"] and "10.0.0.1 (a, node nnnnnnnn)" in bad["error"]
    assert all(r["ok"] for i, r in enumerate(records) if i != 7)
    assert sorted(world.classified) == sorted(str(p) for p in photos if p.name != "p007.jpg")
    assert world.killed == C.TRIES  # each dead worker replaced


def test_the_driver_reads_only_a_window_ahead_of_what_it_printed(monkeypatch):
    """Memory does not grow with the list: however long it is, only a few chunks are read ahead of the output,
    and what the reading thread holds ready."""
    monkeypatch.setattr(C, "AHEAD", 100)
    world = World(0)
    read = []

    def photos():
        for i in range(20_000):
            read.append(i)
            yield Path(f"p{i}.jpg")

    workers = workers_of(*[lambda _: Actor(world)] * 2)
    most = 0

    class Watching(Sink):
        def put(self, pred, *rest):
            nonlocal most
            most = max(most, len(read) - int(pred.path[1:-4]))  # photos read beyond the one printed now
            super().put(pred, *rest)

    sink = Watching()
    loop = C.Run(world, workers, photos(), sink, None, __version__)
    assert loop.run() is None
    assert len(sink.records) == 20_000
    assert loop.window() == C.MIN_WINDOW  # two workers of chunks of 3: the smallest window
    assert most <= C.MIN_WINDOW + 100 + 2  # and what the reading thread holds: AHEAD queued, one in its hands


def test_library_answers_are_put_out_in_their_place_and_not_sent():
    class Answers:
        cached = computed = 0

        def answer(self, path):
            if path.name.startswith("known"):
                return type("Cached", (), {"to_record": lambda self, p=str(path): {"path": p, "ok": True, "cached": True}})()
            return None

    photos = [Path(n) for n in ("a.jpg", "known1.jpg", "b.jpg", "known2.jpg", "known3.jpg", "c.jpg")]
    world = World(1)
    answers = Answers()
    _, why, records = run_loop(world, photos, answers=answers)
    assert why is None
    assert [r["path"] for r in records] == [str(p) for p in photos]
    assert [bool(r.get("cached")) for r in records] == [False, True, False, True, True, False]
    assert sorted(world.classified) == ["a.jpg", "b.jpg", "c.jpg"]
    assert (answers.cached, answers.computed) == (3, 3)


def test_when_every_node_is_gone_the_run_says_so():
    world = World(0)
    photos = [Path(f"p{i}.jpg") for i in range(10)]

    class NeverLoads(Actor):
        def __init__(self, world):
            super().__init__(world)
            self.ready = self._method(lambda: (_ for _ in ()).throw(Died("the model did not load")))

    loop = C.Run(world, workers_of(lambda _: NeverLoads(world)), iter(photos), Sink(), None, __version__)
    assert loop.run() == "no node of the cluster is left to classify the photos"
    assert not loop.ever_ready


def test_a_node_with_another_version_stops_the_run_before_anything_is_sent_or_printed():
    class Known:
        cached = computed = 0

        def answer(self, path):  # the library knows every photo: it could be printed at once
            return type("Cached", (), {"to_record": lambda self, p=str(path): {"path": p, "ok": True}})()

    world = World(0)

    def old(_):
        actor = Actor(world)
        actor.version = "0.0.1"
        return actor

    workers = workers_of(lambda _: Actor(world), old)
    sink = Sink()
    loop = C.Run(world, workers, iter([Path(f"p{i}.jpg") for i in range(10)]), sink, Known(), __version__)
    assert loop.run() == "refused"
    assert loop.refused == [f"node 10.0.0.1 (a, node nnnnnnnn) has resnext-gui 0.0.1, this machine {__version__}: "
                            f"install {__version__} there (pip install 'resnext-gui[cluster]=={__version__}')"]
    assert sink.records == [] and world.classified == []


@pytest.mark.parametrize("where", ["wait", "get"])
def test_sigterm_inside_a_call_into_ray_stops_the_run_between_two_steps(where):
    """SIGTERM arriving inside Ray's compiled code (here: a stand-in that, as Cython does, wraps the handler's
    exception in a SystemError) stops the run as Terminated: not a crash, not a worker's failure whose photos
    run again; nothing is sent after it."""
    import signal

    from resnext_gui.cli.output import Terminated

    def on_sigterm(signum, frame):  # as the command line has it
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)

    class Compiled(World):
        signalled = False
        sent_then = 0

        def _stop_inside(self, call, *args, **kwargs):
            if self.signalled or not self.classified:
                return call(*args, **kwargs)
            self.signalled = True
            self.sent_then = len(self.submitted)
            try:
                # what Python does as the signal arrives: the handler in place runs on the main thread (a real
                # SIGTERM to the test process would also reach whatever else the suite has running)
                handler = signal.getsignal(signal.SIGTERM)
                assert callable(handler) and handler is not on_sigterm  # the driver's own, while it runs
                handler(signal.SIGTERM, None)
                return call(*args, **kwargs)
            except BaseException as exc:
                raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from exc

        def wait(self, *args, **kwargs):
            return self._stop_inside(super().wait, *args, **kwargs) if where == "wait" else super().wait(*args, **kwargs)

        def get(self, *args, **kwargs):
            return self._stop_inside(super().get, *args, **kwargs) if where == "get" else super().get(*args, **kwargs)

    world = Compiled(0)
    try:
        with pytest.raises(Terminated):
            run_loop(world, [Path(f"p{i:03}.jpg") for i in range(50)])
        assert signal.getsignal(signal.SIGTERM) is on_sigterm  # the command line's handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert world.signalled and len(world.submitted) == world.sent_then  # nothing sent again, nothing more sent


def test_answers_come_out_while_the_list_is_still_being_written():
    """A list that is slower than the cluster (a pipe into --files-from -): the answers in are put out meanwhile,
    not held up until the next line arrives."""
    import threading

    world = World(0)
    first_out = threading.Event()
    out_when_the_list_went_on = []

    class Watching(Sink):
        def put(self, pred, *rest):
            super().put(pred, *rest)
            if len(self.records) == 6:
                first_out.set()

    sink = Watching()

    def photos():
        yield from (Path(f"p{i:02}.jpg") for i in range(6))
        first_out.wait(20)  # the rest of the list is written once the first answers are out (a guard, not a timing)
        out_when_the_list_went_on.append(len(sink.records))
        yield from (Path(f"p{i:02}.jpg") for i in range(6, 12))

    workers = workers_of(*[lambda _: Actor(world)] * 2)
    assert C.Run(world, workers, photos(), sink, None, __version__).run() is None
    assert out_when_the_list_went_on == [6]
    assert [r["path"] for r in sink.records] == [f"p{i:02}.jpg" for i in range(12)]
