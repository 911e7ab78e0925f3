"""How photos come in (ui/intake.py), without a window: files skipped by name, folders listed a slice at a time,
image data named, web links said in the status bar and never added."""

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QSettings, QUrl

from resnext_gui.ui.drops import offline_message
from resnext_gui.ui.intake import ARRIVAL_SLICE, Intake
from resnext_gui.ui.messages import Messages


@pytest.fixture
def intake(qtbot, tmp_path):
    messages = Messages()
    status = []
    messages.status.connect(lambda text, ms: status.append(text))
    it = Intake(messages, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    arrived = []
    it.arrived.connect(lambda sources, select, listing: arrived.append((sources, select)))
    refused = []  # kept for the tests' unpacking: nothing is refused into the gallery
    yield it, arrived, refused, status
    assert it.scanner.stop()


def test_files_that_are_plainly_not_photos_are_counted_not_listed(intake, tmp_path):
    it, arrived, refused, status = intake
    notes = [tmp_path / f"n{i}.txt" for i in range(2)]
    for n in notes:
        n.write_text("x")
    assert it.add_paths([str(n) for n in notes]) == 0
    assert status == ["2 files skipped: not images."] and arrived == []


def test_a_folder_arrives_in_slices_and_its_first_slice_is_selected(qtbot, intake, tmp_path):
    it, arrived, refused, status = intake
    for i in range(ARRIVAL_SLICE + 5):
        Image.new("RGB", (4, 4)).save(tmp_path / f"p{i:03}.png")
    with qtbot.waitSignal(it.scanFinished, timeout=30_000) as done:
        it.add_paths([str(tmp_path)])
    names = [name for sources, _ in arrived for _src, name in sources]
    assert done.args == [ARRIVAL_SLICE + 5] and len(names) == ARRIVAL_SLICE + 5
    assert max(len(sources) for sources, _ in arrived) <= ARRIVAL_SLICE
    assert [select for _, select in arrived] == [True] + [False] * (len(arrived) - 1)


def test_a_folder_s_files_that_are_not_images_are_counted_in_what_was_skipped(qtbot, intake, tmp_path):
    it, arrived, refused, status = intake
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "p.png")
    for name in ("a.txt", "sub/b.pdf", "sub/c.xmp"):
        (tmp_path / name).write_text("x")
    with qtbot.waitSignal(it.scanFinished, timeout=30_000):
        it.add_paths([str(tmp_path)])
    assert [name for sources, _ in arrived for _src, name in sources] == [str(tmp_path / "p.png")]
    assert status == ["3 files skipped: not images."]
    status.clear()
    (tmp_path / "p.png").unlink()
    with qtbot.waitSignal(it.scanFinished, timeout=30_000):
        it.add_paths([str(tmp_path / "sub")])  # nothing but other files: said as such, not as "no images found"
    assert status == ["2 files skipped: not images."]


def test_a_cancelled_listing_brings_nothing_more_in(qtbot, intake, tmp_path):
    it, arrived, refused, status = intake
    for i in range(3):
        Image.new("RGB", (4, 4)).save(tmp_path / f"p{i}.png")
    finished = []
    it.scanFinished.connect(finished.append)
    with qtbot.waitSignal(it.scanner.finishedRequest, timeout=30_000):  # the scanner's own end of the request
        it.add_paths([str(tmp_path)])
        it.cancel()
    qtbot.waitUntil(lambda: not it._arrivals)  # whatever was on its way was dropped, not delivered later
    assert arrived == [] and finished == []


def test_image_data_is_named_and_web_links_are_refused(intake):
    it, arrived, refused, status = intake
    mime = QMimeData()
    mime.setData("image/png", b"\x89PNG not really")
    assert it.add_mime(mime, pasted=True)
    it.add_mime(mime)
    assert [sources[0][1] for sources, _ in arrived] == ["pasted image 1", "dropped image 2"]


def test_a_web_link_alone_is_said_in_the_status_bar_and_leaves_no_entry(intake):
    it, arrived, refused, status = intake
    web = QMimeData()
    web.setUrls([QUrl("https://example.com/cat.jpg")])
    assert it.add_mime(web)  # taken (the drop is answered), but nothing arrives in the gallery
    assert arrived == [] and status == [offline_message("https://example.com/cat.jpg")]
    two = QMimeData()
    two.setUrls([QUrl("https://example.com/a.jpg"), QUrl("ftp://example.com/b.png")])
    it.add_mime(two)
    assert arrived == [] and status[-1] == offline_message("https://example.com/a.jpg") + " (1 other link not downloaded either.)"


def test_photos_already_in_the_gallery_are_counted_exactly_with_the_files_skipped(qtbot, intake, tmp_path):
    """Wired to the batch controller as the window wires them: however many slices a listing takes, its end
    says once how many photos the gallery had already, together with the files passed over by name."""
    from resnext_gui.ui.controller import BatchController
    from resnext_gui.ui.gallery import GalleryModel
    from tests.support.ui_fakes import FakeWorker

    it, arrived, refused, status = intake
    photos = GalleryModel()
    ctl = BatchController(photos, FakeWorker(), it.messages, lambda: None)
    it.arrived.connect(ctl.enqueue)
    ctl.alreadyKnown.connect(it.already_known)
    n_photos, n_notes = 2 * ARRIVAL_SLICE + 9, ARRIVAL_SLICE + 13  # past two slices, and not a multiple of one
    images = [tmp_path / f"p{i:03}.png" for i in range(n_photos)]
    for p in images:
        Image.new("RGB", (4, 4)).save(p)
    notes = [tmp_path / f"n{i:03}.txt" for i in range(n_notes)]
    for n in notes:
        n.write_text("x")
    with qtbot.waitSignal(it.scanFinished, timeout=30_000):
        it.add_paths([str(tmp_path)])  # the folder: its text files are not listed, only counted
    assert len(photos) == n_photos
    status.clear()
    with qtbot.waitSignal(it.scanFinished, timeout=30_000):
        it.add_paths([str(tmp_path)])
    assert status == [f"{n_photos} photos are already in the gallery. {n_notes} files skipped: not images."]
    status.clear()
    with qtbot.waitSignal(it.scanFinished, timeout=30_000):
        it.add_paths([str(p) for p in sorted(images + notes)])  # the files themselves, as a file manager drops them
    assert status == [f"{n_photos} photos are already in the gallery. {n_notes} files skipped: not images."]
    assert len(photos) == n_photos
