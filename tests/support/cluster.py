"""A real Ray cluster of several nodes on this machine, for the cluster tests: its own network namespace with only
loopback up (no traffic leaves the machine) and its own process namespace (its processes are its own to stop)."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

PORT = 6379  # free by construction: the namespace has no other listener
# The namespace's first process: brings loopback up, says so, then reaps whatever the nodes leave to it
_INIT = """
import os, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
print("ready", flush=True)
sys.stdout.close()
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
"""


def cannot_run() -> str | None:
    """Why a loopback cluster cannot be made here; None if it can."""
    if os.geteuid() != 0:
        return "a loopback Ray cluster needs its own network namespace: root only (CI runs as root)"
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if missing:
        return f"a loopback Ray cluster needs {', '.join(missing)}: apt-get install util-linux iproute2"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed: pip install -e '.[test,cluster]' (make test does)"
    return None


class LoopbackCluster:
    """``start(n)``: a head and n - 1 more nodes of one CPU each, token authentication on (the token in ``home``).
    ``driver(...)``: a command in the cluster's network (e.g. `resnext-gui classify --ray`); ``close()`` stops
    every process the cluster started."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.temp = Path(tempfile.mkdtemp(prefix="rgc", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
        self.env = {**os.environ, **(env or {}), "HOME": str(home), "RAY_AUTH_MODE": "token"}
        self.address = f"127.0.0.1:{PORT}"
        self.log = open(self.temp / "nodes.log", "w")
        self.init = None
        self.holder = subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc", "--net", sys.executable, "-c", _INIT],
                                       stdout=subprocess.PIPE, stderr=self.log, text=True)
        try:
            if self.holder.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the namespace did not start: {self._log_tail()}")
            children = Path(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children").read_text().split()
            self.init = int(children[0])
            self.pid_ns = os.readlink(f"/proc/{self.init}/ns/pid")  # which processes are the cluster's
        except BaseException:
            self.close()
            raise

    def _log_tail(self) -> str:
        self.log.flush()
        return (self.temp / "nodes.log").read_text()[-3000:]

    def _inside(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> None:
        """A command in all the cluster's namespaces (network, processes, /proc)."""
        r = subprocess.run(["nsenter", "-t", str(self.init), "-n", "-p", "-m", *args], env=env or self.env,
                           stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, cwd=self.temp, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:4])}... failed ({r.returncode}): {self._log_tail()}")

    def ray(self, *args: str, env: dict[str, str] | None = None) -> None:
        self._inside(sys.executable, "-m", "ray.scripts.scripts", *args, env=env)

    def start(self, nodes: int = 2) -> LoopbackCluster:
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "300000000",
                  "--disable-usage-stats"]
        self.ray("get-auth-token", "--generate")  # ~/.ray/auth_token in the test's home: the cluster's token
        self.ray("start", "--head", "--port", str(PORT), "--temp-dir", str(self.temp), "--include-dashboard=false", *common)
        for _ in range(nodes - 1):
            self.add_node()
        return self

    def add_node(self, **env: str) -> None:
        self.ray("start", "--address", self.address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                 "--object-store-memory", "300000000", "--disable-usage-stats", env={**self.env, **env})

    def driver(self, *args: str, **kwargs) -> subprocess.Popen:
        """``args`` started in the cluster's network (not its process namespace: the pid is the command's own)."""
        return subprocess.Popen(["nsenter", "-t", str(self.init), "-n", *args], env=kwargs.pop("env", self.env), **kwargs)

    def hide_from_nodes(self, folder: Path) -> None:
        """An empty file system over ``folder`` where the nodes run (their own mount namespace): what is in it is
        still there for this machine and for a driver (which shares only the cluster's network)."""
        self._inside("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder))

    def show_to_nodes(self, folder: Path) -> None:
        self._inside("umount", str(folder))

    def processes(self) -> list[tuple[int, list[str]]]:
        """(pid, command line) of every live process of the cluster (not the dead waiting to be reaped), as this
        machine numbers them."""
        if self.init is None:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != self.pid_ns:
                    continue
                if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                argv = [a.decode(errors="replace") for a in Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0") if a]
            except OSError:
                continue
            found.append((int(entry), argv))
        return found

    def workers(self) -> list[int]:
        """The processes of the classifying actors."""
        return [pid for pid, argv in self.processes() if argv and argv[0].startswith("ray::NodeClassifier")]

    def raylets(self, head: bool) -> list[int]:
        return [pid for pid, argv in self.processes()
                if argv and argv[0].endswith("/raylet") and ("--head" in argv) == head]

    def close(self) -> None:
        try:
            if self.init is not None:
                try:
                    self.ray("stop", "--force")  # this namespace's Ray only: it has its own process numbers
                except (RuntimeError, subprocess.TimeoutExpired):
                    pass
                os.kill(self.init, signal.SIGKILL)  # and with it every process left in its namespace
                for pid, _ in self.processes():  # the kernel ends them one by one: wait for each to be gone
                    try:
                        fd = os.pidfd_open(pid)
                    except OSError:
                        continue
                    try:
                        select.select([fd], [], [], 30)
                    finally:
                        os.close(fd)
        except ProcessLookupError:
            pass
        finally:
            self.holder.kill()
            self.holder.wait(30)
            self.holder.stdout.close()
            self.log.close()
            shutil.rmtree(self.temp, ignore_errors=True)
