"""What the user does to photos in the gallery: remove, retry, copy, drag out, the context menu, undo Clear."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QDrag, QGuiApplication, QPixmap
from PySide6.QtWidgets import QMenu

from .gallery import Status
from .photo_export import photo_mime


class PhotoActions:
    """Part of MainWindow (a mixin): uses its gallery, model, proxy, view, worker, actions and status bar."""

    def undo_clear(self) -> None:
        photos, self._cleared = self._cleared, []
        self.undo_action.setEnabled(False)
        if photos:
            self.photos.restore(photos)
            if not self.gallery.currentIndex().isValid():
                self.select(photos[0])
            self.statusBar().showMessage(f"Brought back {len(photos)} photo{'s' if len(photos) != 1 else ''}.", 5000)

    def remove_selected(self) -> None:
        """Delete: take the selected photo out of the gallery (the file itself is never touched)."""
        photo = self.current_photo()
        if photo is None:
            return
        row = self.gallery.currentIndex().row()
        if photo.status is Status.QUEUED and self._batch[0]:
            self._batch[0] -= 1  # its answer will be dropped, so the progress bar must not wait for it
            self._update_progress()
        self.photos.remove([photo])
        if self.proxy.rowCount():
            self.gallery.setCurrentIndex(self.proxy.index(min(row, self.proxy.rowCount() - 1), 0))
        self.statusBar().showMessage(f"Removed {photo.name} from the gallery.", 4000)

    def retry(self) -> None:
        """Classify the selected photo again if it failed or was stopped; with none such selected, all of them."""
        cur = self.current_photo()
        todo = [cur] if cur is not None and cur.status in (Status.FAILED, Status.STOPPED) else \
            [p for p in self.photos if p.status in (Status.FAILED, Status.STOPPED)]
        todo = [p for p in todo if p.source is not None]  # a refused web link has nothing to retry
        for photo in todo:
            self.photos.requeue(photo)
            self.worker.classify(photo.item_id, photo.source, self.layer)  # type: ignore[arg-type]
        self._batch[0] += len(todo)
        self._update_progress()
        if cur is not None:
            self._show(cur)
        self.statusBar().showMessage(f"Trying {len(todo)} photo{'s' if len(todo) != 1 else ''} again." if todo
                                     else "Nothing to retry: no failed or stopped photos.", 4000)

    def copy(self) -> None:
        """Ctrl+C: the selected photo's top 5 as text and the overlay as an image."""
        photo = self.current_photo()
        if photo is None:
            self.statusBar().showMessage("Select a photo first.", 4000)
            return
        QGuiApplication.clipboard().setMimeData(photo_mime(photo, self.view.render_image()))
        self.statusBar().showMessage("Copied the top 5 and the overlay.", 3000)

    def _drag_out(self) -> None:
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

    def _gallery_menu(self, pos: QPoint) -> None:
        self.gallery_menu_for(pos).popup(self.gallery.viewport().mapToGlobal(pos))

    def gallery_menu_for(self, pos: QPoint) -> QMenu:
        """The gallery's context menu for the photo at ``pos`` (which becomes the selected one)."""
        index = self.gallery.indexAt(pos)
        if index.isValid():
            self.gallery.setCurrentIndex(index)
        photo = self.current_photo()
        menu = QMenu(self)
        for act in (self.copy_action, self.retry_action, self.remove_action):
            act.setEnabled(photo is not None)
            menu.addAction(act)
        self.retry_action.setEnabled(photo is not None and photo.status in (Status.FAILED, Status.STOPPED))
        menu.addAction(self.save_action)
        menu.addSeparator()
        menu.addAction(self.undo_action)
        menu.aboutToHide.connect(self._enable_photo_actions)
        self.gallery_menu = menu
        return menu

    def _enable_photo_actions(self) -> None:
        for act in (self.copy_action, self.retry_action, self.remove_action):
            act.setEnabled(True)
