"""`classify --ray ADDRESS`: local classify's photos, options and records, computed by the nodes of a Ray cluster.

The driver (this process) reads and checks the checkpoint and puts it once into Ray's object store; each node
gets one ``NodeClassifier`` actor (one per GPU on a node with GPUs), which checks that the node has the driver's
version of resnext-gui and builds its model (``NodeModel``) from that checkpoint. Paths go out in chunks,
answers come back (the prediction, its --cam-dir files drawn where the photo was decoded, its library
thumbnail), and the driver puts them out through the same ``Sink`` as a local run: maps saved, the library's
answer committed, keywords written, the record printed, in input order, as they complete. Only a window of
photos is ever in flight, so the driver's memory does not grow with the list. A chunk whose worker process or
node died runs again on another worker; a photo is printed once, from the one answer the driver took.

Imported only for --ray: Ray is the optional ``cluster`` extra, and the standalone apps carry none.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .output import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    CamWriter,
    EncodedMaps,
    Expansion,
    KeywordWriter,
    OutputError,
    Progress,
    Stdout,
    Terminated,
    done_with_skips,
    say,
    silence_stdout,
    stopped,
    utf8_stdout,
)

if TYPE_CHECKING:
    from ..core.answers import CachedAnswer
    from ..core.checkpoint import Checkpoint
    from ..core.kinds import Backend, Layer, Method, Precision
    from ..core.prediction import Prediction

EXTRA = "pip install 'resnext-gui[cluster]'"
CONNECT_TIMEOUT_S = 30.0  # Ray itself keeps retrying for minutes where no cluster answers
GATE_S = 30.0  # nothing is sent until every node has said which resnext-gui it has, or this long has passed
IN_FLIGHT = 2  # chunks sent to a worker at once: one running, the next one waiting beside it
WINDOW = 4  # photos read ahead of the oldest not yet printed: this many times what the workers hold at once...
MIN_WINDOW = 64  # ...and at least this many (a slow or dying node holds the line while the others go on)
TRIES = 3  # a photo whose worker died this often (the last time alone) gets an error record, not another try
RESTARTS = 10  # a worker process that died is replaced this often at most (on its node; not if the node died)
AHEAD = 8192  # paths the reading thread holds ready (about a megabyte), so every worker's next chunk is there
START_NOTE_S = 60.0  # while no node has the model loaded yet, say so this often


# ---- on the nodes ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What a node needs of the command line to answer as local classify would."""

    layer: Layer
    topk: int
    precision: Precision
    backend: Backend
    cam_method: Method
    faithfulness: bool
    batch_size: int | None
    maps: bool  # --cam-dir: draw each photo's files
    thumbnails: bool  # --library: make each photo's thumbnail

    @classmethod
    def of(cls, args: argparse.Namespace) -> Settings:
        return cls(args.layer, args.topk, args.precision, args.backend, args.cam_method, bool(args.faithfulness),
                   args.batch_size, bool(args.cam_dir), bool(args.library))

    @property
    def one_by_one(self) -> bool:
        from ..core.cam import ONE_PASS

        return self.cam_method not in ONE_PASS or self.faithfulness


@dataclass
class NodeAnswer:
    """One photo's answer as a node sends it back: the prediction (without the decoded photo), the faithfulness
    figures, its --cam-dir files as bytes (or why they could not be drawn), its library thumbnail."""

    pred: Prediction
    figures: dict[str, Any] | None = None
    maps: EncodedMaps | str | None = None
    thumbnail: bytes | None = None
    missing: str | None = None  # the node does not see the file: how it names itself, and what it lacks

    def seen_by(self, driver_sees: bool) -> Prediction:
        """The prediction to put out: a file the node lacks but the driver sees says so, naming the node (a file
        missing everywhere keeps local classify's own message)."""
        if self.missing and driver_sees:
            self.pred.error = (f"{self.pred.path} does not exist on node {self.missing}: every node must see the "
                               "photos at the same path")
        return self.pred


def node_name(node_id: str, ip: str, host: str) -> str:
    """How the messages name a node: its address, host name and the start of Ray's id (loopback nodes share the
    first two)."""
    return f"{ip} ({host}, node {node_id[:8]})"


class NodeModel:
    """One node's model, inside its actor: a Classifier built from the driver's checkpoint; paths in, answers out.

    ``classify`` never raises: whatever goes wrong with a photo, or with the node while it runs a chunk, becomes
    that photo's error record naming the node (in a Ray map, an exception would end the whole run)."""

    def __init__(self, checkpoint: Checkpoint, settings: Settings, device: str, where: str, cwd: str) -> None:
        from ..core.cam import ONE_PASS
        from ..core.classifier import Classifier
        from ..core.kinds import DEFAULT_METHOD

        self.settings, self.where = settings, where
        self.clf = Classifier(checkpoint, device=device, layer=settings.layer, topk=settings.topk,
                              precision=settings.precision, backend=settings.backend,
                              method=settings.cam_method if settings.cam_method in ONE_PASS else DEFAULT_METHOD,
                              tuned_for="latency" if settings.one_by_one else "throughput")
        self.batch_size = settings.batch_size or self.clf.default_batch_size
        self.cwd_missing: str | None = None
        try:  # relative paths mean what they mean on the driver, where the storage is the same
            os.chdir(cwd)
        except OSError:
            self.cwd_missing = cwd

    def ready(self) -> dict[str, Any]:
        """What the driver needs to know once the model is loaded: how many photos to send at once, and notes."""
        parallel = max(1, int(getattr(self.clf.runtime, "parallel", 1)))
        return {"chunk": max(8, min(64, 4 * parallel * self.batch_size)), "note": self.clf.note,
                "device": self.clf.device.type, "backend": self.clf.backend}

    def classify(self, paths: list[str]) -> list[NodeAnswer]:
        from ..core.prediction import failure

        answers: list[NodeAnswer] = []
        try:
            sources = [Path(p) for p in paths]
            s = self.settings
            keep = s.maps or s.thumbnails
            if s.one_by_one:
                from .answering import one_by_one

                options = argparse.Namespace(cam_method=s.cam_method, faithfulness=s.faithfulness, layer=s.layer)
                results: Iterator[tuple[Prediction, dict[str, Any] | None]] = one_by_one(
                    self.clf, sources, options, keep, time.monotonic)
            else:
                results = ((p, None) for p in self.clf.classify_many(sources, batch_size=self.batch_size, keep_images=keep))
            for pred, figures in results:
                answers.append(self._answer(pred, figures))
        except Exception as exc:  # the node itself failed (out of memory, a runtime fault): these photos say where
            for path in paths[len(answers):]:
                pred = failure(path, exc, f"classified on node {self.where}")
                answers.append(NodeAnswer(pred))
        return answers

    def _answer(self, pred: Prediction, figures: dict[str, Any] | None) -> NodeAnswer:
        from ..core.library import thumbnail_bytes

        answer = NodeAnswer(pred, figures)
        if pred.ok and self.settings.maps and pred.cams is not None:
            try:
                answer.maps = CamWriter.encode(pred)
            except Exception as exc:
                answer.maps = getattr(exc, "strerror", None) or str(exc)
        if pred.ok and self.settings.thumbnails and pred.image is not None:
            try:
                answer.thumbnail = thumbnail_bytes(pred.image)  # type: ignore[arg-type]  # a PIL image
            except (OSError, ValueError, MemoryError):
                pass
        if not pred.ok and not os.path.lexists(pred.path):  # the driver decides whether that is this node's fault
            answer.missing = self.where + (f", which has no folder {self.cwd_missing} for it to be relative to" if (
                self.cwd_missing and not os.path.isabs(pred.path)) else "")
        pred.image = None
        return answer


def actor_class() -> type:
    """The actor a node runs: it first says which resnext-gui the node has, and loads the model (``NodeModel``)
    only where that is the driver's version. Made here, inside a function, so that Ray sends the class's code by
    value (a module's own classes go by reference, which a node without resnext-gui, or with an older one, could
    not even load): one process per node both checks and classifies."""

    class NodeClassifier:
        # Nothing of resnext-gui in the arguments (their unpickling would fail first where it is missing): the
        # settings as a dict, the checkpoint as its reference in the object store, fetched once the version is right
        def __init__(self, version: str, settings: dict[str, Any], stored: list[Any], device: str, where: str,
                     cwd: str) -> None:
            self.model: Any = None
            self.found: dict[str, Any] = {"version": None, "problem": None}
            try:
                import resnext_gui as installed

                self.found["version"] = getattr(installed, "__version__", "unknown")
            except Exception as exc:
                self.found["problem"] = f"{type(exc).__name__}: {exc}"
                return
            if self.found["version"] == version:
                import ray

                from resnext_gui.cli.cluster import NodeModel, Settings

                self.model = NodeModel(ray.get(stored[0]), Settings(**settings), device, where, cwd)

        def ready(self) -> dict[str, Any]:
            return {**self.found, **(self.model.ready() if self.model is not None else {})}

        def classify(self, paths: list[str]) -> Any:
            return self.model.classify(paths)

    return NodeClassifier


# ---- the driver -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    id: str
    ip: str
    host: str
    cpus: float
    gpus: float

    @property
    def name(self) -> str:
        return node_name(self.id, self.ip, self.host)


@dataclass(frozen=True)
class Placement:
    """One model on one node: its device and the resources Ray reserves for it."""

    node: Node
    device: str
    num_cpus: float
    num_gpus: float


def placements(nodes: list[Node], device: str) -> list[Placement]:
    """Where the models go: one per GPU on a node with GPUs (unless --device cpu), one per other node with a CPU
    to offer (it uses all the node's cores); --device cuda: GPU nodes only."""
    out = []
    for node in nodes:
        gpus = int(node.gpus)
        if gpus >= 1 and device in ("auto", "cuda"):
            out += [Placement(node, "cuda", min(1.0, node.cpus / gpus), 1.0) for _ in range(gpus)]
        elif node.cpus >= 1 and device != "cuda":
            out.append(Placement(node, "cpu" if device == "auto" else device, 1.0, 0.0))
    return out


def version_problem(found: dict[str, Any], name: str, mine: str) -> str | None:
    """Why node ``name`` cannot take part (``found``: what its actor says it has), or None: it has this version."""
    if found.get("version") is None:
        return f"node {name} has no resnext-gui ({found.get('problem')}): {EXTRA} there"
    if found["version"] != mine:
        return (f"node {name} has resnext-gui {found['version']}, this machine {mine}: install {mine} there "
                f"(pip install 'resnext-gui[cluster]=={mine}')")
    return None


def host_port(address: str) -> tuple[str, int] | None:
    """HOST and PORT of a Ray address (HOST:PORT, ray://HOST:PORT, [v6]:PORT); None if it is not one."""
    text = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def no_cluster(address: str, reason: str) -> str:
    return (f"no Ray cluster answered at {address}: {reason.rstrip('.')}. Start one with `ray start --head --port 6379` on the "
            "head node and `ray start --address HEAD:6379` on each other node (with the cluster's token, see the "
            "README's \"Archives beyond one machine\"), then give --ray HEAD:6379, or --ray auto on a node")


def use_token() -> None:
    """Ray's token authentication, wherever a token is at hand and nothing else was asked for (Ray turns it on by
    itself only for --ray auto): ~/.ray/auth_token, $RAY_AUTH_TOKEN or $RAY_AUTH_TOKEN_PATH."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or (
            Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def connect(ray: Any, address: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Join the cluster at ``address`` within ``timeout`` seconds; why not, or None."""
    deadline = time.monotonic() + timeout
    if address != "auto":
        where = host_port(address)
        if where is None:
            return f"--ray {address} is not a cluster address: give HOST:PORT, ray://HOST:PORT or auto"
        try:  # nothing listening answers at once; Ray would try again for minutes
            socket.create_connection(where, timeout=timeout / 2).close()
        except OSError as exc:
            return no_cluster(address, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
    outcome: dict[str, BaseException | bool] = {}

    def join() -> None:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            outcome["joined"] = True
        except BaseException as exc:  # reported by the caller
            outcome["error"] = exc

    thread = threading.Thread(target=join, name="ray-connect", daemon=True)  # left behind if Ray never returns
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        return no_cluster(address, f"nothing answered as a Ray cluster within {timeout:g} s")
    error = outcome.get("error")
    if isinstance(error, BaseException):
        text = " ".join(str(e) for e in (error, error.__cause__) if e is not None)
        if "auth" in text.lower() and "token" in text.lower():
            return (f"the Ray cluster at {address} refused this machine: it needs the cluster's token (copy the head "
                    "node's ~/.ray/auth_token here, or set RAY_AUTH_TOKEN, and RAY_AUTH_MODE=token)")
        return no_cluster(address, (str(error).splitlines() or [type(error).__name__])[0])
    return None


def alive_nodes(ray: Any) -> list[Node]:
    return [Node(n["NodeID"], n.get("NodeManagerAddress", "?"), n.get("NodeManagerHostname", "?"),
                 float(n.get("Resources", {}).get("CPU", 0)), float(n.get("Resources", {}).get("GPU", 0)))
            for n in ray.nodes() if n.get("Alive")]


@dataclass
class Slot:
    """One photo between being read and being printed: its answer once one came back."""

    seq: int  # its place in the input
    path: str
    answer: NodeAnswer | CachedAnswer | None = None
    tries: int = 0  # the times a worker died while it had this photo
    lost_on: list[str] = field(default_factory=list)


@dataclass
class Worker:
    """One NodeClassifier and what the driver knows of it. ``start`` makes the actor (again, after its process
    died: the driver replaces it, on the same node, so that no photo is retried behind its back)."""

    place: Placement
    make: Any  # Placement → a new actor
    actor: Any = None
    starting: Any = None  # the ready() call while the model loads
    chunk: int = 8
    busy: dict[Any, list[Slot]] = field(default_factory=dict)  # calls under way → their photos
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        self.actor = self.make(self.place)
        self.starting = self.actor.ready.remote()

    @property
    def ready(self) -> bool:
        return self.starting is None


class Ahead:
    """The photos, read on a thread of their own up to ``AHEAD`` paths ahead, so that a list still being written
    (a pipe into --files-from -) never holds up the answers that are in, and the loop finds the photos for every
    worker's next chunk already read. ``take``: the next one, or None if there is none yet (``ended``: nor will
    there be); an error reading the list is raised there."""

    _END = object()

    def __init__(self, photos: Iterator[Path]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=AHEAD)
        self._next: Any = None
        self.ended = False
        threading.Thread(target=self._fill, args=(photos,), name="read-photos", daemon=True).start()

    def _fill(self, photos: Iterator[Path]) -> None:
        try:
            for path in photos:
                self._queue.put(path)
            self._queue.put(self._END)
        except Exception as exc:  # raised by take, in the driver's loop
            self._queue.put(exc)

    def wait(self, timeout: float) -> None:
        """Until the next photo (or the end) is there, ``timeout`` seconds at most."""
        if self._next is None and not self.ended:
            try:
                self._next = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass

    def take(self) -> Path | None:
        if self._next is None and not self.ended:
            try:
                self._next = self._queue.get_nowait()
            except queue.Empty:
                return None
        item, self._next = self._next, None
        if item is self._END or item is None:
            self.ended = True
            return None
        if isinstance(item, Exception):
            self.ended = True
            raise item
        return Path(item)


class Run:
    """The driver's loop: read photos as the window has room, answer from the library what it knows, send chunks
    to the workers with room, take answers back, put out the oldest photos once answered."""

    def __init__(self, ray: Any, workers: list[Worker], photos: Iterator[Path], sink: Any, answers: Any,
                 version: str) -> None:
        self.ray, self.workers, self.sink, self.answers = ray, workers, sink, answers
        self.photos = Ahead(photos)
        self.version = version  # the resnext-gui every node must have
        self.gated = True  # nothing is sent until every node has said which resnext-gui it has (GATE_S at most)
        self.refused: list[str] = []  # the nodes without it, while the gate is closed: the run stops there
        self.order: deque[Slot] = deque()  # read, not yet printed: in input order
        self.waiting: deque[Slot] = deque()  # to be sent: photos taken back from a dead worker first
        self.read_all = False
        self.taken = 0  # photos read
        self.ever_ready = False  # whether any worker got the model loaded
        self.started = time.monotonic()
        self.last_note = self.started

    # ---- the loop ----
    def run(self, total: Any = None) -> str | None:
        """Until every photo is printed; why it stopped early (no worker left), or None. Ctrl+C and SIGTERM stop
        it between two steps (KeyboardInterrupt, Terminated), never inside a call into Ray."""
        with Deferred() as stop:
            while True:
                self._read()
                with stop.held():
                    self._send()
                if self.refused and not self.gated:
                    return "refused"
                self._put_out()
                if self.read_all and not self.order:
                    return None
                if not self.workers:
                    return "no node of the cluster is left to classify the photos"
                with stop.held():
                    self._wait()
                if total is not None:
                    total()

    def _room(self) -> int:
        """Photos worth having ready to send: every free place on a ready worker, and one chunk more."""
        free = sum(w.chunk * (IN_FLIGHT - len(w.busy)) for w in self.workers if w.ready)
        return free + max((w.chunk for w in self.workers), default=8)

    def window(self) -> int:
        """Photos between the oldest one not yet printed and the newest one read, at most: the driver's memory."""
        return max(MIN_WINDOW, WINDOW * sum(w.chunk * IN_FLIGHT for w in self.workers))

    def _read(self) -> None:
        while not self.read_all and len(self.waiting) < self._room() and len(self.order) < self.window():
            path = self.photos.take()
            if path is None:  # none yet (a list still being written), or the end
                self.read_all = self.photos.ended
                return
            slot = Slot(self.taken, str(path))
            self.taken += 1
            self.order.append(slot)
            hit = self.answers.answer(path) if self.answers is not None else None
            if hit is not None:  # unchanged since the library's answer: nothing to compute
                slot.answer = hit
                self.answers.cached += 1
            else:
                self.waiting.append(slot)

    def _send(self) -> None:
        if self.gated:
            if self.workers and not all(w.ready for w in self.workers) and time.monotonic() - self.started < GATE_S:
                return
            self.gated = False
            if self.refused:
                return
        for worker in self.workers:
            while worker.ready and len(worker.busy) < IN_FLIGHT and self.waiting:
                chunk = [self.waiting.popleft()]
                if chunk[0].tries < TRIES - 1:  # a photo whose worker died twice goes alone: it may be the cause
                    while self.waiting and len(chunk) < worker.chunk and self.waiting[0].tries < TRIES - 1:
                        chunk.append(self.waiting.popleft())
                ref = worker.actor.classify.remote([s.path for s in chunk])
                worker.busy[ref] = chunk

    def _put_out(self) -> None:
        if self.gated:  # not even the library's answers: a node without this resnext-gui stops the run before
            return
        while self.order and self.order[0].answer is not None:
            slot = self.order.popleft()
            answer = slot.answer
            if isinstance(answer, NodeAnswer):
                if self.answers is not None:
                    self.answers.computed += 1
                pred = answer.seen_by(bool(answer.missing) and os.path.lexists(slot.path))
                self.sink.put(pred, answer.figures, answer.maps, answer.thumbnail)
            else:
                self.sink.put(answer)

    def _wait(self) -> None:
        refs = [w.starting for w in self.workers if w.starting is not None]
        refs += [ref for w in self.workers for ref in w.busy]
        if not refs:
            if not self.read_all:  # nothing under way: the next photo of a list still being written
                self.photos.wait(1.0)
            return
        done, rest = self.ray.wait(refs, num_returns=1, timeout=1.0)
        if done and rest:  # and whatever else is in by now
            done += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for ref in done:
            self._take(ref)
        if not any(w.ready for w in self.workers) and time.monotonic() - self.last_note >= START_NOTE_S:
            self.last_note = time.monotonic()
            say(f"waiting for the nodes to load the model ({len(self.workers)} starting, "
                f"{time.monotonic() - self.started:.0f} s so far)")

    def _take(self, ref: Any) -> None:
        # by equality: Ray's wait hands back refs equal to those given, not always the same objects
        worker = next((w for w in self.workers if w.starting == ref or ref in w.busy), None)
        if worker is None:  # a call of a worker already given up: its photos were taken back
            return
        if worker.starting == ref:
            try:
                info = self.ray.get(ref)
            except Exception as exc:  # the model did not load there, or the worker is gone for good
                self._drop(worker, exc)
                return
            problem = version_problem(info, worker.place.node.name, self.version)
            if problem:
                self.workers.remove(worker)
                self.ray.kill(worker.actor, no_restart=True)
                if self.gated:
                    self.refused.append(problem)
                else:
                    say(f"{problem}; the other nodes go on without it")
                return
            worker.starting = None
            if not self.ever_ready:  # the rate (and time left) counts from here, not from the model's loading
                self.ever_ready = True
                self.sink.progress.start = self.sink.progress.clock()
            worker.chunk = int(info["chunk"])
            if info.get("note"):
                say(f"note: node {worker.place.node.name}: {info['note']}")
            return
        chunk = worker.busy.pop(ref)
        try:
            answers = self.ray.get(ref)
        except Exception as exc:  # the worker process or its node died under this chunk: it runs again
            self._lost(worker, chunk, exc)
            return
        for slot, answer in zip(chunk, answers):
            slot.answer = answer

    def _lost(self, worker: Worker, chunk: list[Slot], exc: BaseException) -> None:
        from ..core.prediction import Prediction

        name = worker.place.node.name
        again = [slot for other in worker.busy.values() for slot in other]  # its next call went the same way
        worker.busy.clear()
        for slot in chunk:
            slot.tries += 1
            slot.lost_on.append(name)
            if slot.tries >= TRIES:
                where = ", ".join(dict.fromkeys(slot.lost_on))
                slot.answer = NodeAnswer(Prediction(path=slot.path, ok=False, error=(
                    f"{slot.path} could not be classified: the worker classifying it stopped {slot.tries} times "
                    f"(on node {where}); the photo may crash the decoder or the runtime")))
            else:
                again.append(slot)
        self._again(again)
        say(f"a worker on node {name} stopped ({_reason(exc)}); its {len(again)} photos run again")
        self.ray.kill(worker.actor, no_restart=True)  # gone already, or unreachable: not to come back half-way
        if worker.starts > RESTARTS:
            self._drop(worker, RuntimeError(f"its worker stopped {worker.starts} times"))
        else:
            worker.start()  # on the same node: if the node itself is gone, this start fails and the node is dropped

    def _again(self, slots: list[Slot]) -> None:
        """Photos taken back from a worker: sent before the others, oldest first."""
        self.waiting = deque(sorted([*slots, *self.waiting], key=lambda s: s.seq))

    def _drop(self, worker: Worker, exc: BaseException) -> None:
        self.workers.remove(worker)
        self._again([slot for chunk in worker.busy.values() for slot in chunk])
        node = worker.place.node
        try:
            gone = node.id not in {n.id for n in alive_nodes(self.ray)}
        except Exception:
            gone = False
        if gone:
            say(f"node {node.name} left the cluster; the other nodes go on with its photos")
        else:
            say(f"node {node.name} is out of the run: {_reason(exc)}")


class Deferred:
    """Ctrl+C and SIGTERM while the driver's loop runs: raised at once (KeyboardInterrupt, Terminated), except
    ``held`` (the calls into Ray), where they are noted and raised as the held steps end. Raised inside Ray's
    compiled code they would come out as a SystemError, or as a worker's failure (its photos sent again) instead
    of the stop asked for."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.holding = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Deferred:
        if threading.current_thread() is threading.main_thread():  # only there can handlers be set
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.signal = signum
        if not self.holding:
            self.check()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        self.check()

    def check(self) -> None:
        if self.signal == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal is not None:
            raise Terminated

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


class RayNotes:
    """Where Ray's own messages go while it runs in this process (it prints them on stdout, which is for the
    records): the first sentence of each, on stderr; the state dumps and log tails that follow are left out."""

    _COLOUR = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self) -> None:
        self._part = ""

    def write(self, text: str) -> int:
        lines = (self._part + text).split("\n")
        self._part = lines.pop()
        for line in lines:
            line = self._COLOUR.sub("", line)
            if line.strip() and not line[:1].isspace():  # indented: a message's details
                say("ray: " + line.split(". ", 1)[0].rstrip(".")[:300])
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _reason(exc: BaseException) -> str:
    """An exception in a line: its type and its message's first sentence (Ray's go on for a paragraph)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    text = text.split(". ", 1)[0].rstrip(".")
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _count_in_background(args: argparse.Namespace, holder: dict[str, int]) -> None:
    """The number of photos, for the time left: a second walk of the folders (and list file), quietly, beside the
    run. Not for a list on standard input, which can be read once only."""
    from .answering import named

    if args.files_from == "-":
        return

    def count() -> None:
        try:
            holder["total"] = sum(1 for _ in Expansion(named(args), quiet=True))
        except OSError:
            pass

    threading.Thread(target=count, name="count-photos", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    """`classify --ray`: options checked already (classify.check_options)."""
    use_token()
    try:
        import ray
    except ImportError:
        say(f"classify --ray needs Ray, which is not installed here: {EXTRA} (here and on every node; the "
            "standalone app has no Ray)")
        return EXIT_USAGE
    from .. import __version__
    from ..core.checkpoint import read_checkpoint
    from ..core.classifier import MAX_BATCH
    from ..core.errors import ResnextGuiError
    from ..core.weights import find_weights

    try:  # read and checked here, as for a local run; the nodes get these numbers, not the file
        checkpoint = read_checkpoint(find_weights(args.weights))
    except ResnextGuiError as exc:
        say(str(exc))
        return EXIT_USAGE
    if args.batch_size is not None and args.batch_size > MAX_BATCH:
        say(f"note: --batch-size {args.batch_size} is capped at {MAX_BATCH} (larger batches only cost memory)")
        args.batch_size = MAX_BATCH
    utf8_stdout()
    records = sys.stdout
    sys.stdout = RayNotes()  # Ray prints its messages (a worker died, ...) on stdout: the records' alone
    try:
        say(f"joining the Ray cluster at {args.ray}…")
        problem = connect(ray, args.ray)
        if problem:
            say(problem)
            return EXIT_USAGE
        try:
            return _run(ray, args, checkpoint, __version__, records)
        finally:
            ray.shutdown()
    finally:
        sys.stdout = records


def _run(ray: Any, args: argparse.Namespace, checkpoint: Checkpoint, version: str, records: TextIO) -> int:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ..core.kinds import DEFAULT_METHOD
    from ..core.records import RecordWriter, extra_columns
    from .answering import Sink, named, open_answers, tell

    nodes = alive_nodes(ray)
    places = placements(nodes, args.device)
    if not places:
        say(f"no node of the cluster at {args.ray} can run the model"
            + (": none has a GPU (--device cuda)" if args.device == "cuda" else ": none offers a CPU or GPU to Ray"))
        return EXIT_USAGE
    say(f"loading the model on {plural(len(places), 'worker')} of {plural(len(nodes), 'node')}…")
    settings = Settings.of(args)
    stored = ray.put(checkpoint)  # once into the object store; each node fetches it from there
    remote = ray.remote(actor_class())
    cwd = os.getcwd()

    def make(place: Placement) -> Any:  # no restarts by Ray: the driver starts a new one and resends its photos
        return remote.options(
            num_cpus=place.num_cpus, num_gpus=place.num_gpus, max_restarts=0, max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(place.node.id, soft=False),
        ).remote(version, dataclasses.asdict(settings), [stored], place.device, place.node.name, cwd)

    workers = [Worker(place, make) for place in places]
    for worker in workers:
        worker.start()

    topk = max(1, min(int(args.topk), checkpoint.num_classes))
    model = _Model(checkpoint, topk)
    answers = open_answers(args, model) if args.library else None  # type: ignore[arg-type]  # the library's key and topk
    keywords = KeywordWriter(args.xmp_min_prob, args.xmp_into_file, checkpoint.labels, checkpoint.source.path) \
        if args.xmp else None
    cams = CamWriter(Path(args.cam_dir)) if args.cam_dir else None
    counted: dict[str, int] = {}
    _count_in_background(args, counted)
    progress = Progress(None)
    out = RecordWriter(Stdout(records), args.format, topk,
                       extra_columns(args.cam_method != DEFAULT_METHOD, args.faithfulness))
    sink = Sink(out, progress, cams, answers, keywords)
    found = Expansion(named(args))

    def total() -> None:
        if progress.total is None and "total" in counted:
            progress.total = max(counted["total"], progress.done)

    loop = Run(ray, workers, iter(found), sink, answers, version)
    try:
        out.begin()
        why = loop.run(total)
    except OutputError as exc:
        sys.stdout = records
        silence_stdout()
        say(f"cannot write the results to standard output: {exc}")
        return EXIT_SOME_FAILED
    except OSError as exc:  # the --files-from list could not be read to its end
        progress.close()
        say(f"classify: --files-from {args.files_from} cannot be read: {exc.strerror or exc}")
        return EXIT_SOME_FAILED
    except (KeyboardInterrupt, Terminated) as exc:
        progress.close()
        return stopped(exc, "every finished image was written", newline=False)
    if why == "refused":  # before any photo was sent
        for problem in dict.fromkeys(loop.refused):
            say(problem)
        return EXIT_USAGE
    progress.close()
    if answers is not None:
        tell(answers)
        answers.library.close()
        say(f"{answers.cached} answered from the results library, {answers.computed} classified")
    if why and not loop.ever_ready:
        say(f"no node of the cluster at {args.ray} could load the model (the reasons are above)")
        return EXIT_USAGE
    if why:
        say(f"{why}; {progress.done} photos were answered" + ("; run again with --library to go on from there"
                                                                if answers is not None else ""))
        return EXIT_SOME_FAILED
    if progress.done == 0:
        say("nothing to classify: no image files were found")
    done_with_skips(found.unreadable, found.skipped)
    return EXIT_SOME_FAILED if sink.failed or found.unreadable or progress.done == 0 else EXIT_OK


class _Model:
    """What the results library needs to know of the model on the nodes: its checkpoint, preprocessing, classes."""

    def __init__(self, checkpoint: Checkpoint, topk: int) -> None:
        self.checkpoint, self.topk = checkpoint, topk
        self.preprocessing = checkpoint.source.transforms_variant.preprocessing
