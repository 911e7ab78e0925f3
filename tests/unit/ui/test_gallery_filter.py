"""Sorting, filtering and searching the gallery (ui/gallery_filter.py): the proxy and its bar, over a model alone."""

from PySide6.QtCore import Qt

from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.gallery import GalleryModel
from resnext_gui.ui.gallery_filter import GalleryBar, GalleryFilter
from resnext_gui.worker.results import PhotoResult


def _result(item_id, label, prob):
    return PhotoResult(item_id, True, f"{item_id}.jpg", top=[TopClass(1, 0, label, prob)], record={"ok": True})


def test_sort_filter_and_search_over_the_model(qtbot):
    model = GalleryModel()
    photos = model.add([(f"/p/{n}.jpg", f"/p/{n}.jpg") for n in ("a", "b", "c", "d")])
    model.set_result(_result(photos[0].item_id, "tabby", 0.4))
    model.set_result(_result(photos[1].item_id, "espresso", 0.9))
    model.set_result(PhotoResult(photos[2].item_id, False, "c.jpg", error="broken", record={"ok": False}))
    model.set_result(_result(photos[3].item_id, "tiger cat", 0.7))
    proxy = GalleryFilter()
    proxy.setSourceModel(model)

    def names():
        return [proxy.index(r, 0).data(Qt.ItemDataRole.DisplayRole).split("\n")[1] for r in range(proxy.rowCount())]

    proxy.set_sort("confidence")
    assert names() == ["/p/b.jpg", "/p/d.jpg", "/p/a.jpg", "/p/c.jpg"]
    proxy.set_sort("label")
    assert names() == ["/p/b.jpg", "/p/a.jpg", "/p/d.jpg", "/p/c.jpg"]
    proxy.set_text("TAB")
    assert names() == ["/p/a.jpg"]
    proxy.set_text("")
    proxy.set_show("failed")
    assert names() == ["/p/c.jpg"]
    proxy.set_show("all")
    model.set_recomputed(_result(photos[0].item_id, "tabby", 0.95))  # a new answer re-sorts
    proxy.set_sort("confidence")
    assert names()[0] == "/p/a.jpg"


def test_the_bar_drives_the_proxy_and_says_when_it_changed(qtbot):
    model = GalleryModel()
    photos = model.add([(f"/p/{n}.jpg", f"/p/{n}.jpg") for n in ("a", "b")])
    model.set_result(_result(photos[0].item_id, "tabby", 0.4))
    model.set_result(PhotoResult(photos[1].item_id, False, "b.jpg", error="broken", record={"ok": False}))
    proxy = GalleryFilter()
    proxy.setSourceModel(model)
    bar = GalleryBar(proxy)
    qtbot.addWidget(bar)
    with qtbot.waitSignal(bar.changed):
        bar.set_show("failed")
    assert proxy.show == "failed" and proxy.rowCount() == 1
    bar.set_show("all")
    with qtbot.waitSignal(bar.changed):
        qtbot.keyClicks(bar.search, "tab")
    assert proxy.rowCount() == 1 and proxy.index(0, 0).data(Qt.ItemDataRole.DisplayRole).endswith("/p/a.jpg")
    bar.set_sort("confidence")
    assert proxy.sort_key == "confidence"


def test_down_in_the_search_box_goes_to_the_gallery_and_esc_clears_it_before_stop(qtbot):
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from resnext_gui.ui.gallery import GalleryView

    model = GalleryModel()
    model.add([(f"/p/{n}.jpg", f"/p/{n}.jpg") for n in ("a", "b")])
    proxy = GalleryFilter()
    proxy.setSourceModel(model)
    window = QWidget()
    qtbot.addWidget(window)
    bar, gallery = GalleryBar(proxy, window), GalleryView(window)
    gallery.setModel(proxy)
    bar.below = gallery
    layout = QVBoxLayout(window)
    layout.addWidget(bar)
    layout.addWidget(gallery)
    stops = []
    stop = QAction("Stop", window)
    stop.setShortcut(QKeySequence("Esc"))
    stop.triggered.connect(lambda: stops.append(True))
    window.addAction(stop)  # as the window's Edit → Stop
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitActive(window)
    bar.search.setFocus()
    qtbot.waitUntil(bar.search.hasFocus)
    qtbot.keyClicks(bar.search, "b.jpg")
    assert proxy.rowCount() == 1
    qtbot.keyClick(bar.search, Qt.Key.Key_Escape)
    assert bar.search.text() == "" and proxy.rowCount() == 2 and stops == []
    qtbot.keyClick(bar.search, Qt.Key.Key_Escape)  # nothing left to clear: Esc is Stop again
    assert stops == [True]
    qtbot.keyClick(bar.search, Qt.Key.Key_Down)
    assert gallery.hasFocus() and gallery.currentIndex().row() == 0


def test_the_drop_downs_are_whole_side_by_side_where_they_fit_and_one_above_the_other_where_not(qtbot):
    """In a gallery narrowed for the photo (800 px window), side by side they were elided ("Order ad…")."""
    from PySide6.QtWidgets import QBoxLayout, QComboBox

    from resnext_gui.ui.gallery_filter import FILTERS, SORTS, whole_width

    bar = GalleryBar(GalleryFilter())
    qtbot.addWidget(bar)
    for box, items in ((bar.sort, SORTS), (bar.show_box, FILTERS)):  # the measure is Qt's own for a box that fits
        probe = QComboBox()
        probe.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for key, text in items:
            probe.addItem(text, key)
        assert whole_width(box) == probe.sizeHint().width()
        probe.deleteLater()
    bar.show()
    qtbot.waitExposed(bar)
    both = whole_width(bar.sort) + bar.row.spacing() + whole_width(bar.show_box)
    for width, direction in ((both + 40, QBoxLayout.Direction.LeftToRight), (both - 1, QBoxLayout.Direction.TopToBottom),
                             (max(whole_width(bar.sort), whole_width(bar.show_box)), QBoxLayout.Direction.TopToBottom)):
        bar.resize(width, bar.sizeHint().height())
        qtbot.waitUntil(lambda direction=direction: bar.row.direction() == direction)
        bar.layout().activate()
        assert all(box.width() >= whole_width(box) for box in (bar.sort, bar.show_box)), width
