"""What a drop or a paste brings (ui/drops.py), read from the mime data alone: no window."""

from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QImage

from resnext_gui.ui.drops import can_accept, offline_message, read_mime


def test_a_browser_drag_with_a_link_and_the_image_bytes_uses_the_image_named_after_the_link(photos):
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/pics/tabby.png?s=1")])
    mime.setData("image/png", photos["chelsea"].read_bytes())
    dropped = read_mime(mime)
    assert not dropped.refused and dropped.data[0][1] == "tabby.png"
    assert isinstance(dropped.data[0][0], bytes)


def test_local_files_win_over_web_links_and_web_links_alone_are_refused(tmp_path):
    link = "https://example.com/cat.jpg"
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "a.jpg")), QUrl.fromLocalFile(str(tmp_path)), QUrl(link)])
    dropped = read_mime(mime)
    assert dropped.paths == [str(tmp_path / "a.jpg"), str(tmp_path)] and not dropped.data and not dropped.refused
    web = QMimeData()
    web.setUrls([QUrl(link)])
    assert read_mime(web).refused == [(link, offline_message(link))]


def test_pasted_text_naming_files_is_paths(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    mime = QMimeData()
    mime.setText(f"file://{tmp_path / 'b.png'}\n{tmp_path}\n")
    assert read_mime(mime).paths == [str(tmp_path / "b.png"), str(tmp_path)]
    mime.setText(f"{tmp_path / 'not-there.png'}")
    assert not read_mime(mime)


def test_image_data_without_a_name_and_nothing_at_all():
    mime = QMimeData()
    image = QImage(4, 3, QImage.Format.Format_RGB32)
    image.fill(0)
    mime.setImageData(image)
    dropped = read_mime(mime)
    assert can_accept(mime) and len(dropped.data) == 1 and dropped.data[0][1] == "" and not dropped.paths
    empty = QMimeData()
    assert not can_accept(empty) and not read_mime(empty)
