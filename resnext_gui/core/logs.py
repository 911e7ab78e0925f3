"""The app's log: a rotating file in its state folder (under 1 MB in all), start-up facts, and every unexpected exception with its traceback.

The window logs to the file (Help → Show Log Folder opens its folder); the CLI logs to stderr only with
``--verbose``. Everything in the package logs through ``logging.getLogger(__name__)``, under the ``resnext_gui``
logger configured here.
"""

from __future__ import annotations

import logging
import logging.handlers
import platform
import sys
from pathlib import Path
from types import TracebackType

from .files import state_root

ROOT = "resnext_gui"
LOG_NAME = "resnext-gui.log"
MAX_BYTES = 400 * 1024  # the file and its one older copy stay under 1 MB together
BACKUPS = 1
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"

_file: Path | None = None


def log_folder() -> Path:
    return state_root()


def log_file() -> Path | None:
    """The log file in use (None: the app logs to no file, e.g. the CLI)."""
    return _file


def to_file(folder: Path | None = None) -> Path | None:
    """Log INFO and above to ``folder``/resnext-gui.log (default: the state folder), rotated; the file, or None
    when it cannot be written (the app runs on without a log)."""
    global _file
    path = (folder or log_folder()) / LOG_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=False)
    except OSError:
        return None
    _attach(handler)
    _file = path
    return path


def to_stderr(verbose: bool) -> None:
    """The CLI: warnings and above on stderr, everything from INFO with ``verbose``."""
    _attach(logging.StreamHandler(sys.stderr), logging.INFO if verbose else logging.WARNING)


def _attach(handler: logging.Handler, level: int = logging.INFO) -> None:
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    logger = logging.getLogger(ROOT)
    for old in list(logger.handlers):  # one destination of each kind: a second start (tests) replaces the first
        if type(old) is type(handler):
            logger.removeHandler(old)
            old.close()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def stop() -> None:
    """Close every handler (at exit, and between tests)."""
    global _file
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    _file = None


def start_facts(front_end: str) -> None:
    """Who is running: the version, Python, the platform (the runtime and device are logged when a model loads)."""
    from .. import version_line

    logging.getLogger(ROOT).info("%s started (%s): Python %s on %s", version_line(), front_end,
                                 platform.python_version(), platform.platform())


def where() -> str:
    """Where to find the details, for a message: "details are in the log: FILE" (or nothing without a file)."""
    return f"; details are in the log: {_file}" if _file is not None else ""


def internal_error(exc: BaseException) -> str:
    """The user's message for an exception nobody expected (its traceback goes to the log)."""
    return f"internal error: {exc!r}{where()}"


def log_uncaught() -> None:
    """Every exception nobody caught (in any thread, or in a Qt slot) goes to the log with its traceback, then on
    to the hook that was there before (which prints it)."""
    import threading

    logger = logging.getLogger(ROOT)
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            logger.critical("uncaught exception", exc_info=(kind, exc, tb))
        previous(kind, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            logger.critical("uncaught exception in %s", args.thread.name if args.thread else "a thread",
                            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = hook
    threading.excepthook = thread_hook
