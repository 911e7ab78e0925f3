"""Jobs on the results library: last time's gallery, what it holds, search, Forget, Clear, and Write Keywords (XMP sidecars)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..images import thumbnail_from_bytes
from ..queue import Job, JobFailed
from ..results import KeywordPhoto, KeywordsOutcome, LibraryInfo, LibraryMatch, Restored

if TYPE_CHECKING:
    from ..runner import ClassifierLike, Context

SEARCH_LIMIT = 500


def default_path() -> Path:
    from ...core.library import default_library_path

    return default_library_path()


@dataclass(eq=False)
class RestoreJob(Job[Restored]):
    """Last time's gallery, from the library (the photos are then classified as usual: from the library)."""

    def run(self, ctx: Context) -> Restored:
        keeper = ctx.library
        keeper.open()
        paths: list[str] = []
        if keeper.lib is not None:
            try:
                paths = keeper.lib.gallery()
            except Exception:
                paths = []
        here: list[str] = []
        gone: list[str] = []
        for p in paths:
            (here if os.path.isfile(p) else gone).append(p)
        return Restored(here, gone, keeper.info())


@dataclass(eq=False)
class LibraryInfoJob(Job[LibraryInfo]):
    def run(self, ctx: Context) -> LibraryInfo:
        return ctx.library.info()


@dataclass(eq=False)
class LibrarySearchJob(Job[list[LibraryMatch]]):
    """Every photo ever classified whose label (the top class, or another of its top classes at 10 % or more) or
    file name contains ``text``, best match first (core.library.Library.search_ranked), with the searched class's
    rank and probability."""

    text: str
    limit: int = SEARCH_LIMIT

    def run(self, ctx: Context) -> list[LibraryMatch]:
        lib = ctx.library.lib
        if lib is None:
            raise JobFailed("There is no results library to search (results are not being kept).")
        try:
            found = lib.search_ranked(self.text, self.limit)
        except Exception as exc:
            raise JobFailed(f"The library could not be searched: {exc}") from exc
        out = []
        for e, rank in found:
            best: dict[str, Any] = e.top[0] if e.top else {"label": "", "prob": 0.0}
            hit: dict[str, Any] = next((t for t in e.top if int(t.get("rank", 0)) == rank), best) if rank else best
            out.append(LibraryMatch(e.path, str(hit["label"]), float(hit["prob"]), e.classified_at,
                                    os.path.isfile(e.path), thumbnail_from_bytes(e.thumbnail, ctx.pixel_ratio),
                                    rank, str(best["label"]), float(best["prob"])))
        return out


@dataclass(eq=False)
class ForgetJob(Job[LibraryInfo]):
    """Remove these photos' entries from the library (the files are never touched)."""

    paths: list[str]

    def run(self, ctx: Context) -> LibraryInfo:
        lib = ctx.library.lib
        if lib is None:
            return ctx.library.info()
        try:
            n = lib.forget(self.paths)
        except Exception as exc:
            raise JobFailed(f"The library could not forget them: {exc}") from exc
        return ctx.library.info(n)


@dataclass(eq=False)
class ClearLibraryJob(Job[LibraryInfo]):
    """Remove every entry from the library."""

    def run(self, ctx: Context) -> LibraryInfo:
        lib = ctx.library.lib
        if lib is None:
            return ctx.library.info()
        before = lib.count()
        try:
            lib.clear()
        except Exception as exc:
            raise JobFailed(f"The library could not be cleared: {exc}") from exc
        return ctx.library.info(before)


@dataclass(eq=False)
class WriteKeywordsJob(Job[KeywordsOutcome]):
    """Write each photo's top classes as XMP keywords beside it (the sidecar NAME.EXT.xmp, merged)."""

    photos: list[KeywordPhoto]
    min_prob: float | None = None  # None: core.xmp.DEFAULT_MIN_PROB

    def run(self, ctx: Context) -> KeywordsOutcome:
        from ...core import xmp

        min_prob = xmp.DEFAULT_MIN_PROB if self.min_prob is None else self.min_prob
        parent = keyword_parent(ctx.classifier)
        progress = ctx.progress_of(self)
        out = KeywordsOutcome()
        for i, photo in enumerate(self.photos):
            progress(i, len(self.photos))
            if photo.path is None:
                out.failed.append((photo.item_id, photo.name, "it has no file (image data): there is nowhere to "
                                   "write its keywords"))
                continue
            try:
                sidecar = xmp.write_keywords(Path(photo.path), xmp.keywords_for(photo.top, min_prob), parent)
            except Exception as exc:  # XmpError says what, per photo; anything else is said too, never a crash
                why = str(exc) or type(exc).__name__
                why = why.removeprefix(f"{photo.path}: ").removeprefix("keywords not written: ")  # the name is said
                out.failed.append((photo.item_id, photo.name, why))
            else:
                out.written.append((photo.item_id, str(sidecar)))
        progress(len(self.photos), len(self.photos))
        return out


def keyword_parent(clf: ClassifierLike | None) -> str:
    """The keywords' parent for the model in use: "ResNeXt" for ImageNet's classes, taught classes their own."""
    from ...core import xmp

    if clf is None:
        return xmp.DEFAULT_PARENT
    return xmp.parent_for(clf.labels, clf.source.path)
