"""The control panel (ui/controls.py) alone: what it emits when the user changes something, and what it shows."""

import pytest
from PySide6.QtCore import Qt

from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.controls import ControlPanel, layer_name
from resnext_gui.ui.text import plain


def test_the_user_s_changes_come_out_as_signals(qtbot):
    panel = ControlPanel()
    qtbot.addWidget(panel)
    got = []
    panel.modeChosen.connect(lambda m: got.append(("mode", m)))
    panel.opacityChanged.connect(lambda v: got.append(("opacity", v)))
    panel.colormapChanged.connect(lambda c: got.append(("cmap", c)))
    panel.layerChosen.connect(lambda layer: got.append(("layer", layer)))
    panel.stopClicked.connect(lambda: got.append(("stop",)))
    panel.clearClicked.connect(lambda: got.append(("clear",)))
    qtbot.mouseClick(panel.mode_buttons[2], Qt.MouseButton.LeftButton)
    panel.opacity.setValue(30)
    panel.cmap.setCurrentText("hot")
    panel.layer_box.setCurrentIndex(1)
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert got == [("mode", "heatmap"), ("opacity", 0.3), ("cmap", "hot"), ("layer", "layer3"), ("stop",), ("clear",)]
    assert panel.legend.caption() == "opacity 30%" and panel.legend.cmap == "hot"


def test_showing_a_mode_checks_one_button_and_the_opacity_only_means_something_over_the_photo(qtbot):
    panel = ControlPanel()
    qtbot.addWidget(panel)
    panel.show_mode("heatmap")
    assert [b.isChecked() for b in panel.mode_buttons] == [False, False, True]
    assert not panel.opacity.isEnabled() and panel.legend.caption() == "heatmap only"
    panel.show_mode("overlay")
    assert [b.isChecked() for b in panel.mode_buttons] == [False, True, False] and panel.opacity.isEnabled()


def test_a_restored_layer_is_shown_without_asking_for_anything(qtbot):
    panel = ControlPanel()
    qtbot.addWidget(panel)
    with qtbot.assertNotEmitted(panel.layerChosen):
        panel.set_layer("layer3")
    assert panel.layer == "layer3"
    panel.set_layer("layer9")  # not a layer: the default
    assert panel.layer == "layer4"
    assert layer_name("layer3") == "stage before" and layer_name("layer4") == "last stage"


def test_show_top_lists_the_classes_and_an_empty_call_resets_the_heading(qtbot):
    panel = ControlPanel()
    qtbot.addWidget(panel)
    panel.show()
    top = [TopClass(r + 1, r, f"class {r}", 0.5 / (r + 1)) for r in range(5)]
    panel.show_top(top, 2, "a note", "Top 5 · heatmap: last stage")
    assert [r.isVisible() for r in panel.top5.rows] == [True] * 5 and panel.top5.rows[1].isChecked()
    assert plain(panel.top5.title.text()) == "Top 5 · heatmap: last stage" and plain(panel.top5.message.text()) == "a note"
    chosen = []
    panel.classChosen.connect(chosen.append)
    panel.top5.select(4)
    assert chosen == [4]
    panel.show_top()
    assert not any(r.isVisible() for r in panel.top5.rows) and plain(panel.top5.title.text()) == "Top 5"
    assert plain(panel.top5.message.text()) == ""


@pytest.mark.parametrize("scale", [1, 2])
def test_the_heading_fits_the_narrowest_panel_and_keeps_its_height(qtbot, scale):
    """"(updating…)" wraps within the panel (not cut at its edge), and the rows below stay put whatever the
    heading says; at twice the font size too (large fonts), where it may take a third line."""
    from PySide6.QtCore import QRect

    panel = ControlPanel()
    qtbot.addWidget(panel)
    font = panel.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    panel.setFont(font)
    panel.resize(panel.minimumWidth(), 700)  # as narrow as the window lets it be
    panel.show()
    qtbot.waitExposed(panel)
    top = [TopClass(r + 1, r, f"class {r}", 0.5 / (r + 1)) for r in range(5)]
    title = panel.top5.title
    places = set()
    for heading in ("Top 5", "Top 5 · heatmap: last stage", "Top 5 · heatmap: stage before (updating…)"):
        panel.show_top(top, 1, "", heading)
        qtbot.waitUntil(lambda: not title.wordWrap() or title.height() >= title.heightForWidth(title.width()))  # laid out
        box = title.contentsRect()
        flags = int(title.alignment()) | (int(Qt.TextFlag.TextWordWrap) if title.wordWrap() else 0)
        needed = title.fontMetrics().boundingRect(QRect(0, 0, box.width(), 10_000), flags, heading)
        assert needed.width() <= box.width() and needed.height() <= box.height(), heading
        places.add(panel.top5.rows[0].y())
    assert len(places) == 1 or scale > 1  # a large font may need a third line; the usual one never moves the rows


def wrapped_lines(label, width):
    """The lines a word-wrapped label breaks its text into at ``width`` (Qt's own line breaking, as it draws)."""
    from PySide6.QtGui import QTextLayout, QTextOption

    layout = QTextLayout(label.text(), label.font())
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WordWrap)
    layout.setTextOption(option)
    layout.beginLayout()
    lines = []
    while (line := layout.createLine()).isValid():
        line.setLineWidth(width)
        lines.append(label.text()[line.textStart():line.textStart() + line.textLength()].strip())
    layout.endLayout()
    return [plain(text) for text in lines]


def test_the_score_and_the_notes_never_break_inside_a_figure_or_a_method_s_name(qtbot):
    """At any panel width: no line starts with "%" (a figure and its unit stay together) and "Eigen-CAM",
    "Score-CAM"... are never split at their hyphen; the words themselves are unchanged."""
    panel = ControlPanel()
    qtbot.addWidget(panel)
    score = ("Faithfulness: hiding the brightest 20 % of this map drops tabby from 49 % to 16 % "
             "(a random map: to <1 %).")
    note = "Score-CAM cancelled: showing Eigen-CAM. Show the photo again to compute it."
    top = [TopClass(r + 1, r, f"class {r}", 0.5 / (r + 1)) for r in range(5)]
    panel.show_top(top, 1, note, "Top 5 · Grad-CAM++ (28×28)")
    panel.top5.set_score(score)
    checked = 0
    for label, text in ((panel.top5.score, score), (panel.top5.message, note), (panel.top5.title, None)):
        if text is not None:
            assert plain(label.text()) == text
        for width in range(40, 400, 3):
            lines = wrapped_lines(label, width)
            assert not any(line.startswith(("%", "CAM", "++")) for line in lines), (width, lines)
            assert not any(line.endswith(("Eigen-", "Score-", "Grad-", "Layer-", "XGrad-")) for line in lines), (width, lines)
            checked += len(lines) > 1
    assert checked > 50  # the texts were wrapped at most of those widths
