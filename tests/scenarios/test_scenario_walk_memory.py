"""A process remembers each image-folder walk with the identity of every folder it listed: a
walk of unchanged folders lists nothing and gives the same files (and warnings), any added,
removed or renamed entry is listed anew, and a folder changed in the last seconds is not
trusted to show its next change (file system clocks of whole seconds)."""

from __future__ import annotations

import os
import time

import pytest

from avalanche_clip.scenarios import walk
from avalanche_clip.scenarios.errors import DataLayoutWarning

_OS_WALK = os.walk  # the real one: the spy below counts the library's listings only


@pytest.fixture(autouse=True)
def _fresh_walks():
    walk.forget_walks()
    yield
    walk.forget_walks()


def _settle(root) -> None:
    """Age every folder's time below the 'recently changed' window, as data made long ago."""
    old = time.time() - 3600
    for dirpath, _, _ in _OS_WALK(root):
        os.utime(dirpath, (old, old))


@pytest.fixture
def folders(tmp_path):
    for name in ("a.png", "b.jpg", "notes.txt"):
        (tmp_path / "cls" / "sub").mkdir(parents=True, exist_ok=True)
        (tmp_path / "cls" / name).write_bytes(b"x")
    (tmp_path / "cls" / "sub" / "c.png").write_bytes(b"x")
    return tmp_path / "cls"


@pytest.fixture
def listings(monkeypatch):
    """The folders os.walk lists from now on."""
    listed: list[str] = []
    original = _OS_WALK

    def spy(top, *args, **kwargs):
        for entry in original(top, *args, **kwargs):
            listed.append(entry[0])
            yield entry

    monkeypatch.setattr(walk.os, "walk", spy)
    return listed


def test_an_unchanged_walk_lists_nothing(folders, listings):
    _settle(folders)
    first = walk.image_files_under(folders)
    assert first == [str(folders / "a.png"), str(folders / "b.jpg"), str(folders / "sub" / "c.png")]
    assert len(listings) == 2
    again = walk.image_files_under(folders)
    assert again == first and again is not first and len(listings) == 2  # remembered, a copy


@pytest.mark.parametrize("change", ["add", "remove", "rename", "add below"])
def test_a_changed_folder_is_listed_anew(folders, listings, change):
    _settle(folders)
    walk.image_files_under(folders)
    if change == "add":
        (folders / "d.png").write_bytes(b"x")
    elif change == "remove":
        (folders / "a.png").unlink()
    elif change == "rename":
        (folders / "b.jpg").rename(folders / "b2.jpg")
    else:
        (folders / "sub" / "e.png").write_bytes(b"x")
    assert walk.image_files_under(folders) == sorted(
        str(p) for p in folders.rglob("*") if p.suffix in (".png", ".jpg"))
    assert len(listings) == 4  # both folders listed again


def test_a_recently_changed_folder_is_not_remembered(folders, listings):
    walk.image_files_under(folders)  # the folders were just made: their times are now
    walk.image_files_under(folders)
    assert len(listings) == 4
    _settle(folders)
    walk.image_files_under(folders)
    walk.image_files_under(folders)
    assert len(listings) == 6  # once settled, the walk is kept


def test_a_remembered_walk_warns_again(tmp_path, listings):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "a.png").write_bytes(b"x")
    os.symlink("..", tmp_path / "cls" / "loop")
    _settle(tmp_path)
    for _ in range(2):
        with pytest.warns(DataLayoutWarning, match="skipped the link .*loop -> \\.\\."):
            assert walk.image_files_under(tmp_path / "cls") == [str(tmp_path / "cls" / "a.png")]
    assert len(listings) == 1
