"""Finding the photos (core/paths.py): files as given, folders walked in sorted order, links that leave the folder
and loops passed over with the reason, other files counted."""

import os

from resnext_gui.core.paths import expand_paths, is_image_name, iter_images


def test_a_folder_gives_its_images_in_sorted_path_order_and_a_named_file_is_always_given(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.JPG", "b/1.png", "a.jpg", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    others = []
    found = list(iter_images([tmp_path], on_other=others.append))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.jpg", "b/1.png", "b/2.JPG", "c.webp"]
    assert others == [tmp_path / "notes.txt"]
    assert expand_paths([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]  # named: it gets its own answer
    assert is_image_name("X.TIFF") and not is_image_name("x.tif.txt")


def test_links_that_leave_the_folder_and_loops_are_passed_over_once_with_the_reason(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    (root / "in" / "p.jpg").write_bytes(b"x")
    os.symlink(outside, root / "away")
    os.symlink(root / "in", root / "again")  # a second way to the same folder: visited once
    os.symlink(root, root / "in" / "loop")
    skipped = []
    found = expand_paths([root], lambda path, reason: skipped.append((path.name, reason)))
    assert [p.name for p in found] == ["p.jpg"]
    assert skipped == [("away", "is a link that leads outside the folder; not followed")]
