"""Finding the photos in what the user named: files as given, folders walked recursively, in a stable order."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

OnSkip = Callable[[Path, str], None]  # (path, reason) for what a walk passed over


def is_image_name(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_SUFFIXES


def iter_images(paths: Iterable[str | os.PathLike[str]], on_skip: OnSkip | None = None,
                on_other: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield files as given and the image files of folders, as they are found.

    A file named explicitly is always yielded (it will get an answer even if it is not an image). A folder's
    images come in the order of their sorted full paths. Symbolic links to folders are followed only while
    they stay inside the folder that was named, and no folder is visited twice (loops); links that leave it
    and folders that can't be read are passed to ``on_skip`` with the reason. Files in folders whose names
    are not images' are passed to ``on_other`` (if given), so a caller can count what it passed over.
    """
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            root = os.path.realpath(p)
            yield from _walk(p, root, set(), on_skip, on_other)
        else:
            yield p


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _walk(folder: Path, root: str, seen: set[tuple[int, int]], on_skip: OnSkip | None,
          on_other: Callable[[Path], None] | None = None) -> Iterator[Path]:
    try:
        st = os.stat(folder)
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop, or two links to one folder: visit it once
            return
        seen.add(key)
        with os.scandir(folder) as it:
            entries = []
            for entry in it:
                try:
                    is_dir = entry.is_dir()  # follows links
                except OSError:
                    is_dir = False
                entries.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
    except OSError as exc:
        if on_skip:
            on_skip(folder, f"cannot be read: {exc.strerror or exc}")
        return
    entries.sort(key=lambda e: e[0])  # sorted as full paths sort: "a.jpg" < "a/" because "." < "/"
    for _key, entry, is_dir in entries:
        path = Path(entry.path)
        if is_dir:
            if entry.is_symlink() and not _inside(os.path.realpath(path), root):
                if on_skip:
                    on_skip(path, "is a link that leads outside the folder; not followed")
                continue
            yield from _walk(path, root, seen, on_skip, on_other)
        elif is_image_name(entry.name):
            yield path
        elif on_other is not None:
            on_other(path)


def expand_paths(paths: Iterable[str | os.PathLike[str]], on_skip: OnSkip | None = None) -> list[Path]:
    """All of ``iter_images`` at once."""
    return list(iter_images(paths, on_skip))
