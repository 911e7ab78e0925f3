"""How photos come in: Open dialogs, drops, paste, and folders listed on the scanner's thread, a slice at a time."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, QSettings, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QWidget

from ..core.paths import is_image_name
from ..worker.images import PhotoSource
from ..worker.scanner import FolderScanner
from .drops import read_mime
from .messages import Messages
from .paced import PacedQueue
from .text import plural

ARRIVAL_SLICE = 32  # photos taken into the gallery at a time while a folder is being listed
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.gif *.webp *.tif *.tiff);;All files (*)"


class Intake(QObject):
    """Turns what the user hands the app into ``arrived`` batches of (source, name); says what it skipped."""

    arrived = Signal(list, bool, int)  # [(source, name)], whether to select the first of them, listing (0: none)
    scanFinished = Signal(int)  # a drop's files are all in the gallery (how many)

    def __init__(self, messages: Messages, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.messages, self.settings, self.parent_widget = messages, settings, parent
        self.scanner = FolderScanner(self)
        self._scans: set[int] = set()  # requests still being listed
        self._scan_new: dict[int, bool] = {}  # request id -> its first photo still to be selected
        self._skipped: list[tuple[str, str]] = []
        self._not_images: dict[int, int] = {}  # request id -> files passed over by name (told at its end)
        self._known: dict[int, int] = {}  # request id -> photos the gallery already had (told at its end)
        self._unnamed = 0  # images without a file: "pasted image 1", "dropped image 2"
        # What the scanner finds, in slices of ARRIVAL_SLICE photos, and the scan's end in its place.
        self._arrivals: PacedQueue[tuple[int, list[str] | None, int, bool]] = PacedQueue(self._take_arrival, self)
        self.scanner.found.connect(self._on_found)
        self.scanner.skipped.connect(self._on_skipped)
        self.scanner.passedOver.connect(self._on_passed_over)
        self.scanner.finishedRequest.connect(self._on_scan_finished)

    # ---- from the user ----
    def add_paths(self, paths: list[str]) -> int:
        """Files and folders: listed on the scanner's thread, added to the gallery as they are found.

        Files that are plainly not photos (a name without an image extension) are counted, not added."""
        paths = [str(p) for p in paths]
        kept = [p for p in paths if is_image_name(p) or not os.path.isfile(p)]
        if not kept:
            self.messages.show_status(f"{plural(len(paths), 'file')} skipped: not images.", 8000)
            return 0
        request = self.scanner.scan(kept)
        self._scans.add(request)
        self._scan_new[request] = True
        self._not_images[request] = len(paths) - len(kept)  # said with the rest once the listing ends
        return request

    def already_known(self, request: int, n: int) -> None:
        """The gallery already had ``n`` of what listing ``request`` brought: counted, told once at its end."""
        if request in self._scans:
            self._known[request] = self._known.get(request, 0) + n

    def add_mime(self, mime: QMimeData, pasted: bool = False) -> bool:
        """Files, folders, image data from other programs, or pasted paths. Returns True if anything came in."""
        dropped = read_mime(mime)
        if dropped.paths:
            self.add_paths(dropped.paths)
        if dropped.data:
            self.arrived.emit([(data, name or self._unnamed_name(pasted)) for data, name in dropped.data], True, 0)
        if dropped.refused:  # web links alone: said in the status bar; nothing enters the gallery
            _what, why = dropped.refused[0]
            more = len(dropped.refused) - 1
            self.messages.show_status(why + (f" ({plural(more, 'other link')} not downloaded either.)" if more else ""), 10000)
        return bool(dropped)

    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None or not self.add_mime(mime, pasted=True):
            self.messages.show_status("Nothing to paste: copy an image or image files first.", 5000)

    def last_folder(self) -> str:
        return str(self.settings.value("last_folder", str(Path.home()), type=str))

    def open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self.parent_widget, "Open Photos", self.last_folder(), IMAGE_FILTER)
        if files:
            self.settings.setValue("last_folder", str(Path(files[0]).parent))
            self.add_paths(files)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent_widget, "Open Folder", self.last_folder())
        if folder:
            self.settings.setValue("last_folder", folder)
            self.add_paths([folder])

    def cancel(self) -> None:
        """Stop listing: what is still being listed or waiting to come in is dropped."""
        self.scanner.cancel()
        self._scans.clear()
        self._scan_new.clear()
        self._not_images.clear()
        self._known.clear()
        self._arrivals.clear()

    def stop(self) -> None:
        self.scanner.stop()

    # ---- from the scanner ----
    def _unnamed_name(self, pasted: bool) -> str:
        self._unnamed += 1
        return f"{'pasted' if pasted else 'dropped'} image {self._unnamed}"

    def _on_found(self, request: int, paths: list[str]) -> None:
        if request in self._scans:  # else stopped or cleared meanwhile
            for start in range(0, len(paths), ARRIVAL_SLICE):
                self._arrivals.put((request, paths[start:start + ARRIVAL_SLICE], 0, False))

    def _take_arrival(self, item: tuple[int, list[str] | None, int, bool]) -> None:
        request, paths, count, cancelled = item
        if request not in self._scans:
            return
        if paths is None:
            self._finish_scan(request, count, cancelled)
        else:
            sources: list[tuple[PhotoSource, str]] = [(p, p) for p in paths]
            self.arrived.emit(sources, self._scan_new.pop(request, False), request)

    def _on_skipped(self, request: int, path: str, reason: str) -> None:
        if request in self._scans:
            self._skipped.append((path, reason))

    def _on_passed_over(self, request: int, n: int) -> None:
        """A folder's files that are not images by name: told with the listing's end, like files dropped."""
        if request in self._scans:
            self._not_images[request] = self._not_images.get(request, 0) + n

    def _on_scan_finished(self, request: int, count: int, cancelled: bool) -> None:
        if request in self._scans:
            self._arrivals.put((request, None, count, cancelled))

    def _finish_scan(self, request: int, count: int, cancelled: bool) -> None:
        self._scans.discard(request)
        self._scan_new.pop(request, None)
        known, not_images = self._known.pop(request, 0), self._not_images.pop(request, 0)
        notes = []
        if known:
            notes.append(f"{plural(known, 'photo is', 'photos are')} already in the gallery.")
        if not_images:
            notes.append(f"{plural(not_images, 'file')} skipped: not images.")
        if count == 0 and not cancelled and not not_images:
            notes.append("No images found in what was dropped.")
        if self._skipped:
            first = self._skipped[0]
            more = f" (and {len(self._skipped) - 1} more)" if len(self._skipped) > 1 else ""
            notes.append(f"Skipped {first[0]}: {first[1]}{more}.")
            self._skipped = []
        if notes:
            self.messages.show_status(" ".join(notes), 8000)
        self.scanFinished.emit(count)
