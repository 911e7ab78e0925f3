"""Helpers shared by the tests: generated checkpoints, running the CLI, a local weights server."""

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_checkpoint(path: Path, seed: int = 0, num_classes: int = 1000) -> Path:
    """A checkpoint with the official file's keys and shapes: torchvision's own init, seeded."""
    import torch
    from torchvision.models import resnext50_32x4d

    torch.manual_seed(seed)
    model = resnext50_32x4d(weights=None, num_classes=num_classes)
    torch.save(model.state_dict(), path)
    return path


def run_cli(*args, env=None, timeout=180, cwd=None) -> subprocess.CompletedProcess:
    """Run `python -m resnext_gui ...` in a subprocess with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "resnext_gui", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd or REPO,
    )


class WeightsServer:
    """An HTTP server on 127.0.0.1 serving generated files; ``/drop/<name>`` stops half-way."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                drop = self.path.startswith("/drop/")
                name = self.path.rsplit("/", 1)[-1]
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if drop else body)
                if drop:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
