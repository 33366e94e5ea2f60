"""A process remembers each image-folder walk with the identity of every folder it listed and
every link it met: a walk of unchanged folders lists nothing and gives the same files (and
warnings); an added, removed or renamed entry, a link that leads elsewhere, a change made while a
folder was being listed, or a folder changed in the last seconds (file system clocks of whole
seconds) is listed anew."""

from __future__ import annotations

import os

import pytest

from avalanche_clip.scenarios import walk
from avalanche_clip.scenarios.errors import DataLayoutWarning

_OS_WALK = os.walk  # the real one: the spy below counts the library's listings only


@pytest.fixture(autouse=True)
def _fresh_walks():
    walk.forget_walks()
    yield
    walk.forget_walks()


@pytest.fixture
def settled(monkeypatch):
    """Every change counts as long past (as data made long ago), whatever the clock says: the
    identities (device, inode, times) alone decide."""
    monkeypatch.setattr(walk, "_SETTLED_NS", -10**15)


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "cls" / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "notes.txt"):
        (tmp_path / "cls" / name).write_bytes(b"x")
    (tmp_path / "cls" / "sub" / "c.png").write_bytes(b"x")
    return tmp_path / "cls"


@pytest.fixture
def listings(monkeypatch):
    """The folders os.walk lists from now on (the library's walks)."""
    listed: list[str] = []

    def spy(top, *args, **kwargs):
        for entry in _OS_WALK(top, *args, **kwargs):
            listed.append(entry[0])
            yield entry

    monkeypatch.setattr(walk.os, "walk", spy)
    return listed


def _images(folder) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix in (".png", ".jpg"))


def test_an_unchanged_walk_lists_nothing(folders, listings, settled):
    first = walk.image_files_under(folders)
    assert first == [str(folders / "a.png"), str(folders / "b.jpg"), str(folders / "sub" / "c.png")]
    assert len(listings) == 2
    again = walk.image_files_under(folders)
    assert again == first and again is not first and len(listings) == 2  # remembered, a copy


@pytest.mark.parametrize("change", ["add", "remove", "rename", "add below", "chmod"])
def test_a_changed_folder_is_listed_anew(folders, listings, settled, change):
    walk.image_files_under(folders)
    if change == "add":
        (folders / "d.png").write_bytes(b"x")
    elif change == "remove":
        (folders / "a.png").unlink()
    elif change == "rename":
        (folders / "b.jpg").rename(folders / "b2.jpg")
    elif change == "add below":
        (folders / "sub" / "e.png").write_bytes(b"x")
    else:  # no entry changes, but its change time does (a folder made readable again)
        os.chmod(folders / "sub", 0o700)
    assert walk.image_files_under(folders) == _images(folders)
    assert len(listings) == 4  # both folders listed again


def test_a_change_while_a_folder_is_listed_is_seen_next_time(folders, monkeypatch, settled):
    """The identity is taken before the listing: a file added after the folder was listed, with
    the folder's times then set back to what they were, still changes its change time."""
    def adding_spy(top, *args, **kwargs):
        for entry in _OS_WALK(top, *args, **kwargs):
            if entry[0] == str(folders):
                stat = os.stat(folders)
                (folders / "late.png").write_bytes(b"x")
                os.utime(folders, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            yield entry

    monkeypatch.setattr(walk.os, "walk", adding_spy)
    assert str(folders / "late.png") not in walk.image_files_under(folders)
    monkeypatch.setattr(walk.os, "walk", _OS_WALK)
    assert str(folders / "late.png") in walk.image_files_under(folders)


def test_links_that_lead_elsewhere_are_listed_anew(tmp_path, listings, settled):
    one, two, top = tmp_path / "one", tmp_path / "two", tmp_path / "top"
    for folder, image in ((one, "1.png"), (two, "2.png")):
        folder.mkdir()
        (folder / image).write_bytes(b"x")
    top.mkdir()
    os.symlink(one, top / "linked")
    os.symlink(tmp_path / "later", top / "broken")  # listed as a file while broken
    assert walk.image_files_under(top) == [str(top / "linked" / "1.png")]
    os.remove(top / "linked")
    os.symlink(two, top / "linked")  # retargeted
    assert walk.image_files_under(top) == [str(top / "linked" / "2.png")]
    (tmp_path / "later").mkdir()  # the broken link now leads to a folder
    (tmp_path / "later" / "3.png").write_bytes(b"x")
    assert walk.image_files_under(top) == [str(top / "broken" / "3.png"), str(top / "linked" / "2.png")]
    assert walk.image_files_under(top) == [str(top / "broken" / "3.png"), str(top / "linked" / "2.png")]
    assert listings.count(str(top)) == 3  # the last call was remembered


def test_a_recently_changed_folder_is_not_remembered(folders, listings, monkeypatch):
    walk.image_files_under(folders)  # the folders were just made: their times are now
    walk.image_files_under(folders)
    assert len(listings) == 4
    monkeypatch.setattr(walk, "_SETTLED_NS", -10**15)  # as if long ago
    walk.image_files_under(folders)
    walk.image_files_under(folders)
    assert len(listings) == 6  # once settled, the walk is kept


def test_a_remembered_walk_warns_again(tmp_path, listings, settled):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "a.png").write_bytes(b"x")
    os.symlink("..", tmp_path / "cls" / "loop")
    for _ in range(2):
        with pytest.warns(DataLayoutWarning, match="skipped the link .*loop -> \\.\\."):
            assert walk.image_files_under(tmp_path / "cls") == [str(tmp_path / "cls" / "a.png")]
    assert len(listings) == 1
