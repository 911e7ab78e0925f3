"""The gallery model on its own: statuses, counts, the display cache and records, with no model loaded."""

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFontMetrics, QImage, QPainter

from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.gallery import GalleryModel, Status
from resnext_gui.worker.results import PhotoResult


def _ok(item_id, label="tabby"):
    return PhotoResult(item_id, True, f"{item_id}.jpg", top=[TopClass(1, 281, label, 0.8)],
                       display=QImage(8, 8, QImage.Format.Format_RGB888), record={"path": f"{item_id}.jpg", "ok": True})


def test_statuses_counts_and_records(qtbot):
    model = GalleryModel()
    photos = model.add([(f"/p/{i}.jpg", f"/p/{i}.jpg") for i in range(4)])
    assert model.rowCount() == 4 and [p.status for p in model] == [Status.QUEUED] * 4
    with qtbot.waitSignal(model.dataChanged):
        model.set_result(_ok(photos[0].item_id))
    model.set_result(PhotoResult(photos[1].item_id, False, "1.jpg", error="is truncated or damaged",
                                 record={"path": "1.jpg", "ok": False}))
    assert model.mark_stopped([photos[2].item_id, photos[0].item_id]) == 1  # a finished photo stays finished
    counts = model.counts()
    assert counts == {Status.DONE: 1, Status.FAILED: 1, Status.STOPPED: 1, Status.QUEUED: 1}
    assert model.index(0).data(Qt.ItemDataRole.DisplayRole).startswith("tabby 80%")
    assert "is truncated or damaged" in model.index(1).data(Qt.ItemDataRole.ToolTipRole)
    assert [r["ok"] for r in model.records()] == [True, False]
    model.clear()
    assert model.rowCount() == 0 and model.get(photos[0].item_id) is None
    assert model.set_result(_ok(photos[3].item_id)) is None  # an answer for a cleared photo is dropped


def test_display_cache_keeps_the_most_recently_seen(qtbot):
    model = GalleryModel(display_cache=3)
    photos = model.add([(f"{i}.jpg", f"{i}.jpg") for i in range(5)])
    for p in photos:
        model.set_result(_ok(p.item_id))
        assert p.result.display is None and p.thumb is None  # the display copy moved into the cache
    assert model.cached_displays() == 3 and model.display(photos[0].item_id) is None
    assert model.display(photos[2].item_id) is not None  # touched: now the most recent
    model.cache_display(photos[0].item_id, QImage(4, 4, QImage.Format.Format_RGB888))
    assert model.display(photos[3].item_id) is None and model.display(photos[2].item_id) is not None


def test_names_are_tooltips_in_plain_text(qtbot):
    model = GalleryModel()
    (photo,) = model.add([("<img src=/dev/zero>.jpg", "<img src=/dev/zero>.jpg")])
    tip = model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert "<img" not in tip and "&lt;img src=/dev/zero&gt;.jpg" in tip


def test_the_keyboard_s_cell_is_outlined_selected_or_not(qtbot):
    """The cell with the keyboard focus gets a frame of its own: the style's focus rectangle is faint or absent."""
    from PySide6.QtGui import QPainter
    from PySide6.QtWidgets import QStyle, QStyleOptionViewItem

    from resnext_gui.ui.gallery import CELL, GalleryView

    model = GalleryModel()
    model.add([("/p/a.jpg", "/p/a.jpg")])
    view = GalleryView()
    qtbot.addWidget(view)
    view.setModel(model)

    def cell(state):
        image = QImage(CELL, QImage.Format.Format_RGB32)
        image.fill(0xFFFFFFFF)
        option = QStyleOptionViewItem()
        option.initFrom(view)
        option.rect = image.rect()
        option.state = state | QStyle.StateFlag.State_Enabled
        painter = QPainter(image)
        view.itemDelegate().paint(painter, option, model.index(0))
        painter.end()
        return image

    for base in (QStyle.StateFlag.State_None, QStyle.StateFlag.State_Selected):
        plain, focused = cell(base), cell(base | QStyle.StateFlag.State_HasFocus)
        columns = range(10, CELL.width() - 10)  # along the top, inside the cell, above the thumbnail
        changed = [x for x in columns if any(plain.pixel(x, y) != focused.pixel(x, y) for y in range(1, 6))]
        assert len(changed) > len(columns) // 3


class RecordingPainter(QPainter):
    """A painter that notes every text drawn in a rectangle: (rectangle, flags, text)."""

    def __init__(self, device):
        super().__init__(device)
        self.texts = []

    def drawText(self, *args):  # noqa: N802
        if len(args) == 3 and isinstance(args[0], QRect):
            self.texts.append((QRect(args[0]), args[1], args[2]))
        return super().drawText(*args)


def test_a_caption_in_cjk_and_emoji_is_drawn_whole_inside_its_cell(qtbot):
    """Each caption line is given the height its text takes with the fonts that draw it (a CJK or emoji fallback
    is taller than the widget's font), and the cell holds both lines: nothing is cut at the bottom."""
    from PySide6.QtWidgets import QStyle, QStyleOptionViewItem

    from resnext_gui.ui.captions import line_height
    from resnext_gui.ui.gallery import GalleryView

    name = "caffè ☕ espresso — 朝.png"
    model = GalleryModel()
    (photo,) = model.add([(f"/p/{name}", f"/p/{name}")])
    model.set_result(PhotoResult(photo.item_id, True, photo.name, top=[TopClass(1, 967, "espresso 朝 ☕", 0.37)]))
    view = GalleryView()
    qtbot.addWidget(view)
    view.setModel(model)
    cell = view.gridSize() - QSize(4, 4)
    image = QImage(cell, QImage.Format.Format_RGB32)
    image.fill(0xFFFFFFFF)
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = image.rect()
    option.state = QStyle.StateFlag.State_Enabled
    painter = RecordingPainter(image)
    view.itemDelegate().paint(painter, option, model.index(0))
    painter.end()
    drawn = {text: rect for rect, _flags, text in painter.texts}
    caption, shown_name = sorted(drawn, key=lambda t: t != "espresso 朝 ☕ 37%")
    assert caption == "espresso 朝 ☕ 37%" and shown_name.startswith("caffè ☕") and shown_name.endswith("朝.png")
    font = view.font()
    for text, rect in drawn.items():
        assert rect.height() >= line_height(font, text), text  # as tall as the text drawn, fallback fonts included
        assert image.rect().contains(rect), text  # inside the cell
    assert line_height(font, name) >= QFontMetrics(font).height()
