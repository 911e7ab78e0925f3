"""What the commands write beside the records: progress with its rate and time left, the --files-from list, the walk."""

import io
import os

from resnext_gui.cli.output import Expansion, Progress, clock_text, path_list


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_lines_give_the_rate_and_the_time_left():
    clock, out = Clock(), io.StringIO()
    progress = Progress(40, stream=out, clock=clock)
    for ok in [True] * 7 + [False]:
        clock.now += 0.5  # two photos a second
        progress.step(ok)
    lines = out.getvalue().splitlines()
    assert lines == ["classified 4/40 (0 failed), 2 photos/s, about 0:18 left",  # a line every tenth
                     "classified 8/40 (1 failed), 2 photos/s, about 0:16 left"]
    for _ in range(32):
        clock.now += 0.5
        progress.step(True)
    progress.close()
    assert out.getvalue().splitlines()[-2:] == ["classified 40/40 (1 failed), 2 photos/s", "40 images in 20.0 s, 1 failed"]


def test_progress_without_a_total_says_the_rate_every_ten_seconds():
    clock, out = Clock(), io.StringIO()
    progress = Progress(None, stream=out, clock=clock)
    for _ in range(50):
        clock.now += 0.25
        progress.step(True)
    assert out.getvalue().splitlines() == ["classified 40 (0 failed), 4 photos/s"]
    progress.total = 100  # counted meanwhile: the time left from now on
    clock.now += 0.25
    progress.step(True)
    assert out.getvalue().splitlines()[-1] == "classified 51/100 (0 failed), 4 photos/s, about 0:12 left"


def test_progress_on_a_terminal_redraws_one_line():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock, out = Clock(), Tty()
    progress = Progress(None, stream=out, clock=clock)
    clock.now += 1
    progress.step(True)
    assert out.getvalue() == "\rclassified 1  0 failed, 1 photos/s\033[K"


def test_clock_text():
    assert [clock_text(s) for s in (7, 59.6, 725, 10930)] == ["0:07", "1:00", "12:05", "3:02:10"]


def test_path_list_reads_names_as_bytes_and_passes_blank_lines_over(tmp_path, monkeypatch):
    odd = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.jpg\n\nsub dir/b.png\r\n" + os.fsencode(odd) + b"\n")
    assert list(path_list(str(listing))) == ["a.jpg", "sub dir/b.png", odd]

    class Stdin:
        buffer = io.BytesIO(b"x.png\ny.png")

    monkeypatch.setattr("sys.stdin", Stdin)
    assert list(path_list("-")) == ["x.png", "y.png"]


def test_expansion_walks_as_it_is_taken_and_counts_what_it_passes_over(tmp_path, capsys):
    (tmp_path / "album").mkdir()
    for name in ("b.jpg", "a.jpg", "notes.txt"):
        (tmp_path / "album" / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "album" / "out").symlink_to(tmp_path / "empty")
    names = iter([str(tmp_path / "album"), str(tmp_path / "empty")])
    found = Expansion(names)
    walk = iter(found)
    assert next(walk) == tmp_path / "album" / "a.jpg"
    assert list(names) == [str(tmp_path / "empty")], "the second name is not read before it is needed"
    found = Expansion([str(tmp_path / "album"), str(tmp_path / "empty")])
    assert [p.name for p in found] == ["a.jpg", "b.jpg"]
    assert (found.unreadable, found.skipped) == (0, 1)
    err = capsys.readouterr().err
    assert "is a link that leads outside the folder" in err and "empty holds no images" in err
    quiet = Expansion([str(tmp_path / "album"), str(tmp_path / "empty")], quiet=True)
    assert len(list(quiet)) == 2 and quiet.skipped == 1
    assert capsys.readouterr().err == ""
