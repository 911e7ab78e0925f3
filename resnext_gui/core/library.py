"""The results library: every answer kept in a SQLite file, so unchanged photos are never classified twice.

One row per (photo, model). A photo is known by its absolute path, size and modification time (a hit without
reading the file) and by a BLAKE2b hash of its bytes (a moved, renamed or copied file is recognised; a file
changed in place is not a hit). A model is known by its checkpoint's SHA-256 and its preprocessing
(``model_key``). A row holds the top-k, the last stage's Grad-CAM maps (uint8), the crop, the photo's size,
a small thumbnail and the record ``classify`` printed.

The file is opened in WAL mode with a busy timeout, so two processes may write at once; every ``store`` is
its own committed transaction (a killed process loses nothing already stored). A file that is not this app's
library (damaged, truncated, not SQLite, another program's SQLite, a link, a pipe) is renamed aside (with its
-wal and -shm files) and a new library is started, with the reason in ``Library.note``; a folder or a device at
the path is never renamed: results are then kept in memory only. A library written by a newer version of the app
is left untouched: this run keeps its results in memory only, and ``note`` says so.

Qt-free and torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ResnextGuiError
from .files import NotRegularFile, data_root, file_kind, open_regular
from .records import valid_text

if TYPE_CHECKING:
    from PIL import Image

    from .prediction import Prediction
    from .preprocess import Preprocessing

APPLICATION_ID = 0x52584C42  # "RXLB" in the file's header: this app's library, not some other program's SQLite
SCHEMA_VERSION = 1  # PRAGMA user_version of a library this version writes
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction before giving up
SEARCH_MIN_PROB = 0.1  # a label is found by search when it is the top-1 or at least this probable
THUMBNAIL_SIDE = 256
HASH_CHUNK = 1 << 20
_HEADER = b"SQLite format 3\x00"


class LibraryError(ResnextGuiError):
    """The results library could not save or change something (disk full, locked too long, read-only)."""


def default_library_path() -> Path:
    """``$XDG_DATA_HOME/resnext-gui/library.sqlite3`` (``~/.local/share/...``; the platform's own folder elsewhere)."""
    return data_root() / "library.sqlite3"


def model_key(checkpoint_sha256: str, preprocessing: Preprocessing | Any) -> str:
    """The key of the model that answered: the checkpoint's SHA-256 and its preprocessing (resize, crop, mean, std).

    ``preprocessing`` is a ``Preprocessing`` (anything with those four attributes)."""
    parts = [
        str(int(preprocessing.resize)),
        str(int(preprocessing.crop)),
        ",".join(f"{float(v):.6g}" for v in preprocessing.mean),
        ",".join(f"{float(v):.6g}" for v in preprocessing.std),
    ]
    return f"{checkpoint_sha256.lower()}/{'/'.join(parts)}"


def content_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b (128 bits) of a regular file's bytes, in hex; NotRegularFile / OSError when it can't be read."""
    h = hashlib.blake2b(digest_size=16)
    with open_regular(path) as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def thumbnail_bytes(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG of ``image`` at most ``side`` pixels a side (RGB; the aspect ratio kept)."""
    import io

    from PIL import Image as PILImage

    thumb = image.copy() if image.mode == "RGB" else image.convert("RGB")
    thumb.thumbnail((side, side), PILImage.Resampling.BILINEAR, reducing_gap=2.0)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=82, optimize=False)
    return buf.getvalue()


@dataclass
class LibraryEntry:
    """One photo's stored answer from one model."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    model_key: str
    top: list[dict[str, Any]]  # [{"rank", "index", "label", "prob"}], as Prediction.to_record()["top"]
    maps: np.ndarray | None  # (k, h, w) float32 in [0, 1]: the layer4 Grad-CAM maps of ``top`` (stored as uint8)
    crop: tuple[float, float, float, float] | None  # (left, top, right, bottom) in photo pixels
    image_size: tuple[int, int] | None  # (width, height)
    thumbnail: bytes | None  # JPEG bytes, at most THUMBNAIL_SIDE a side
    classified_at: float  # unix time
    record: dict[str, Any]  # the classify record as printed when it was computed (without cam_png/cam_npy)


# ---------------------------------------------------------------------------------------------------------
# Schema and migrations: MIGRATIONS[n] turns a version n-1 library into version n, inside one transaction.

def _create_v1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE photos (
            id INTEGER PRIMARY KEY,
            path BLOB NOT NULL,             -- os.fsencode(absolute path): any file name, exactly
            model_key TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            top TEXT NOT NULL,              -- JSON
            maps BLOB,                      -- uint8, k*h*w
            maps_shape TEXT,                -- "k,h,w"
            crop TEXT,                      -- JSON [l, t, r, b]
            image_w INTEGER, image_h INTEGER,
            thumbnail BLOB,
            classified_at REAL NOT NULL,
            record TEXT NOT NULL,           -- JSON
            search_text TEXT NOT NULL,      -- lower-case file name and labels, for search
            UNIQUE (path, model_key)
        )""")
    conn.execute("CREATE INDEX photos_by_hash ON photos (content_hash, model_key)")
    conn.execute("CREATE TABLE gallery (pos INTEGER PRIMARY KEY, path BLOB NOT NULL)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _create_v1}

_COLUMNS = ("path, model_key, size, mtime_ns, content_hash, top, maps, maps_shape, crop, image_w, image_h, "
            "thumbnail, classified_at, record")


def _error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_damage(exc: sqlite3.Error) -> bool:
    """The file itself is bad (corrupt, not a database), as opposed to busy, full or read-only."""
    code = _error_code(exc)
    if code is not None:
        return code in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _nonempty(path: Path) -> bool:
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


def _header_problem(path: Path, size: int, wal: bool = False) -> str | None:
    """Why a regular file at ``path`` can't be a SQLite database whole, by its header; None if it may be.

    With a write-ahead log beside it the file may be shorter than its header says until the log is
    checkpointed, so truncation is then left to SQLite to find (as damage, when the file is read)."""
    if size == 0:
        return None  # an empty file is an empty database to SQLite
    with open_regular(path) as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(_HEADER):
        return "it is not a SQLite database"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid_for, changes = head[92:96], head[24:28]
    if page_size < 512 or page_size & (page_size - 1):
        return "its header is damaged"
    if pages and valid_for == changes and not wal and size < pages * page_size:
        return f"it is truncated ({size:,} of {pages * page_size:,} bytes)"
    return None


class _Foreign(Exception):
    """The file is a database, but not this app's library (or is damaged): set it aside."""


class _Newer(Exception):
    """The library was written by a newer version of the app."""


class _Untouchable(Exception):
    """Something at the library's path that must not be renamed (a folder, a device): used in memory instead."""


class Library:
    """The results library at ``path`` (default: ``default_library_path()``); ``Library(":memory:")`` keeps nothing.

    Usable from any thread (one connection, used under a lock). Reading methods never raise for the database's
    sake (a problem makes them answer as if nothing were stored, and sets ``note``); ``store``, ``forget``,
    ``clear`` and ``set_gallery`` raise LibraryError when the change could not be saved.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.note: str | None = None
        self.clock = clock  # when an answer is stored (unix time)
        self._lock = threading.RLock()
        self._hashes: dict[tuple[str, int, int, int], str] = {}
        memory = path is not None and os.fspath(path) == ":memory:"
        self.path: Path | None = None if memory else Path(path) if path is not None else default_library_path()
        self._conn: sqlite3.Connection = self._open()

    # ---- opening ----
    @property
    def persistent(self) -> bool:
        """Whether results are kept in a file (False: in memory for this run only)."""
        return self.path is not None and not self._memory

    def _open(self) -> sqlite3.Connection:
        self._memory = self.path is None
        if self.path is None:
            return self._start_memory()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return self._fall_back(f"its folder cannot be created: {_reason(exc)}")
        try:
            return self._open_file(self.path)
        except _Newer as exc:
            return self._fall_back(str(exc), untouched=True)
        except _Untouchable as exc:
            return self._fall_back(str(exc))
        except (_Foreign, sqlite3.DatabaseError, NotRegularFile) as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_damage(exc):
                return self._fall_back(_reason(exc))  # locked for too long, read-only, disk full: don't touch it
            return self._set_aside_and_restart(self._why(exc))
        except (OSError, UnicodeError) as exc:  # UnicodeError: a folder name SQLite can't be given
            return self._fall_back(_reason(exc))

    @staticmethod
    def _why(exc: BaseException) -> str:
        if isinstance(exc, sqlite3.DatabaseError):
            return f"it is damaged ({exc})" if _is_damage(exc) else str(exc)
        return str(exc)

    def _open_file(self, path: Path) -> sqlite3.Connection:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                raise _Foreign("it is a symbolic link, not the library file itself")
            if stat.S_ISDIR(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                raise _Untouchable(f"it is {file_kind(st.st_mode)}, not a library file (left as it is)")
            if not stat.S_ISREG(st.st_mode):
                raise _Foreign(f"it is {file_kind(st.st_mode)}, not a regular file")
            problem = _header_problem(path, st.st_size, wal=_nonempty(path.with_name(path.name + "-wal")))
            if problem:
                raise _Foreign(problem)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            self._check_and_migrate(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # in WAL: a commit survives the process being killed
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_and_migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA trusted_schema=OFF")  # a planted file's views and triggers can't call risky functions
        app_id, version, tables = self._identity(conn)
        if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait and then see the result
        try:
            app_id, version, tables = self._identity(conn)
            if app_id != APPLICATION_ID and (app_id != 0 or tables):
                raise _Foreign("it is not a resnext-gui results library (another program's database?)")
            if version > SCHEMA_VERSION:
                raise _Newer(f"was written by a newer version of resnext-gui (library version {version}; "
                             f"this version knows up to {SCHEMA_VERSION}), so it is left untouched")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](conn)
                conn.execute(f"PRAGMA user_version={step}")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _identity(conn: sqlite3.Connection) -> tuple[int, int, int]:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        return app_id, version, tables

    def _start_memory(self) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._check_and_migrate(conn)
        return conn

    def _fall_back(self, reason: str, untouched: bool = False) -> sqlite3.Connection:
        self._memory = True
        what = "" if untouched else "cannot be used: "
        self.note = (f"The results library {self.path} {what}{reason}. Results are kept only until the app "
                     "closes.")
        return self._start_memory()

    def _set_aside_and_restart(self, reason: str) -> sqlite3.Connection:
        assert self.path is not None
        try:
            aside = self._set_aside(self.path)
        except OSError as exc:
            return self._fall_back(f"{reason}, and it cannot be set aside: {_reason(exc)}")
        try:
            conn = self._open_file(self.path)
        except (sqlite3.Error, OSError, _Foreign, _Newer, _Untouchable) as exc:
            return self._fall_back(f"{reason}; it was set aside as {aside.name}, but a new one cannot be started "
                                   f"({_reason(exc)})")
        self._memory = False
        self.note = (f"The results library {self.path} could not be used ({reason}); it was set aside as "
                     f"{aside.name} and a new one was started.")
        return conn

    @staticmethod
    def _set_aside(path: Path) -> Path:
        """Rename ``path`` (and its -wal/-shm companions, which belong to it) to ``NAME.damaged-TIME[-N]``."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        n = 0
        while True:
            aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
            if not os.path.lexists(aside):
                break
            n += 1
        os.rename(path, aside)
        for extra in ("-wal", "-shm", "-journal"):
            companion = path.with_name(path.name + extra)
            if os.path.lexists(companion):
                try:
                    os.rename(companion, aside.with_name(aside.name + extra))
                except OSError:
                    companion.unlink(missing_ok=True)  # a stale log must never be replayed into the new file
        return aside

    # ---- running statements ----
    def _run(self, action: Callable[[sqlite3.Connection], Any], write: bool, doing: str) -> Any:
        """Run ``action`` under the lock. A damaged file found now is set aside (once) and the action retried
        on the new library; other problems raise LibraryError for writes and return None for reads."""
        with self._lock:
            for attempt in (0, 1):
                try:
                    return action(self._conn)
                except sqlite3.Error as exc:
                    if self._conn.in_transaction:
                        try:
                            self._conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass
                    if attempt == 0 and _is_damage(exc) and self.persistent:
                        self._conn.close()
                        self._conn = self._set_aside_and_restart(self._why(exc))
                        continue
                    message = f"The results library could not {doing}: {exc}"
                    if write:
                        raise LibraryError(message) from None
                    self.note = message
                    return None
                except (ValueError, TypeError, KeyError, IndexError) as exc:  # an entry that does not read back
                    if self._conn.in_transaction:
                        try:
                            self._conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass
                    message = f"The results library could not {doing}: an entry is unreadable ({exc})"
                    if write:
                        raise LibraryError(message) from None
                    self.note = message
                    return None
            return None

    # ---- looking up ----
    def _file_hash(self, path: str, st: os.stat_result) -> str:
        key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
        digest = self._hashes.get(key)
        if digest is None:
            digest = content_hash(path)
            if len(self._hashes) >= 512:
                self._hashes.clear()
            self._hashes[key] = digest
        return digest

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> tuple[str, bytes]:
        absolute = os.path.abspath(os.fspath(path))
        return absolute, os.fsencode(absolute)

    def lookup(self, path: str | os.PathLike[str], model_key: str, min_top: int = 1) -> LibraryEntry | None:
        """The stored answer for the photo at ``path`` from ``model_key``, or None.

        A file with the size and modification time stored is a hit without being read. Otherwise its content
        hash decides: the same bytes stored under this path (touched, not changed) or under another path (a
        moved, renamed or copied file) are a hit, and the row is brought up to date; a moved file's old row
        goes. A changed file is None. ``min_top``: entries with fewer classes than that are not hits."""
        absolute, key = self._key(path)
        try:
            st = os.stat(absolute)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None

        def find(conn: sqlite3.Connection) -> LibraryEntry | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM photos WHERE path=? AND model_key=?", (key, model_key)).fetchone()
            if row is not None and row[2] == st.st_size and row[3] == st.st_mtime_ns:
                return _entry(row)
            try:
                digest = self._file_hash(absolute, st)
            except OSError:
                return None
            if row is not None and row[4] == digest:
                conn.execute("UPDATE photos SET size=?, mtime_ns=? WHERE path=? AND model_key=?",
                             (st.st_size, st.st_mtime_ns, key, model_key))
                return _entry(row, size=st.st_size, mtime_ns=st.st_mtime_ns)
            twins = conn.execute(f"SELECT {_COLUMNS} FROM photos WHERE content_hash=? AND model_key=? AND path<>?",
                                 (digest, model_key, key)).fetchall()
            if not twins:
                return None
            gone = [t for t in twins if not os.path.lexists(os.fsdecode(t[0]))]
            twin = (gone or twins)[0]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"INSERT OR REPLACE INTO photos ({_COLUMNS}, search_text) "
                         f"SELECT ?, model_key, ?, ?, content_hash, top, maps, maps_shape, crop, image_w, image_h, "
                         f"thumbnail, classified_at, record, ? FROM photos WHERE path=? AND model_key=?",
                         (key, st.st_size, st.st_mtime_ns, _search_text(absolute, json.loads(twin[5])), twin[0],
                          model_key))
            if gone:  # moved or renamed: the old name has no photo any more
                conn.execute("DELETE FROM photos WHERE path=? AND model_key=?", (twin[0], model_key))
            conn.execute("COMMIT")
            return _entry(twin, path=absolute, size=st.st_size, mtime_ns=st.st_mtime_ns)

        entry: LibraryEntry | None = self._run(find, write=False, doing="be read")
        if entry is not None and len(entry.top) < min_top:
            return None
        return entry

    def lookup_many(self, paths: Sequence[str | os.PathLike[str]], model_key: str,
                    min_top: int = 1) -> list[LibraryEntry | None]:
        """``lookup`` for each path, in order (one read transaction for the unchanged ones: fast for a gallery)."""
        with self._lock:
            keys = [self._key(p) for p in paths]

            def read(conn: sqlite3.Connection) -> dict[bytes, LibraryEntry]:
                found: dict[bytes, LibraryEntry] = {}
                conn.execute("BEGIN")
                try:
                    for _, key in keys:
                        row = conn.execute(f"SELECT {_COLUMNS} FROM photos WHERE path=? AND model_key=?",
                                           (key, model_key)).fetchone()
                        if row is not None:
                            found[key] = _entry(row)
                finally:
                    conn.execute("COMMIT")
                return found

            stored: dict[bytes, LibraryEntry] = self._run(read, write=False, doing="be read") or {}
            out: list[LibraryEntry | None] = []
            for (absolute, key), raw in zip(keys, paths):
                entry: LibraryEntry | None = stored.get(key)
                try:
                    st = os.stat(absolute)
                except OSError:
                    out.append(None)
                    continue
                unchanged = entry is not None and entry.size == st.st_size and entry.mtime_ns == st.st_mtime_ns
                if not (unchanged and stat.S_ISREG(st.st_mode)):
                    entry = self.lookup(raw, model_key, min_top)
                out.append(entry if entry is not None and len(entry.top) >= min_top else None)
            return out

    # ---- storing ----
    def store(self, path: str | os.PathLike[str], model_key: str, pred: Prediction, thumbnail: bytes | None = None,
              record: dict[str, Any] | None = None) -> None:
        """Keep ``pred`` (an ``ok`` Prediction of the photo at ``path``) as this model's answer, committed on return.

        ``record``: what was printed for it (default ``pred.to_record()``); cam_png/cam_npy are not kept.
        The maps are kept when they are the last stage's Grad-CAM (layer4). A failed prediction is not stored.
        Raises LibraryError when it could not be saved (the photo can't be read, disk full, locked too long)."""
        if not pred.ok:
            return
        absolute, key = self._key(path)
        try:
            st = os.stat(absolute)
            digest = self._file_hash(absolute, st)
        except OSError as exc:
            raise LibraryError(f"The results library could not keep {absolute}: {_reason(exc)}") from None
        rec = dict(record if record is not None else pred.to_record())
        for transient in ("cam_png", "cam_npy", "cached"):
            rec.pop(transient, None)
        top = [{"rank": t.rank, "index": t.index, "label": t.label, "prob": round(float(t.prob), 6)} for t in pred.top]
        maps_blob, shape = None, None
        if pred.cams is not None and pred.layer == "layer4" and getattr(pred, "method", "gradcam") == "gradcam":
            quantised = np.clip(np.rint(np.nan_to_num(np.asarray(pred.cams, dtype=np.float32)) * 255.0), 0, 255)
            maps_blob = quantised.astype(np.uint8).tobytes()
            shape = ",".join(str(d) for d in quantised.shape)
        width, height = pred.image_size if pred.image_size else (None, None)
        values = (key, model_key, st.st_size, st.st_mtime_ns, digest, json.dumps(top), maps_blob, shape,
                  json.dumps(list(pred.crop)) if pred.crop else None, width, height, thumbnail, self.clock(),
                  json.dumps(rec, allow_nan=False, default=_jsonable), _search_text(absolute, top))

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(f"INSERT OR REPLACE INTO photos ({_COLUMNS}, search_text) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

        self._run(insert, write=True, doing=f"keep {absolute}")

    # ---- finding, forgetting ----
    def search(self, text: str, limit: int = 1000, model_key: str | None = None) -> list[LibraryEntry]:
        """Entries whose file name or label (top-1, or any at least SEARCH_MIN_PROB) contains ``text``, any case;
        newest first. ``model_key``: only that model's answers."""
        needle = text.strip().casefold()
        sql = f"SELECT {_COLUMNS} FROM photos WHERE instr(search_text, ?) > 0"
        params: list[Any] = [needle]
        if model_key is not None:
            sql += " AND model_key=?"
            params.append(model_key)
        sql += " ORDER BY classified_at DESC, id DESC LIMIT ?"
        params.append(max(0, int(limit)))
        found: list[LibraryEntry] | None = self._run(
            lambda conn: [_entry(row) for row in conn.execute(sql, params).fetchall()], write=False, doing="be searched")
        return found or []

    def search_ranked(self, text: str, limit: int = 1000,
                      model_key: str | None = None) -> list[tuple[LibraryEntry, int | None]]:
        """``search``, best match first, each entry with the rank of its class that matched (None: found by its
        file name alone): photos whose top class contains ``text`` first, then those where another class of the
        top-k that counts (SEARCH_MIN_PROB or more) does, each group by that class's probability; then those
        found by name, newest first. Empty ``text``: everything, newest first."""
        needle = text.strip().casefold()
        sql = "SELECT id, top, classified_at FROM photos WHERE instr(search_text, ?) > 0"
        params: list[Any] = [needle]
        if model_key is not None:
            sql += " AND model_key=?"
            params.append(model_key)

        def ranked(conn: sqlite3.Connection) -> list[tuple[LibraryEntry, int | None]]:
            hits = []
            for row_id, top, when in conn.execute(sql, params).fetchall():
                found = matched_class(json.loads(top), needle) if needle else None
                rank, prob = found if found is not None else (None, 0.0)
                group = 0 if rank == 1 else 1 if rank is not None else 2
                hits.append(((group, -prob, -float(when), -int(row_id)), int(row_id), rank))
            hits.sort()
            chosen = hits[:max(0, int(limit))]
            rows: dict[int, LibraryEntry] = {}
            for start in range(0, len(chosen), 500):
                ids = [row_id for _key, row_id, _rank in chosen[start:start + 500]]
                marks = ",".join("?" * len(ids))
                for row in conn.execute(f"SELECT id, {_COLUMNS} FROM photos WHERE id IN ({marks})", ids):
                    rows[int(row[0])] = _entry(row[1:])
            return [(rows[row_id], rank) for _key, row_id, rank in chosen if row_id in rows]

        found: list[tuple[LibraryEntry, int | None]] | None = self._run(ranked, write=False, doing="be searched")
        return found or []

    def forget(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Remove every model's answer for these photos; the number of entries removed."""
        keys = [(self._key(p)[1],) for p in paths]

        def delete(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM photos WHERE path=?", keys)
            conn.execute("COMMIT")
            return conn.total_changes - before

        removed: int = self._run(delete, write=True, doing="forget photos")
        return removed

    def clear(self) -> None:
        """Remove every entry and the saved gallery, and give the space back to the disk."""

        def wipe(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM photos")
            conn.execute("DELETE FROM gallery")
            conn.execute("COMMIT")
            conn.execute("VACUUM")
            if self.persistent:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        self._run(wipe, write=True, doing="be cleared")

    def size_bytes(self) -> int:
        """Space the library takes on disk (the file and its write-ahead log)."""
        if not self.persistent or self.path is None:
            return 0
        total = 0
        for name in (self.path.name, self.path.name + "-wal", self.path.name + "-shm"):
            try:
                total += os.stat(self.path.with_name(name)).st_size
            except OSError:
                pass
        return total

    def count(self) -> int:
        """Entries stored (one per photo and model)."""
        n = self._run(lambda conn: conn.execute("SELECT count(*) FROM photos").fetchone()[0], write=False,
                      doing="be read")
        return int(n or 0)

    # ---- the window's gallery ----
    def set_gallery(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Remember the window's gallery, in order, for the next start."""
        rows = [(i, self._key(p)[1]) for i, p in enumerate(paths)]

        def replace(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM gallery")
            conn.executemany("INSERT INTO gallery (pos, path) VALUES (?, ?)", rows)
            conn.execute("COMMIT")

        self._run(replace, write=True, doing="keep the gallery")

    def gallery(self) -> list[str]:
        """The gallery last saved with ``set_gallery`` (absolute paths, in order)."""
        rows = self._run(lambda conn: conn.execute("SELECT path FROM gallery ORDER BY pos").fetchall(), write=False,
                         doing="be read")
        return [os.fsdecode(bytes(r[0])) for r in rows or []]

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: object) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _search_text(absolute: str, top: Sequence[dict[str, Any]]) -> str:
    labels = [valid_text(str(t["label"])) for i, t in enumerate(top) if i == 0 or float(t["prob"]) >= SEARCH_MIN_PROB]
    return "\n".join([valid_text(os.path.basename(absolute)), *labels]).casefold()


def matched_class(top: Sequence[dict[str, Any]], needle: str) -> tuple[int, float] | None:
    """(rank, probability) of the best-ranked class of ``top`` whose label contains ``needle`` (case-folded) and
    that search counts: the top class, or another at SEARCH_MIN_PROB or more; None when none does."""
    for i, t in enumerate(top):
        prob = float(t["prob"])
        if (i == 0 or prob >= SEARCH_MIN_PROB) and needle in valid_text(str(t["label"])).casefold():
            return int(t.get("rank", i + 1)), prob
    return None


def _entry(row: tuple[Any, ...], path: str | None = None, size: int | None = None,
           mtime_ns: int | None = None) -> LibraryEntry:
    (raw_path, key, row_size, row_mtime, digest, top, maps, shape, crop, width, height, thumb, when, record) = row
    cams = None
    if maps is not None and shape:
        dims = tuple(int(d) for d in str(shape).split(","))
        cams = np.frombuffer(bytes(maps), dtype=np.uint8).reshape(dims).astype(np.float32) / np.float32(255.0)
    box = json.loads(crop) if crop else None
    return LibraryEntry(
        path=path if path is not None else os.fsdecode(bytes(raw_path)),
        size=int(size if size is not None else row_size),
        mtime_ns=int(mtime_ns if mtime_ns is not None else row_mtime),
        content_hash=str(digest),
        model_key=str(key),
        top=json.loads(top),
        maps=cams,
        crop=(float(box[0]), float(box[1]), float(box[2]), float(box[3])) if box else None,
        image_size=(int(width), int(height)) if width is not None and height is not None else None,
        thumbnail=bytes(thumb) if thumb is not None else None,
        classified_at=float(when),
        record=json.loads(record),
    )
