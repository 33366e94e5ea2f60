"""Content digests remembered by file identity: reused only for unchanged files, a damaged memo
costs time, never a wrong digest."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from avalanche_clip.scenarios import file_digests as fd


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setattr(fd, "RACY_SECONDS", 0.0)  # remember digests of these just-written files
    monkeypatch.setattr(fd, "_MEMORY", {})
    paths = []
    for i in range(3):
        path = tmp_path / "data" / f"{i}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes([i]) * 100)
        paths.append(str(path))
    return paths


def _blake(path: str) -> str:
    with open(path, "rb") as stream:
        return hashlib.blake2b(stream.read(), digest_size=16).hexdigest()


def test_digests_are_of_the_content_and_remembered_in_the_memo(files, tmp_path, monkeypatch):
    memo = tmp_path / "memo"
    assert fd.file_digests(files, memo) == [_blake(p) for p in files]
    rows = sqlite3.connect(memo / fd.MEMO_FILENAME).execute("SELECT path, digest FROM digests").fetchall()
    assert sorted(rows) == sorted((p, _blake(p)) for p in files)

    monkeypatch.setattr(fd, "_MEMORY", {})
    read = []
    original = fd.content_digest
    monkeypatch.setattr(fd, "content_digest", lambda p: read.append(p) or original(p))
    assert fd.file_digests(files, memo) == [_blake(p) for p in files]
    assert read == []  # all from the memo


def test_a_file_rewritten_with_its_old_size_and_mtime_is_hashed_again(files, tmp_path, monkeypatch):
    memo = tmp_path / "memo"
    fd.file_digests(files, memo)
    stat = os.stat(files[1])
    with open(files[1], "r+b") as stream:
        stream.write(b"\xff")  # same size
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime; ctime moves on
    monkeypatch.setattr(fd, "_MEMORY", {})
    assert fd.file_digests(files, memo)[1] == _blake(files[1]) != fd.bytes_digest(bytes([1]) * 100)


def test_files_changed_just_now_are_not_remembered(files, tmp_path, monkeypatch):
    monkeypatch.setattr(fd, "RACY_SECONDS", 3600.0)
    fd.file_digests(files, tmp_path / "memo")
    assert fd._MEMORY == {}
    assert sqlite3.connect(tmp_path / "memo" / fd.MEMO_FILENAME).execute("SELECT * FROM digests").fetchall() == []


def test_a_damaged_memo_warns_and_the_digests_stay_right(files, tmp_path):
    memo = tmp_path / "memo"
    memo.mkdir()
    (memo / fd.MEMO_FILENAME).write_bytes(b"\0" * 4096)
    with pytest.warns(fd.DigestMemoWarning, match=rf"file-digest memo {memo / fd.MEMO_FILENAME} is unusable"):
        assert fd.file_digests(files, memo) == [_blake(p) for p in files]


def test_a_missing_file_is_named(files, tmp_path):
    os.unlink(files[2])
    with pytest.raises(fd.MissingDataError, match=f"data file {files[2]} does not exist"):
        fd.file_digests(files, tmp_path / "memo")
