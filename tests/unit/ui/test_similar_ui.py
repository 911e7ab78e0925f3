"""Find Similar and Find Duplicates… in the window (ui/similar_ui.py, ui/duplicates_ui.py), on the real worker with
the fake classifier (features from the pixels, real dHashes): the gallery ordered by similarity and back with Esc,
the groups with their keeper, Move to Trash into the desktop's trash and Undo out of it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from resnext_gui.ui.gallery import GalleryDelegate, PhotoRole, Status
from resnext_gui.ui.main_window import MainWindow
from resnext_gui.ui.similar_ui import CHOSEN, FiguresDelegate
from resnext_gui.worker.runner import Worker
from tests.support.helpers import near_duplicates
from tests.support.ui_fakes import FakeFactory

TIMEOUT = 60_000


def open_window(qtbot, settings, library, factory):
    worker = Worker("first.pth", "cpu", classifier_factory=factory, library=library)
    win = MainWindow(weights="first.pth", device="cpu", settings=settings, worker=worker)
    worker.setParent(win)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.library.restored, timeout=TIMEOUT):
        win.start()
    return win


@pytest.fixture
def gallery(qtbot, settings, photos, tmp_path):
    """A window whose gallery holds near-duplicates, every photo classified (and so in the results library)."""
    album = near_duplicates(photos, tmp_path / "album")
    factory = FakeFactory()
    win = open_window(qtbot, settings, tmp_path / "library.sqlite3", factory)
    with qtbot.waitSignal(win.scanFinished, timeout=TIMEOUT):
        win.add_paths([str(tmp_path / "album")])
    qtbot.waitUntil(lambda: len(win.photos) == len(album) and all(p.status is Status.DONE for p in win.photos),
                    timeout=TIMEOUT)
    yield win, album, factory
    if win.duplicates.dialog is not None:
        win.duplicates.dialog.close()
    win.close()
    assert not win.worker.is_running()


def shown(win) -> list[str]:
    """The gallery's photos as it shows them, by file name."""
    return [Path(win.proxy.index(r, 0).data(PhotoRole).name).name for r in range(win.proxy.rowCount())]


def caption(win, name: str) -> str:
    """The first line under a photo's thumbnail, as the gallery's delegate paints it."""
    photo = next(p for p in win.photos if Path(p.name).name == name)
    return win.gallery.itemDelegate().lines(photo, win.gallery.fontMetrics(), 400)[0]


def status(win) -> str:
    return win.statusBar().currentMessage()


def passes(factory) -> int:
    return sum(len(clf.calls) for clf in factory.made)


# ---- Find Similar ----
def test_find_similar_orders_the_gallery_with_figures_and_esc_goes_back(qtbot, gallery):
    win, album, factory = gallery
    before = shown(win)
    computed = passes(factory)
    win.select(win.photos.known(str(album["coffee"])))
    with qtbot.waitSignal(win.similar.ordered, timeout=TIMEOUT):
        win.commands["find_similar"].trigger()
    order = shown(win)
    assert order[0] == "coffee.png" and sorted(order[1:3]) == ["coffee-bright.jpg", "coffee-small.jpg"]
    assert order != before and sorted(order) == sorted(before)
    assert win.current_photo().source == str(album["coffee"])  # the chosen photo stays selected, first
    assert caption(win, "coffee.png").startswith(CHOSEN)
    assert caption(win, "coffee-small.jpg").startswith("1.00 · ")  # the same hash: the figure of an exact copy
    unrelated = float(caption(win, order[-1]).split(" · ")[0])
    assert unrelated < 0.6
    assert "Ordered by similarity to coffee.png; Esc goes back" in status(win)
    assert passes(factory) == computed  # every photo's features came from the results library

    win.activateWindow()
    qtbot.keyClick(win, Qt.Key.Key_Escape)
    assert shown(win) == before  # the order before, and the figures gone
    assert type(win.gallery.itemDelegate()) is GalleryDelegate
    assert not caption(win, "coffee-small.jpg").startswith("1.00")
    assert all(p.status is Status.DONE for p in win.photos)  # that Esc stopped nothing else


def test_find_similar_is_in_the_gallerys_context_menu_and_another_order_ends_it(qtbot, gallery):
    win, album, _factory = gallery
    before = shown(win)
    photo = win.photos.known(str(album["chelsea"]))
    rect = win.gallery.visualRect(win.proxy.mapFromSource(win.photos.index(win.photos.row_of(photo))))
    menu = win.gallery_menu_for(rect.center())
    action = next(a for a in menu.actions() if a.text().replace("&", "") == "Find Similar")
    assert action.isEnabled() and action.shortcut().toString() == "Ctrl+Shift+M"
    with qtbot.waitSignal(win.similar.ordered, timeout=TIMEOUT):
        action.trigger()
    menu.close()
    assert shown(win)[:2] == ["chelsea.png", "chelsea-copy.jpg"]
    assert isinstance(win.gallery.itemDelegate(), FiguresDelegate)
    win.gallery_bar.set_sort("label")  # another order chosen: Find Similar's ends, and its figures
    assert not win.similar.is_ordered and type(win.gallery.itemDelegate()) is GalleryDelegate
    assert shown(win) == before  # every label is the fake's "class 0": by label is the order added


def test_esc_stops_comparing_photos_the_library_does_not_have(qtbot, settings, photos, tmp_path):
    """Without a results library every photo is computed: the status bar shows the progress, Esc stops it, and the
    gallery's order stays as it was."""
    from tests.support.helpers import copies

    factory = FakeFactory()
    worker = Worker("first.pth", "cpu", classifier_factory=factory)  # no library: nothing is kept between jobs
    win = MainWindow(weights="first.pth", device="cpu", settings=settings, worker=worker)
    worker.setParent(win)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.modelStateChanged, timeout=TIMEOUT):
        win.start()
    files = copies([photos["coffee"], photos["chelsea"]], 30, tmp_path)
    with qtbot.waitSignal(win.scanFinished, timeout=TIMEOUT):
        win.add_paths([str(f) for f in files])
    qtbot.waitUntil(lambda: all(p.status is Status.DONE for p in win.photos), timeout=TIMEOUT)
    before, computed = shown(win), passes(factory)
    win.select(win.photos.photo(0))
    win.comparing.bar.show_progress = lambda done, total, real=win.comparing.bar.show_progress: (
        real(done, total), total and win.stop())  # Esc as soon as the status bar shows progress
    with qtbot.waitSignal(win.similar.ordered, timeout=TIMEOUT, raising=False) as ordered:
        win.similar.find_similar()
        qtbot.waitUntil(lambda: "Stopped comparing photos" in status(win), timeout=TIMEOUT)
    assert not ordered.signal_triggered and not win.similar.is_ordered
    assert 1 <= passes(factory) - computed < len(files)  # stopped between photos
    assert shown(win) == before and not win.comparing.bar.isVisible()
    win.close()


# ---- Find Duplicates… ----
def open_duplicates(qtbot, win):
    with qtbot.waitSignal(win.duplicates.found, timeout=TIMEOUT):
        win.commands["find_duplicates"].trigger()
    return win.duplicates.dialog


def tile_names(row) -> list[str]:
    return [Path(t.path).name for t in row.tiles]


def test_the_duplicates_dialog_shows_each_group_with_its_keeper(qtbot, gallery):
    win, album, factory = gallery
    computed = passes(factory)
    dialog = open_duplicates(qtbot, win)
    assert dialog.isVisible() and dialog.threshold() == 0.60
    assert dialog.meaning.text().startswith("0.60 — the same shot")
    rows = {tile_names(row)[0]: row for row in dialog.rows}
    assert set(rows) == {"coffee.png", "chelsea-copy.jpg"}  # keepers: most pixels, then the newest file
    coffee = rows["coffee.png"]
    assert sorted(tile_names(coffee)[1:]) == ["coffee-bright.jpg", "coffee-small.jpg"]
    keeper, *others = coffee.tiles
    assert keeper.badge.text() == "Keep" and not keeper.check.isChecked()
    assert all(t.badge.text() == "To Trash" and t.check.isChecked() for t in others)
    assert "1.00 · exact copy · 3 photos" in coffee.heading.text()
    assert "0.06 MP" in others[tile_names(coffee).index("coffee-small.jpg") - 1].facts.text()  # 300 x 200
    assert dialog.checked_paths() == [t.path for row in dialog.rows for t in row.tiles[1:]]
    assert "2 groups of near-duplicates among 7 photos at 0.60 · 3 copies checked to go" in dialog.summary.text()
    assert passes(factory) == computed

    index = win.comparing.memo.last.found.index
    with qtbot.waitSignal(win.duplicates.found, timeout=TIMEOUT) as blocker:
        dialog.set_threshold(0.45)
    assert blocker.args[0].threshold == 0.45 and dialog.meaning.text().startswith("0.45 — the same scene")
    assert win.comparing.memo.last.found.index is index  # a new threshold asks the same index again

    for tile in dialog.rows[0].tiles:  # every photo of a group checked: nothing moves
        tile.check.setChecked(True)
    dialog.move_button.click()
    assert "keep at least one of each group" in dialog.summary.text()
    assert all(os.path.exists(p) for p in album.values())


def trash() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "Trash"


def test_move_to_trash_is_restorable_and_undo_puts_the_photos_back(qtbot, gallery):
    win, album, _factory = gallery
    data = {name: path.read_bytes() for name, path in album.items()}
    dialog = open_duplicates(qtbot, win)
    going = dialog.checked_paths()
    assert sorted(Path(p).name for p in going) == ["chelsea.png", "coffee-bright.jpg", "coffee-small.jpg"]
    rows_before = {p: win.photos.row_of(win.photos.known(p)) for p in going}
    with qtbot.waitSignal(win.duplicates.trashed, timeout=TIMEOUT):
        dialog.move_button.click()
    for path in going:
        name = Path(path).name
        assert not os.path.exists(path)
        assert (trash() / "files" / name).read_bytes() == data[name.rsplit(".", 1)[0]]
        info = (trash() / "info" / f"{name}.trashinfo").read_text()
        assert f"Path={path}\n" in info  # where the file manager puts it back
        assert win.photos.known(path) is None  # out of the gallery
    assert len(win.photos) == len(album) - 3
    assert all(t.badge.text() == "In the Trash" and not t.checked for t in dialog.tiles() if t.path in going)
    assert "Moved 3 copies to the Trash" in status(win) and dialog.undo_button.isEnabled()
    assert win.commands["undo"].text().replace("&", "") == "Undo Move to Trash"

    with qtbot.waitSignal(win.duplicates.restored, timeout=TIMEOUT):
        dialog.undo_button.click()
    for path in going:
        name = Path(path).name
        assert Path(path).read_bytes() == data[name.rsplit(".", 1)[0]]  # the same bytes at the same place
        assert not (trash() / "files" / name).exists() and not (trash() / "info" / f"{name}.trashinfo").exists()
        photo = win.photos.known(path)
        assert photo is not None and photo.status is Status.DONE and win.photos.row_of(photo) == rows_before[path]
    assert len(win.photos) == len(album) and not dialog.undo_button.isEnabled()
    assert all(t.badge.text() == "To Trash" for t in dialog.tiles() if t.path in going)

    # again, undone from the Edit menu this time
    with qtbot.waitSignal(win.duplicates.trashed, timeout=TIMEOUT):
        dialog.move_button.click()
    assert not any(os.path.exists(p) for p in going)
    with qtbot.waitSignal(win.duplicates.restored, timeout=TIMEOUT):
        win.commands["undo"].trigger()
    assert all(os.path.exists(p) for p in going) and len(win.photos) == len(album)
    assert list((trash() / "files").iterdir()) == [] and list((trash() / "info").iterdir()) == []


def immutable(path: Path, on: bool) -> bool:
    """chattr +i / -i: not even root may rename the file (False where the file system or the user can't)."""
    r = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return r.returncode == 0


def test_a_copy_that_cannot_be_moved_is_said_and_the_others_go(qtbot, gallery):
    win, album, _factory = gallery
    dialog = open_duplicates(qtbot, win)
    stuck = album["chelsea"]  # the cat's copy to go can't be moved; the coffee's copies can
    if shutil.which("chattr") is None or not immutable(stuck, True):
        pytest.skip("chattr +i is needed: a file that refuses a rename, also to root (a read-only folder refuses "
                    "only other users: tests/unit/worker/test_similar_jobs.py runs that case as nobody)")
    try:
        with qtbot.waitSignal(win.duplicates.trashed, timeout=TIMEOUT) as blocker:
            dialog.move_button.click()
    finally:
        immutable(stuck, False)
    out = blocker.args[0]
    assert [p for p, _why in out.failed] == [str(stuck)] and stuck.exists()
    assert sorted(Path(p).name for p, _w in out.moved) == ["coffee-bright.jpg", "coffee-small.jpg"]
    failed = next(t for t in dialog.tiles() if t.path == str(stuck))
    assert failed.badge.text() == "Not moved" and failed.note.text().startswith("Not moved: ")
    assert "1 copy was not moved: chelsea.png: " in status(win) and "Moved 2 copies to the Trash" in status(win)
    assert not any(os.path.exists(p) for p in (album["coffee-bright"], album["coffee-small"]))
    assert win.photos.known(str(stuck)) is not None and len(win.photos) == len(album) - 2
    assert not list((Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "info").glob("chelsea*"))
