"""Helpers shared by the tests: generated checkpoints, running the CLI, a local weights server."""

import http.server
import os
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_checkpoint(path: Path, seed: int = 0, num_classes: int = 1000) -> Path:
    """A checkpoint with the official file's keys and shapes: torchvision's own init, seeded."""
    import torch
    from torchvision.models import resnext50_32x4d

    torch.manual_seed(seed)
    model = resnext50_32x4d(weights=None, num_classes=num_classes)
    torch.save(model.state_dict(), path)
    return path


# Each test photo's own class, given to it by fit_head: image-dependent, confident answers to assert.
PHOTO_CLASSES = {"chelsea": 281, "coffee": 967, "rocket": 812, "astronaut": 834}  # tabby, espresso, space shuttle, suit


def fit_head(path: Path, photos: dict, classes: dict = PHOTO_CLASSES, margin: float = 12.0) -> Path:
    """Give a checkpoint's random head real answers: least squares from the photos' pooled last-stage
    features to a logit of ``margin`` for each photo's class. The features come from torchvision's own
    network and the official weights' own transforms, not from the app's code, so a preprocessing or model
    bug in the app shows up as a wrong answer instead of being fitted into the head."""
    import torch
    from PIL import Image, ImageOps
    from torchvision.models import ResNeXt50_32X4D_Weights, resnext50_32x4d

    state = torch.load(path, weights_only=True)
    model = resnext50_32x4d()
    model.load_state_dict(state)
    trunk = torch.nn.Sequential(*list(model.children())[:-1]).eval()  # everything up to the global pool
    reference = ResNeXt50_32X4D_Weights.IMAGENET1K_V2.transforms()
    with torch.inference_mode():
        batch = torch.stack([reference(ImageOps.exif_transpose(Image.open(photos[name])).convert("RGB"))
                             for name in classes])
        feats = trunk(batch).flatten(1).double()  # (n, 2048)
    targets = torch.zeros(len(classes), model.fc.out_features, dtype=torch.float64)
    for row, cls in enumerate(classes.values()):
        targets[row, cls] = margin
    weight = (torch.linalg.pinv(feats) @ targets).T  # the least-norm exact fit
    state["fc.weight"] = weight.float().contiguous()
    state["fc.bias"] = torch.zeros(model.fc.out_features)
    torch.save(state, path)
    return path


def run_cli(*args, env=None, timeout=180, cwd=None, process=False) -> subprocess.CompletedProcess:
    """Run `resnext-gui ARGS...` and return its exit code, stdout and stderr.

    In this process by default (the CLI's own main(), with stdout, stderr, environment and folder swapped for
    the call): the same code path without starting Python and importing torch again. ``process=True`` (and
    every `--option` form, such as --self-test) runs `python -m resnext_gui` in a subprocess instead.
    """
    argv = [str(a) for a in args]
    if not process and argv and not argv[0].startswith("-"):
        return _run_cli_here(argv, env or {}, cwd)
    return subprocess.run(
        [sys.executable, "-m", "resnext_gui", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd or REPO,
    )


def _run_cli_here(argv: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    import io

    from resnext_gui.__main__ import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    streams = sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", newline="\n", write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", newline="\n", write_through=True)
    try:
        os.environ.update({k: str(v) for k, v in env.items()})
        os.chdir(cwd or REPO)
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    finally:
        for stream in (sys.stdout, sys.stderr):
            if not stream.closed:
                stream.flush()
        stdout, stderr = out.getvalue(), err.getvalue()
        sys.stdout, sys.stderr = streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["resnext-gui", *argv], code, stdout.decode("utf-8", "replace"),
                                       stderr.decode("utf-8", "replace"))


class XDisplay:
    """A private Xvfb display (a free number chosen by Xvfb itself) with openbox managing its windows.
    ``env``: os.environ plus DISPLAY (and ``extra``)."""

    def __init__(self, **extra: str) -> None:
        self.extra = extra

    def __enter__(self) -> dict:
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
                                     pass_fds=(write,), stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as fh:
            number = fh.readline().strip()
        self.env = {**os.environ, "DISPLAY": f":{number}", **self.extra}
        self.wm = subprocess.Popen(["openbox"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.env

    def __exit__(self, *exc) -> None:
        self.wm.terminate()
        self.xvfb.terminate()
        self.wm.wait(10)
        self.xvfb.wait(10)


class WeightsServer:
    """An HTTP server on 127.0.0.1 serving generated files, and the ways a real server misbehaves.

    ``/<name>``: the file. ``/drop/<name>``: announces the full length, sends half, closes.
    ``/chunked-drop/<name>``: chunked transfer that stops half-way without the final chunk.
    ``/reset/<name>``: sends half, then resets the connection. ``/stall/<name>``: sends half, sets
    ``stalled`` and waits (until ``release`` is set or the server shuts down). ``/nolength/<name>``: the file
    without Content-Length. ``/forever/<name>``: the file over and over without Content-Length.
    """

    def __init__(self, files: dict[str, bytes], tls: "LocalCA | None" = None) -> None:
        self.files = files
        self.tls = tls
        self.requests: list[str] = []
        self.stalled = threading.Event()
        self.stall_over = threading.Event()  # the stalled response ended (released, or 60 s passed)
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked transfer needs it

            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                mode = parts[0] if len(parts) > 1 else ""
                body = server.files.get(parts[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.close_connection = True
                try:
                    self._serve(mode, body)
                except OSError:  # the client went away, as it should when it gives up
                    pass

            def _serve(self, mode, body):
                half = body[: len(body) // 2]
                self.send_response(200)
                if mode == "chunked-drop":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n" % len(half) + half + b"\r\n")
                    self.wfile.flush()
                    return
                if mode not in ("nolength", "forever"):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "forever":
                    while not server.release.is_set():
                        self.wfile.write(body)
                    return
                if mode in ("drop", "reset", "stall"):
                    self.wfile.write(half)
                    self.wfile.flush()
                    if mode == "reset":
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    elif mode == "stall":
                        server.stalled.set()
                        server.release.wait(60)
                        server.stall_over.set()
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class LocalCA:
    """A certificate authority made for one test (openssl), and a server certificate it signed for 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, self.ca_key = folder / "ca.pem", folder / "ca.key"
        self.cert, self.key = folder / "server.pem", folder / "server.key"
        ext = folder / "ext.cnf"
        ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")

        def openssl(*args):
            subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, cwd=folder)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                "-subj", "/CN=resnext-gui test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", folder / "server.csr",
                "-subj", "/CN=127.0.0.1")
        openssl("x509", "-req", "-in", folder / "server.csr", "-CA", self.ca, "-CAkey", self.ca_key,
                "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", ext)


def copies(photos, n: int, folder: Path, prefix: str = "copy") -> list[Path]:
    """``n`` files cycling through ``photos`` (a batch to drop), named prefix00.png, prefix01.png, ..."""
    import shutil

    out = []
    for i in range(n):
        p = folder / f"{prefix}{i:02}.png"
        shutil.copy(photos[i % len(photos)], p)
        out.append(p)
    return out


def device_without_memory(clf):
    """Put ``clf`` on a device that runs out of memory: its batches go to torch's meta device (tensors without
    storage), where the network's first layer raises the real ``torch.OutOfMemoryError``, as CUDA does. The
    network itself stays on the CPU, so the fallback runs it for real. Returns the hook's handle."""
    import torch

    def no_memory(module, args):
        if args[0].device.type != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    from resnext_gui.core.devices import Device

    assert clf.backend == "torch", "out of memory is the PyTorch runtime's case"
    handle = clf.runtime.model.conv1.register_forward_pre_hook(no_memory)
    clf.runtime.device = Device("meta")
    return handle


def make_mixed_folder(root: Path, photo: Path) -> dict[str, bool]:
    """A folder of what real photo folders hold: broken files and valid-but-odd images.

    Returns {relative path: whether it should classify}. ``photo`` is a real RGB photo to derive from.
    """
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    base = Image.open(photo).convert("RGB")
    expect: dict[str, bool] = {}

    def save(name, im, ok=True, **kw):
        im.save(root / name, **kw)
        expect[name] = ok

    def raw(name, data, ok=False):
        (root / name).write_bytes(data)
        expect[name] = ok

    jpeg = root / "_tmp.jpg"
    base.save(jpeg, quality=90)
    jpeg_bytes = jpeg.read_bytes()
    jpeg.unlink()
    png = root / "_tmp.png"
    base.save(png)
    png_bytes = png.read_bytes()
    png.unlink()

    # broken
    raw("empty.jpg", b"")
    raw("text named as photo.jpg", b"Dear diary, today I renamed a text file.\n")
    raw("truncated.jpg", jpeg_bytes[: len(jpeg_bytes) // 3])
    raw("truncated.png", png_bytes[: len(png_bytes) // 3])
    raw("heic renamed.jpg", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    raw("bomb.png", b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))
    # valid but odd
    gray16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    save("gray16.png", Image.fromarray(gray16))
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    save("palette transparent.png", pal, transparency=0)
    save("la.png", base.convert("LA"))
    save("rgba.png", base.convert("RGBA"))
    save("bilevel.png", base.convert("1"))
    save("cmyk.jpg", base.convert("CMYK"), quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    save("rotated.jpg", base.transpose(Image.Transpose.ROTATE_90), exif=exif, quality=90)
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=80, loop=0)
    save("animated.webp", frames[0], save_all=True, append_images=frames[1:], duration=80, loop=0)
    save("scan.tif", base)
    save("old.bmp", base)
    save("dot.png", Image.new("RGB", (1, 1), (200, 30, 30)))
    save("sliver.png", base.resize((3, 900)))
    save("big 8000x6000.jpg", base.resize((8000, 6000)), quality=85)
    save("Ünïcödé 写真 photo.png", base)
    (root / "sub dir").mkdir(exist_ok=True)
    save("sub dir/  spaces  .jpg", base, quality=90)
    return expect


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def torch_fit_head(x, y, num_classes: int, l2: float, max_iter: int = 100):
    """The reference for train.fit_head: the same objective minimised by torch.optim.LBFGS (strong Wolfe).

    Returns the (C, D) float32 weights on the raw features (the fit runs on features divided by their root
    mean square, as the app's does)."""
    import numpy as np
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    scale = float(xt.pow(2).mean().sqrt().clamp_min(1e-12))
    z = xt / scale
    w = torch.zeros(num_classes, xt.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w.T, yt) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (w / scale).detach().numpy()


def head_loss(weight, x, y, l2: float) -> float:
    """The objective both fits minimise, evaluated in float64 for weights on the raw features."""
    import numpy as np

    x = np.asarray(x, np.float64)
    scale = np.sqrt(np.mean(x * x))
    logits = (x / scale) @ (np.asarray(weight, np.float64) * scale).T
    top = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    w = np.asarray(weight, np.float64) * scale
    return float(np.mean(lse - logits[np.arange(len(y)), y]) + 0.5 * l2 * np.sum(w * w))


def import_blocker(*packages: str) -> str:
    """Python source that makes ``packages`` (and their submodules) impossible to import: the start of a script
    run in a subprocess, as if they were not installed."""
    return f"""
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ImportError(f"{{name}} is blocked in this test")

sys.meta_path.insert(0, Blocked())
"""


BLOCK_TORCH = import_blocker("torch", "torchvision", "functorch", "triton")  # the light app's condition
BLOCK_QT = import_blocker("PySide6", "shiboken6", "PyQt5", "PyQt6")


def near_duplicates(photos: dict, folder: Path) -> dict[str, Path]:
    """A gallery with near-duplicates, by name: the coffee (PNG) with a half-size copy recompressed hard and a
    brighter copy of the same size (the original made the newer file: among the two largest, the newest is the
    keeper), the cat with a recompressed copy, and two photos with none (astronaut, rocket)."""
    from PIL import Image, ImageEnhance

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    with Image.open(photos["coffee"]) as im:
        coffee = im.convert("RGB")
    with Image.open(photos["chelsea"]) as im:
        cat = im.convert("RGB")
    out["coffee-small"] = folder / "coffee-small.jpg"
    coffee.resize((coffee.width // 2, coffee.height // 2), Image.Resampling.LANCZOS).save(out["coffee-small"], quality=40)
    out["coffee-bright"] = folder / "coffee-bright.jpg"
    ImageEnhance.Brightness(coffee).enhance(1.3).save(out["coffee-bright"], quality=90)
    out["coffee"] = folder / "coffee.png"
    coffee.save(out["coffee"])
    out["chelsea"] = folder / "chelsea.png"
    cat.save(out["chelsea"])
    out["chelsea-copy"] = folder / "chelsea-copy.jpg"
    cat.save(out["chelsea-copy"], quality=60)
    for name, key in (("astronaut.png", "astronaut"), ("rocket.jpg", "rocket_jpg")):
        out[name.split(".")[0]] = folder / name
        out[name.split(".")[0]].write_bytes(Path(photos[key]).read_bytes())
    for k, path in enumerate(out.values()):  # modification times one second apart, in the order written
        os.utime(path, ns=(1_700_000_000_000_000_000 + k * 10**9,) * 2)
    return out
