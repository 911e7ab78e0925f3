"""The photo shown: the gallery's current photo in the view, its top 5, the window title, the class chosen;
and what leaves the window for it (copy, drag out, Save Overlay) or for all photos (Export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, QPoint, QSettings, Qt, Signal
from PySide6.QtGui import QDrag, QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import QAbstractButton, QFileDialog, QMessageBox, QWidget

from ..core.kinds import Layer, Method
from ..worker.jobs.photo import SaveImageJob
from .cam_methods import CamMethods, method_name
from .controller import BatchController
from .controls import LAYER_SIZES, ControlPanel, layer_name
from .folders import LastFolders
from .gallery import GalleryModel, GalleryView, Photo, PhotoRole, Status
from .gallery_filter import GalleryFilter
from .image_view import ImageView
from .messages import Messages
from .overlay_saver import OverlaySaver
from .photo_export import overlay_metadata, overlay_name, photo_mime, photos_mime, stem_of
from .text import percent, plural, sentence

APP_TITLE = "ResNeXt Classifier"
IDLE_HINT = "Drop photos or folders here\n(or File → Open, Ctrl+O; paste with Ctrl+V)"
EXPORT_FORMATS = {"CSV (*.csv)": "csv", "JSON (*.json)": "json"}


class Presenter(QObject):
    """Shows whatever the gallery's current photo is, and keeps the title saying what is shown."""

    titleChanged = Signal(str)

    def __init__(self, photos: GalleryModel, proxy: GalleryFilter, gallery: GalleryView, view: ImageView,
                 controls: ControlPanel, controller: BatchController, messages: Messages, settings: QSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.photos, self.proxy, self.gallery, self.view = photos, proxy, gallery, view
        self.controls, self.controller, self.messages, self.settings = controls, controller, messages, settings
        self.folders = LastFolders(settings)  # where Save Overlay and Export open: the folder each used last
        self.parent_widget = parent
        self.cam = CamMethods(photos, controller.worker, messages, controller, self)  # Score-CAM, faithfulness
        self.selected_rank = 1
        self._pending_save: tuple[int, str] | None = None  # (photo, path): Save Overlay waiting for every pixel
        self._saver: OverlaySaver | None = None  # Save Overlay on several photos, while it runs
        gallery.selectionModel().currentChanged.connect(self._on_current_changed)
        controls.classChosen.connect(self.choose_class)
        view.zoomChanged.connect(self.update_title)
        view.zoomChanged.connect(self._want_sharper)
        view.dragOut.connect(self.drag_out)
        controller.updated.connect(self._on_updated)
        controller.refreshWanted.connect(self.refresh)
        controller.selectWanted.connect(self._select_wanted)
        controller.cleared.connect(self.show_nothing)

    # ---- which photo ----
    def current_photo(self) -> Photo | None:
        index = self.gallery.currentIndex()
        return index.data(PhotoRole) if index.isValid() else None

    def selected_photos(self) -> list[Photo]:
        """The photos selected in the gallery, in the order it shows them; the current one when none is."""
        rows = sorted(i.row() for i in self.gallery.selectionModel().selectedIndexes() if i.column() == 0)
        chosen = [self.proxy.index(r, 0).data(PhotoRole) for r in rows]
        if not chosen:
            cur = self.current_photo()
            return [cur] if cur is not None else []
        return [p for p in chosen if p is not None]

    def select(self, photo: Photo) -> bool:
        """Make ``photo`` the current one and scroll to it; False when the gallery's filter hides it."""
        index = self.proxy.mapFromSource(self.photos.index(self.photos.row_of(photo)))
        if not index.isValid():
            return False
        self.gallery.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.gallery.scrollTo(index)
        return True

    def _select_wanted(self, photo: Photo, focus: bool) -> None:
        self.select(photo)
        if focus:
            self.gallery.setFocus()

    def remove_selected(self) -> None:
        """Delete: take the selected photos out of the gallery (Ctrl+Z puts them back); the next one becomes current."""
        chosen = self.selected_photos()
        if not chosen:
            return
        rows = [self.proxy.mapFromSource(self.photos.index(self.photos.row_of(p))).row() for p in chosen]
        row = min(r for r in rows if r >= 0) if any(r >= 0 for r in rows) else 0
        self.controller.remove(chosen)
        if self.proxy.rowCount():
            self.gallery.setCurrentIndex(self.proxy.index(min(row, self.proxy.rowCount() - 1), 0))

    def filter_changed(self) -> None:
        if not self.gallery.currentIndex().isValid() and self.proxy.rowCount():
            self.gallery.setCurrentIndex(self.proxy.index(0, 0))
        elif self.gallery.currentIndex().isValid():
            self.gallery.scrollTo(self.gallery.currentIndex())
        shown, total = self.proxy.rowCount(), len(self.photos)
        if shown != total:
            self.messages.show_status(f"Showing {shown} of {total} photos.", 5000)

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.selected_rank = 1
        if self._pending_save is not None:
            self._pending_save = None
            self.messages.show_status("Save Overlay cancelled: another photo was selected.", 5000)
        photo = current.data(PhotoRole) if current.isValid() else None
        if photo is not None:
            self.controller.selected(photo)
            self.view.fit()
            self.show(photo)
        else:
            self.show_nothing()

    def _on_updated(self, photo: Photo) -> None:
        if self.current_photo() is photo:
            self.show(photo)
            pending = self._pending_save
            if pending is not None and pending[0] == photo.item_id:
                full = self.controller.full_view(photo)
                if full is not None or self.controller.full_failed(photo):
                    self._pending_save = None
                    self._write_overlay(pending[1], full)

    def _want_sharper(self) -> None:
        """Zoomed past the display copy of a bigger photo: the worker decodes every pixel of it for the view."""
        photo = self.current_photo()
        zoom = self.view.zoom
        if photo is not None and zoom is not None and zoom > 1.0 and self.view.reduction() > 1.0:
            self.controller.want_full(photo)

    def refresh(self) -> None:
        cur = self.current_photo()
        if cur is not None:
            self.show(cur)

    # ---- showing it ----
    def show_nothing(self) -> None:
        self.view.set_photo(None)
        self.view.set_map(None)
        self.view.set_placeholder(IDLE_HINT if not len(self.photos) else "No photo selected")
        self.controls.show_top()
        self.cam.want(None)
        self.cam.shown(None, 0)
        self.update_title()

    def show(self, photo: Photo) -> None:
        self.controller.want_layer(photo)
        self.cam.want(photo)
        self._show_now(photo)
        self.update_title()

    def _show_now(self, photo: Photo) -> None:
        res = photo.result
        if photo.status is Status.FAILED:
            self.view.set_photo(None)
            self.view.set_map(None)
            self.view.set_placeholder(f"Could not classify this file\n\n{sentence(photo.error or '')}")
            self.controls.show_top(message=sentence(photo.error or ""))
            self.cam.shown(None, 0)
            return
        crop = res.crop if res is not None and res.ok else None
        display = self.photos.display(photo.item_id)
        full = self.controller.full_view(photo)
        if full is not None:
            self.view.set_photo(full, crop)
        elif display is not None:  # a copy of at most the worker's display size: zoom is told in the photo's pixels
            self.view.set_photo(display, crop, res.size[0] if res is not None and res.size else 0)
        else:
            # At once: the thumbnail, scaled; the full view follows as soon as the worker is free.
            self.view.set_photo(photo.thumb.toImage() if photo.thumb is not None else None, crop)
            self.view.set_placeholder(f"Loading {photo.name}…")
            self.controller.want_view(photo)
        if photo.status is Status.DONE and res is not None:
            rank = min(self.selected_rank, len(res.top))
            self.view.set_map(res.maps[rank - 1] if res.maps is not None else None)
            other = self._other_model_note(photo)  # while it is classified again, its old notes are moot
            pending = other is not None and self.controller.recompute_pending(photo)
            note = (other if pending else photo.note or other or res.note) or ""
            self.controls.show_top(res.top, rank, note,
                                   f"Top {len(res.top)} · {method_name(res.method)} ({LAYER_SIZES.get(res.layer, res.layer)})")
            self.controls.top5.title.setToolTip(f"The heatmap: {method_name(res.method)} at the {layer_name(res.layer)}")
            self.cam.shown(photo, rank)
            return
        self.view.set_map(None)
        self.cam.shown(None, 0)
        waiting = "Stopped before it was classified" if photo.status is Status.STOPPED else self.photos.waiting_text
        self.controls.show_top(message=photo.note or waiting)
        if display is None and photo.thumb is None and photo.source is None:
            self.view.set_placeholder(f"{waiting}\n{photo.name}")

    def _other_model_note(self, photo: Photo) -> str | None:
        """What the panel says over answers another model gave (the photo is being classified again)."""
        other = self.photos.other_model(photo)
        if other is None:
            return None
        current = self.photos.model_names.get(self.photos.model_key or "", "the model in use")
        if self.controller.recompute_pending(photo):
            return f"These are the answers of another model, {other}: classifying the photo with {current}…"
        return f"These are the answers of another model, {other}. Edit → Retry classifies it with {current}."

    def choose_class(self, rank: int) -> None:
        photo = self.current_photo()
        if photo is None or photo.result is None or not photo.result.ok or photo.result.maps is None:
            return
        self.selected_rank = rank
        self.view.set_map(photo.result.maps[rank - 1])
        self.cam.shown(photo, rank)
        self.update_title()

    def current_map(self) -> np.ndarray | None:
        """The 8-bit heatmap the view shows now."""
        return self.view.shown_map()

    def update_title(self) -> None:
        """The window title names the photo, its size, the class shown and the zoom."""
        photo = self.current_photo()
        if photo is None:
            self.titleChanged.emit(APP_TITLE)
            return
        parts = [stem_of(photo) if not isinstance(photo.source, str) else Path(photo.name).name]
        res = photo.result
        if res is not None and res.size:
            parts.append(f"{res.size[0]}×{res.size[1]}")
        if photo.status is Status.DONE and res is not None and res.top:
            top = res.top[min(self.selected_rank, len(res.top)) - 1]
            parts.append(f"{top.label} {percent(top.prob)}")
        zoom = self.view.photo_zoom()
        if zoom is not None:
            parts.append(f"{zoom:.0%}")  # of the photo's own pixels
        self.titleChanged.emit(" · ".join(parts) + f" — {APP_TITLE}")

    # ---- what leaves the window ----
    def _shown_layer_and_label(self, photo: Photo) -> tuple[Layer, str, int]:
        res = photo.result
        if res is None or not res.ok or not res.top:
            return self.controller.layer, "original", 0
        rank = min(self.selected_rank, len(res.top))
        return res.layer, res.top[rank - 1].label, rank

    def _shown_method(self, photo: Photo) -> Method:
        res = photo.result
        return res.method if res is not None and res.ok and res.top else self.controller.method

    def copy(self) -> None:
        """Ctrl+C: the selected photo's top 5 as text and the overlay as an image; of several selected, each
        one's top 5 as text (the overlay is of the photo shown only, so none then)."""
        photo = self.current_photo()
        chosen = self.selected_photos()
        if photo is None or not chosen:
            self.messages.show_status("Select a photo first.", 4000)
            return
        if len(chosen) > 1:
            QGuiApplication.clipboard().setMimeData(photos_mime(chosen))
            self.messages.show_status(f"Copied the top 5 of {plural(len(chosen), 'photo')}.", 3000)
            return
        QGuiApplication.clipboard().setMimeData(photo_mime(photo, self.view.render_image()))
        self.messages.show_status("Copied the top 5 and the overlay.", 3000)

    def drag_out(self) -> None:
        """Drag the photo shown (with its heatmap) out of the window into another program."""
        photo = self.current_photo()
        image = self.view.render_image()
        if photo is None or image is None:
            return
        drag = QDrag(self.view)
        drag.setMimeData(photo_mime(photo, image))
        side = 128
        drag.setPixmap(QPixmap.fromImage(image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation)))
        drag.exec(Qt.DropAction.CopyAction)

    def save_overlay(self) -> None:
        if len(self.selected_photos()) > 1:  # several selected: each one's overlay, into a folder
            folder = QFileDialog.getExistingDirectory(self.parent_widget, "Save Overlays into Folder",
                                                      self.folders.folder("overlay"))
            if folder:
                self.folders.remember("overlay", folder, is_folder=True)
                self.save_overlays_to(folder)
            return
        photo = self.current_photo()
        if photo is None or not self.view.has_photo():
            self.messages.show_status("Select a classified photo first.", 4000)
            return
        layer, label, _rank = self._shown_layer_and_label(photo)
        suggested = self.folders.in_folder("overlay", overlay_name(photo, label, layer, self._shown_method(photo)))
        path, _ = QFileDialog.getSaveFileName(self.parent_widget, "Save Overlay", suggested, "PNG image (*.png)")
        if path:
            self.folders.remember("overlay", path)
            self.save_overlay_to(path if path.lower().endswith(".png") else path + ".png")

    def save_overlays_to(self, folder: str) -> OverlaySaver:
        """The selected photos' overlays (each one's top class) into ``folder``, at full size, one after another."""
        saver = self._saver = OverlaySaver(self.selected_photos(), folder, self.photos, self.controller, self.view,
                                           self.messages, self)
        saver.start()
        return saver

    def save_overlay_to(self, path: str) -> bool:
        """Write what the view shows, at the photo's full size, naming photo, class and layer in the PNG's text.
        When the view has a reduced copy only, the worker decodes the photo first and the file is written then.
        True: handed to the worker, which writes it (the status bar, or a warning, says how that went);
        False: not asked for yet (waiting for every pixel), or nothing to save."""
        photo = self.current_photo()
        res = photo.result if photo is not None else None
        if (photo is not None and res is not None and res.size and res.size[0] > self.view.photo_width()
                and not self.controller.full_failed(photo)):
            if not self.controller.want_full(photo):
                self._pending_save = (photo.item_id, path)
                self.messages.show_status(f"Reading all of {photo.name} to save it at full size…", 10000)
                return False
            return self._write_overlay(path, self.controller.full_view(photo))
        return self._write_overlay(path, None)

    def _write_overlay(self, path: str, full: QImage | None) -> bool:
        image = self.view.render_image(full)
        photo = self.current_photo()
        meta = {}
        if photo is not None:
            layer, _label, rank = self._shown_layer_and_label(photo)
            meta = overlay_metadata(photo, rank, layer, self._shown_method(photo))
        if image is None:
            self.messages.show_status(f"Could not save {path}: no photo is shown", 5000)
            return False
        # Encoded and written by the worker, whole or not at all (a full-size PNG takes long to encode)
        self.controller.worker.submit(SaveImageJob(path, image, meta), self._on_overlay_saved, self._on_overlay_failed)
        self.messages.show_status(f"Saving {path}…", 10000)
        return True

    def _on_overlay_saved(self, path: str) -> None:
        self.messages.show_status(f"Saved {path}", 5000)

    def _on_overlay_failed(self, message: str) -> None:
        self.messages.warning("Save Overlay failed", message)

    def export_dialog(self) -> None:
        """Export every answer; while the gallery's search or filter hides some, or several photos are
        selected, ask whether only those shown or selected."""
        total = len(self.photos.records())
        if not total:
            self.messages.show_status("Nothing to export yet.", 4000)
            return
        visible = {self.proxy.index(row, 0).data(PhotoRole).item_id for row in range(self.proxy.rowCount())}
        shown = len(self.photos.records(visible))
        several = self.selected_photos()
        picked = {p.item_id for p in several} if len(several) > 1 else set()
        selected = len(self.photos.records(picked)) if picked else 0
        only: set[int] | None = None
        if shown < total or 0 < selected < total:
            scope = self.ask_export_scope(shown, total, selected)
            if scope is None:
                return
            only = {"visible": visible, "selected": picked}.get(scope)
        path, chosen = QFileDialog.getSaveFileName(self.parent_widget, "Export Results",
                                                   self.folders.in_folder("export", "results.csv"),
                                                   ";;".join(EXPORT_FORMATS))
        if path:
            self.folders.remember("export", path)
            self.controller.export_results(path, EXPORT_FORMATS.get(chosen), only)

    def ask_export_scope(self, shown: int, total: int, selected: int = 0) -> str | None:
        """"visible", "selected", "all", or None (cancelled): the gallery shows ``shown`` of the ``total``
        answers, and ``selected`` of them are selected (0: one photo or none, no choice)."""
        why = (f"The gallery's search or filter shows {shown} of the {total} photos with results."
               if shown < total else f"{selected} of the {total} photos with results are selected.")
        box = QMessageBox(QMessageBox.Icon.Question, "Export Results", f"{why} Which results should be exported?",
                          QMessageBox.StandardButton.Cancel, self.parent_widget)
        box.setTextFormat(Qt.TextFormat.PlainText)
        choices: dict[QAbstractButton, str] = {box.addButton(f"All {total} Photos", QMessageBox.ButtonRole.AcceptRole): "all"}
        if shown and shown < total:
            visible = box.addButton(f"Only the {shown} Shown", QMessageBox.ButtonRole.AcceptRole)
            choices[visible] = "visible"
            box.setDefaultButton(visible)
        if selected:
            picked = box.addButton(f"Only the {selected} Selected", QMessageBox.ButtonRole.AcceptRole)
            choices[picked] = "selected"
            box.setDefaultButton(picked)
        box.exec()
        return choices.get(box.clickedButton())

    def gallery_menu_pos(self, pos: QPoint) -> Photo | None:
        """The photo at ``pos`` in the gallery becomes the current one (a context menu is about to open for it)."""
        index = self.gallery.indexAt(pos)
        if index.isValid() and self.gallery.selectionModel().isSelected(index):  # the menu is about the selection
            self.gallery.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
        elif index.isValid():
            self.gallery.setCurrentIndex(index)
        return self.current_photo()
