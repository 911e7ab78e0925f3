"""The results library: every answer kept in a SQLite file, so unchanged photos are never classified twice.

One row per (photo, model). A photo is known by its absolute path and its change stamp (size, modification
time, change time, inode and device: a hit without reading the file), and by a BLAKE2b hash of its bytes (a
moved, renamed or copied file is recognised). As in git's index, the change time and the inode are what user
space cannot set back: a file rewritten in place with its old size and modification time restored (``touch -r``,
as backup and sync tools do), or replaced by ``mv``, no longer matches its stamp, and its content hash then
decides (the same bytes: a hit, the stamp brought up to date; other bytes: computed again). A model is known by
its checkpoint's SHA-256 and its preprocessing (``model_key``). A row holds the top-k, the last stage's Grad-CAM
maps (uint8), the crop, the photo's size, a small thumbnail and the record ``classify`` printed; beside it (table
``vectors``, schema 3) the photo's pooled features (2,048 float16) and its 64-bit dHash, which core.similarity
compares. A row without them (an answer stored before schema 3) gets them the next time the photo is computed.

The file is opened in WAL mode with a busy timeout, so two processes may write at once; every ``store`` is
its own committed transaction (a killed process loses nothing already stored).

What is found at the library's path, and what is done with it (each said once in ``note``; ``take_note``):

- this app's library (its header carries ``APPLICATION_ID``; every library the app wrote does, from its first
  commit), or an empty file (nothing in it to lose): used, an older version migrated in place;
- this app's library, damaged (truncated, corrupt pages found on opening or in the middle of any later read):
  renamed aside as ``NAME.damaged-TIME`` (with its -wal and -shm files) and a new library started;
- a symbolic link or a named pipe: no one's data (the app never makes one, and renaming it loses nothing; a
  link's target is never opened, let alone written): renamed aside the same way and a new library started;
- anything else, which may be the user's own file (a text file, a photo, another program's database, a
  library whose header is destroyed): refused and left byte for byte untouched, as are a folder and a device;
  results are then kept in memory for this run only. A library written by a newer version of the app is left
  untouched too;
- a link, pipe, folder or anything but a plain file at the -wal, -shm or -journal name: renamed aside, never
  written through, and the library goes on from its main file.

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
SCHEMA_VERSION = 3  # PRAGMA user_version of a library this version writes
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction before giving up
SEARCH_MIN_PROB = 0.1  # a label is found by search when it is the top-1 or at least this probable
THUMBNAIL_SIDE = 256
HASH_CHUNK = 1 << 20
# A stamp taken less than this after the file's last change may miss a change made within the same tick of the
# file system's clock (coarse on most, 1-2 s on some): its change time is then not kept, so the next look hashes
# the file once ("racily clean" entries, as git's index calls them).
RACY_NS = 2 * 10**9
_HEADER = b"SQLite format 3\x00"
_COMPANIONS = ("-wal", "-shm", "-journal")  # SQLite's files beside the library, named after it


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
    features: np.ndarray | None = None  # (2048,) float16 pooled features; None: stored before they were kept
    dhash: int | None = None  # the photo's 64-bit dHash (0 to 2**64 - 1); None with ``features``


@dataclass
class StoredVectors:
    """Every stored feature vector of one model, as arrays (``Library.stored_vectors``); row k is ``paths[k]``."""

    paths: list[str]
    sizes: np.ndarray  # (N,) int64: the file's size when stored
    mtimes_ns: np.ndarray  # (N,) int64: its modification time when stored
    pixels: np.ndarray  # (N,) int64: width x height of the photo (0 when not known)
    features: np.ndarray  # (N, 2048) float16
    hashes: np.ndarray  # (N,) uint64 dHashes
    missing: list[str]  # this model's photos in the library that have no vector yet


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


def _add_change_stamp(conn: sqlite3.Connection) -> None:
    """v2: the change time, inode and device beside size and mtime (STAMP_COLUMNS). Rows from before have none
    (NULL), so each is hashed once at its next lookup and its stamp then filled in."""
    for column in ("ctime_ns", "inode", "device"):
        conn.execute(f"ALTER TABLE photos ADD COLUMN {column} INTEGER")


def _add_vectors(conn: sqlite3.Connection) -> None:
    """v3: each answer's features and dHash, in their own table so that reading every vector is one short row
    per photo (not a walk through the photos' thumbnails). A photo's row going (forgotten, replaced, moved) takes
    its vector with it. Existing answers have none until their photo is computed again."""
    conn.execute("""
        CREATE TABLE vectors (
            photo INTEGER PRIMARY KEY,      -- photos.id
            dhash INTEGER NOT NULL,         -- the 64-bit dHash, as SQLite's signed 64-bit integer
            features BLOB NOT NULL          -- 2048 float16, little-endian
        )""")
    conn.execute("CREATE TRIGGER photos_vector_gone AFTER DELETE ON photos BEGIN "
                 "DELETE FROM vectors WHERE photo = OLD.id; END")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _create_v1, 2: _add_change_stamp, 3: _add_vectors}
FEATURE_DIM = 2048

# What says a file is unchanged without reading it: the one list of the stamp's fields (``_stamp`` fills them).
STAMP_COLUMNS = ("size", "mtime_ns", "ctime_ns", "inode", "device")
_STAMP = ", ".join(STAMP_COLUMNS)
_STAMP_SET = ", ".join(f"{c}=?" for c in STAMP_COLUMNS)
_PAYLOAD = "content_hash, top, maps, maps_shape, crop, image_w, image_h, thumbnail, classified_at, record"
_COLUMNS = f"path, model_key, size, mtime_ns, {_PAYLOAD}"  # a LibraryEntry's fields, in _entry's order
_VECTOR = "vectors.dhash, vectors.features"
_ENTRY_FIELDS = 16  # the entry's columns and its vector's
# row[:_ENTRY_FIELDS] the entry with its vector (NULLs where it has none), row[_ENTRY_FIELDS:] its stamp
_SELECT = f"{_COLUMNS}, {_VECTOR}, {', '.join('photos.' + c for c in STAMP_COLUMNS)}"
_FROM = "photos LEFT JOIN vectors ON vectors.photo = photos.id"


def _int64(value: int) -> int:
    """An unsigned 64-bit number (an inode or device number may use the top bit) as SQLite's signed INTEGER."""
    return value - (1 << 64) if value >= 1 << 63 else value


Stamp = tuple[int | None, ...]


def _stamp(st: os.stat_result) -> Stamp:
    """A file's change stamp, in STAMP_COLUMNS' order."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, _int64(st.st_ino), _int64(st.st_dev))


def _stamp_to_keep(st: os.stat_result) -> Stamp:
    """The stamp to store: without its change time (NULL, which matches nothing) while that is within RACY_NS of
    now, since a change made in the same tick would not move it."""
    stamp = _stamp(st)
    if st.st_ctime_ns > time.time_ns() - RACY_NS:
        return (*stamp[:2], None, *stamp[3:])
    return stamp


def _error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_damage(exc: sqlite3.Error) -> bool:
    """The file itself is bad (corrupt, not a database, text this app never wrote), as opposed to busy, full or
    read-only. Text that is not UTF-8 can only come from damage: the library writes every text column itself."""
    code = _error_code(exc)
    if code is not None:
        return code in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "could not decode to utf-8" in text


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _nonempty(path: Path) -> bool:
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


class _Foreign(Exception):
    """No library, but nothing of anyone's either (a link, a pipe), or this app's library, damaged: set it aside."""


class _NotOurs(Exception):
    """A file that may be the user's own (text, a photo, another program's database): left untouched."""


class _Newer(Exception):
    """The library was written by a newer version of the app."""


class _Untouchable(Exception):
    """Something at the library's path that must not be renamed (a folder, a device): used in memory instead."""


def _examine(path: Path, size: int, wal: bool = False) -> None:
    """Whether the regular file at ``path`` may be used as the library, by its first 100 bytes (SQLite's header):
    returns for this app's library and for an empty file; raises _NotOurs for anything else
    (never to be renamed or changed) and _Foreign for this app's library when it is damaged (to be set aside).

    With a write-ahead log beside it the file may be shorter than its header says until the log is
    checkpointed, so truncation is then left to SQLite to find (as damage, when the file is read)."""
    if size == 0:
        return  # an empty file is an empty database to SQLite (and what a run killed at its start leaves)
    with open_regular(path) as fh:
        head = fh.read(100)
    if not head.startswith(_HEADER):
        raise _NotOurs("it is not a resnext-gui results library (not a SQLite database at all)")
    if len(head) < 100:
        raise _NotOurs("it is not a resnext-gui results library (a SQLite file too short to say whose it is)")
    if int.from_bytes(head[68:72], "big") != APPLICATION_ID:  # set in the same transaction as the first tables
        raise _NotOurs("it is not a resnext-gui results library (another program's database)")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid_for, changes = head[92:96], head[24:28]
    if page_size < 512 or page_size & (page_size - 1):
        raise _Foreign("its header is damaged")
    if pages and valid_for == changes and not wal and size < pages * page_size:
        raise _Foreign(f"it is truncated ({size:,} of {pages * page_size:,} bytes)")


def _aside_name(path: Path) -> Path:
    """``NAME.damaged-TIME[-N]`` beside ``path``, a name nothing has yet."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = 0
    while True:
        aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
        if not os.path.lexists(aside):
            return aside
        n += 1


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
        self._hashes: dict[tuple[str, Stamp], str] = {}
        memory = path is not None and os.fspath(path) == ":memory:"
        self.path: Path | None = None if memory else Path(path) if path is not None else default_library_path()
        self._conn: sqlite3.Connection = self._open()

    def take_note(self) -> str | None:
        """What the library has to tell the user (set aside, kept in memory only, a read that failed), once:
        the note is cleared as it is taken. Any call may add one, not only opening."""
        with self._lock:
            note, self.note = self.note, None
            return note

    def _tell(self, text: str) -> None:
        """Add ``text`` to the note not yet taken (once: the same failure at every read is said once)."""
        if self.note is None:
            self.note = text
        elif text not in self.note:
            self.note = f"{self.note} {text}"

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
            return self._fall_back(f"{exc}, so it is left untouched", untouched=True)
        except _NotOurs as exc:  # perhaps the user's own file, named by mistake: never renamed, never written
            return self._fall_back(f"{exc}; it is left untouched")
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
            if "could not decode to utf-8" in str(exc).lower():  # SQLite's message quotes the damaged bytes
                return "it is damaged (an entry holds text that is not UTF-8)"
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
            _examine(path, st.st_size, wal=_nonempty(path.with_name(path.name + "-wal")))
        self._clear_companions(path)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            self._check_and_migrate(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # in WAL: a commit survives the process being killed
        except BaseException:
            conn.close()
            raise
        return conn

    def _clear_companions(self, path: Path) -> None:
        """Set aside what is not a plain file at the -wal, -shm and -journal names (a link, a pipe, a folder):
        SQLite would write through a link or refuse the library for good. The library goes on from its main
        file, which SQLite keeps whole by itself (answers only in a log that is gone are lost)."""
        moved: list[str] = []
        for suffix in _COMPANIONS:
            companion = path.with_name(path.name + suffix)
            try:
                mode = os.lstat(companion).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode):
                continue
            kind = "a symbolic link" if stat.S_ISLNK(mode) else file_kind(mode)
            aside = _aside_name(companion)
            try:
                os.rename(companion, aside)
            except OSError as exc:
                raise _Untouchable(f"{companion.name} beside it is {kind}, not its own file, and it cannot be set "
                                   f"aside: {_reason(exc)}") from None
            moved.append(f"{companion.name} ({kind}) as {aside.name}")
        if moved:
            self._tell(f"The results library {path} had something other than its own files beside it; set aside "
                       f"(never written through): {', '.join(moved)}. The library goes on from its main file.")

    def _check_and_migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA trusted_schema=OFF")  # a planted file's views and triggers can't call risky functions
        conn.execute("PRAGMA recursive_triggers=ON")  # a row that INSERT OR REPLACE replaces takes its vector along
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
                             f"this version knows up to {SCHEMA_VERSION})")
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
        self._tell(f"The results library {self.path} {what}{reason}. Results are kept only until the app closes.")
        return self._start_memory()

    def _set_aside_and_restart(self, reason: str) -> sqlite3.Connection:
        assert self.path is not None
        try:
            aside = self._set_aside(self.path)
        except OSError as exc:
            return self._fall_back(f"{reason}, and it cannot be set aside: {_reason(exc)}")
        try:
            conn = self._open_file(self.path)
        except (sqlite3.Error, OSError, _Foreign, _NotOurs, _Newer, _Untouchable) as exc:
            return self._fall_back(f"{reason}; it was set aside as {aside.name}, but a new one cannot be started "
                                   f"({_reason(exc)})")
        self._memory = False
        self._tell(f"The results library {self.path} could not be used ({reason}); it was set aside as "
                   f"{aside.name} and a new one was started.")
        return conn

    @staticmethod
    def _set_aside(path: Path) -> Path:
        """Rename ``path`` (and its -wal/-shm companions, which belong to it) to ``NAME.damaged-TIME[-N]``."""
        aside = _aside_name(path)
        os.rename(path, aside)
        for extra in _COMPANIONS:
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
                    self._tell(message)
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
                    self._tell(message)
                    return None
            return None

    # ---- looking up ----
    def _file_hash(self, path: str, st: os.stat_result) -> str:
        stamp = _stamp(st)
        digest = self._hashes.get((path, stamp))
        if digest is None:
            digest = content_hash(path)
            if len(self._hashes) >= 512:
                self._hashes.clear()
            if _stamp_to_keep(st) == stamp:  # a file changed just now may change again unseen: not remembered
                self._hashes[(path, stamp)] = digest
        return digest

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> tuple[str, bytes]:
        absolute = os.path.abspath(os.fspath(path))
        return absolute, os.fsencode(absolute)

    def lookup(self, path: str | os.PathLike[str], model_key: str, min_top: int = 1) -> LibraryEntry | None:
        """The stored answer for the photo at ``path`` from ``model_key``, or None.

        A file whose change stamp (STAMP_COLUMNS) is the one stored is a hit without being read. Otherwise its
        content hash decides: the same bytes stored under this path (touched, copied back, renamed over itself)
        or under another path (a moved, renamed or copied file) are a hit, and the row is brought up to date; a
        moved file's old row goes. A changed file is None. ``min_top``: entries with fewer classes than that are
        not hits."""
        absolute, key = self._key(path)
        try:
            st = os.stat(absolute)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None

        def find(conn: sqlite3.Connection) -> LibraryEntry | None:
            row = conn.execute(f"SELECT {_SELECT} FROM {_FROM} WHERE path=? AND model_key=?", (key, model_key)).fetchone()
            if row is not None and tuple(row[_ENTRY_FIELDS:]) == _stamp(st):
                return _entry(row)
            try:
                digest = self._file_hash(absolute, st)
            except OSError:
                return None
            keep = _stamp_to_keep(st)
            if row is not None and row[4] == digest:
                if tuple(row[_ENTRY_FIELDS:]) != keep:
                    conn.execute(f"UPDATE photos SET {_STAMP_SET} WHERE path=? AND model_key=?", (*keep, key, model_key))
                return _entry(row, size=st.st_size, mtime_ns=st.st_mtime_ns)
            twins = conn.execute(f"SELECT {_SELECT} FROM {_FROM} WHERE content_hash=? AND model_key=? AND path<>?",
                                 (digest, model_key, key)).fetchall()
            if not twins:
                return None
            gone = [t for t in twins if not os.path.lexists(os.fsdecode(t[0]))]
            twin = (gone or twins)[0]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"INSERT OR REPLACE INTO photos (path, model_key, {_STAMP}, {_PAYLOAD}, search_text) "
                         f"SELECT ?, model_key, {', '.join('?' * len(keep))}, {_PAYLOAD}, ? "
                         f"FROM photos WHERE path=? AND model_key=?",
                         (key, *keep, _search_text(absolute, json.loads(twin[5])), twin[0], model_key))
            new_id = conn.execute("SELECT id FROM photos WHERE path=? AND model_key=?", (key, model_key)).fetchone()[0]
            _put_vector(conn, new_id, twin[14], twin[15])  # the same bytes: the same features and hash
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

            def read(conn: sqlite3.Connection) -> dict[bytes, tuple[LibraryEntry, Stamp]]:
                found: dict[bytes, tuple[LibraryEntry, Stamp]] = {}
                conn.execute("BEGIN")
                try:
                    for _, key in keys:
                        row = conn.execute(f"SELECT {_SELECT} FROM {_FROM} WHERE path=? AND model_key=?",
                                           (key, model_key)).fetchone()
                        if row is not None:
                            found[key] = (_entry(row), tuple(row[_ENTRY_FIELDS:]))
                finally:
                    conn.execute("COMMIT")
                return found

            stored: dict[bytes, tuple[LibraryEntry, Stamp]] = self._run(read, write=False, doing="be read") or {}
            out: list[LibraryEntry | None] = []
            for (absolute, key), raw in zip(keys, paths):
                try:
                    st = os.stat(absolute)
                except OSError:
                    out.append(None)
                    continue
                found = stored.get(key)
                entry: LibraryEntry | None = found[0] if found is not None else None
                if not (found is not None and found[1] == _stamp(st) and stat.S_ISREG(st.st_mode)):
                    entry = self.lookup(raw, model_key, min_top)
                out.append(entry if entry is not None and len(entry.top) >= min_top else None)
            return out

    # ---- storing ----
    def store(self, path: str | os.PathLike[str], model_key: str, pred: Prediction, thumbnail: bytes | None = None,
              record: dict[str, Any] | None = None) -> None:
        """Keep ``pred`` (an ``ok`` Prediction of the photo at ``path``) as this model's answer, committed on return.

        ``record``: what was printed for it (default ``pred.to_record()``); cam_png/cam_npy are not kept.
        The maps are kept when they are the last stage's Grad-CAM (layer4), and the features and dHash whenever
        the prediction has them. A failed prediction is not stored.
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
        vector = _vector_values(getattr(pred, "features", None), getattr(pred, "dhash", None))
        stamp = _stamp_to_keep(st)
        values = (key, model_key, *stamp, digest, json.dumps(top), maps_blob, shape,
                  json.dumps(list(pred.crop)) if pred.crop else None, width, height, thumbnail, self.clock(),
                  json.dumps(rec, allow_nan=False, default=_jsonable), _search_text(absolute, top))

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(f"INSERT OR REPLACE INTO photos (path, model_key, {_STAMP}, {_PAYLOAD}, search_text) "
                                  f"VALUES ({', '.join('?' * len(values))})", values)
            _put_vector(conn, cursor.lastrowid, *vector)
            conn.execute("COMMIT")

        self._run(insert, write=True, doing=f"keep {absolute}")


    # ---- finding, forgetting ----
    def search(self, text: str, limit: int = 1000, model_key: str | None = None) -> list[LibraryEntry]:
        """Entries whose file name or label (top-1, or any at least SEARCH_MIN_PROB) contains ``text``, any case;
        newest first. ``model_key``: only that model's answers."""
        needle = text.strip().casefold()
        sql = f"SELECT {_SELECT} FROM {_FROM} WHERE instr(search_text, ?) > 0"
        params: list[Any] = [needle]
        if model_key is not None:
            sql += " AND model_key=?"
            params.append(model_key)
        sql += " ORDER BY classified_at DESC, id DESC LIMIT ?"
        params.append(max(0, int(limit)))
        found: list[LibraryEntry] | None = self._run(
            lambda conn: [_entry(row) for row in conn.execute(sql, params).fetchall()], write=False, doing="be searched")
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
            conn.execute("DELETE FROM vectors")
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

    def stored_vectors(self, model_key: str) -> StoredVectors:
        """Every feature vector and dHash stored for ``model_key``, read in one pass into arrays (the fast way to
        compare a whole library), with the paths of this model's photos that have none yet.

        As stored: whether each photo is still there and unchanged is the caller's to check (by size and
        modification time, then ``lookup``), so that a changed photo is never compared by its old vector."""

        def read(conn: sqlite3.Connection) -> StoredVectors:
            conn.execute("BEGIN")
            try:
                n = int(conn.execute("SELECT count(*) FROM photos JOIN vectors ON vectors.photo = photos.id "
                                     "WHERE model_key=?", (model_key,)).fetchone()[0])
                features = np.empty((n, FEATURE_DIM), dtype=np.float16)
                numbers = np.zeros((n, 4), dtype=np.int64)  # size, mtime, pixels, hash
                paths: list[str] = []
                rows = conn.execute(
                    "SELECT path, size, mtime_ns, coalesce(image_w * image_h, 0), vectors.dhash, vectors.features "
                    "FROM photos JOIN vectors ON vectors.photo = photos.id WHERE model_key=? ORDER BY photos.id",
                    (model_key,))
                k = 0
                for path, size, mtime, pixels, digest, blob in rows:
                    if k == n or len(blob) != 2 * FEATURE_DIM:
                        continue  # another process added one since the count, or a vector of another size
                    features[k] = np.frombuffer(blob, dtype="<f2")
                    numbers[k] = (size, mtime, pixels, digest)
                    paths.append(os.fsdecode(bytes(path)))
                    k += 1
                missing = [os.fsdecode(bytes(r[0])) for r in conn.execute(
                    "SELECT path FROM photos WHERE model_key=? AND id NOT IN (SELECT photo FROM vectors) "
                    "ORDER BY id", (model_key,))]
            finally:
                conn.execute("COMMIT")
            return StoredVectors(paths, numbers[:k, 0].copy(), numbers[:k, 1].copy(), numbers[:k, 2].copy(),
                                 features[:k], numbers[:k, 3].copy().view(np.uint64), missing)

        found: StoredVectors | None = self._run(read, write=False, doing="be read")
        if found is None:
            empty = np.zeros(0, dtype=np.int64)
            return StoredVectors([], empty, empty, empty, np.zeros((0, FEATURE_DIM), np.float16),
                                 empty.view(np.uint64), [])
        return found

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


def _vector_values(features: Any, digest: Any) -> tuple[int | None, bytes | None]:
    """(signed 64-bit hash, float16 bytes) as the vectors table keeps them; (None, None) where there are none."""
    if features is None or digest is None:
        return None, None
    vec = np.asarray(features, dtype="<f2").reshape(-1)
    if vec.shape[0] != FEATURE_DIM or not np.isfinite(vec).all():
        return None, None
    return _int64(int(digest) & 0xFFFF_FFFF_FFFF_FFFF), vec.tobytes()


def _put_vector(conn: sqlite3.Connection, photo_id: Any, digest: int | None, blob: bytes | None) -> None:
    """Give the photo row ``photo_id`` this vector, or none: a row id SQLite hands out again never finds the
    vector of the row that had it before."""
    if digest is None or blob is None:
        conn.execute("DELETE FROM vectors WHERE photo=?", (photo_id,))
    else:
        conn.execute("INSERT OR REPLACE INTO vectors (photo, dhash, features) VALUES (?, ?, ?)",
                     (photo_id, digest, blob))


def _entry(row: tuple[Any, ...], path: str | None = None, size: int | None = None,
           mtime_ns: int | None = None) -> LibraryEntry:
    (raw_path, key, row_size, row_mtime, digest, top, maps, shape, crop, width, height, thumb, when,
     record, vector_hash, vector) = row[:_ENTRY_FIELDS]
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
        features=np.frombuffer(bytes(vector), dtype="<f2").copy() if vector is not None else None,
        dhash=int(vector_hash) & 0xFFFF_FFFF_FFFF_FFFF if vector is not None and vector_hash is not None else None,
    )
