"""Content digests of data files, remembered by file identity so unchanged files are read once.

A cache key or a data fingerprint built from file sizes and modification times misses a file
whose content was replaced keeping both (``cp --preserve``, ``touch -r``, an editor restoring
mtime). Keys are therefore built from content: a BLAKE2b-128 digest of every file's bytes.

Hashing every file on every run costs a full read of the data set (measured: 0.85 s for the
60,000 CIFAR-10 JPEGs, 55 MB, from the page cache; ImageNet-size sets need minutes), so each
digest is remembered under the file's *identity* ``(size, mtime_ns, ctime_ns, inode, device)``:
in this process, and in an SQLite file ``<memo_dir>/file-digests.sqlite`` shared by runs. Any
write to a file changes its ctime (which, unlike mtime, cannot be set back), and replacing it
changes its inode, so a remembered digest is only used for the same bytes. As in git's "racily
clean" rule, a digest is not remembered while the file's times are within
:data:`RACY_SECONDS` of now (a write in the same clock tick would keep them).

A damaged or unusable memo file is ignored with a warning (every file is then hashed; a folder
that cannot be written, with the caches' :class:`~avalanche_clip.common.cache_writes.CacheWriteWarning`); it can
only cost time, never give a wrong digest for a changed file, because its entries are keyed by
identity.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from avalanche_clip.common.cache_writes import warn_cache_unwritable
from avalanche_clip.scenarios.errors import MissingDataError

MEMO_FILENAME = "file-digests.sqlite"
RACY_SECONDS = 2.0
_CHUNK = 500  # paths per SQL query (below SQLite's parameter limit)
_MEMORY: dict[str, tuple[str, str]] = {}  # absolute path -> (identity, digest)


class DigestMemoWarning(UserWarning):
    """The digest memo file could not be used; files are hashed instead."""


def file_identity(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def _new_digest() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


def bytes_digest(data: bytes) -> str:
    """BLAKE2b-128 of ``data``, hex (the same digest as :func:`content_digest` of a file)."""
    digest = _new_digest()
    digest.update(data)
    return digest.hexdigest()


def content_digest(path: str) -> str:
    """BLAKE2b-128 of the file's bytes, hex."""
    digest = _new_digest()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(paths: Sequence[str], memo_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The content digest of each file in ``paths`` (module docstring), in order."""
    cwd = os.getcwd()
    absolute = [p if os.path.isabs(p) else os.path.join(cwd, p) for p in map(str, paths)]
    identities, stable = [], []
    now = time.time_ns()
    for path in absolute:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MissingDataError(f"data file {path} does not exist (it was listed a moment ago)") from None
        identities.append(file_identity(st))
        stable.append(now - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_SECONDS * 1e9)
    digests: list[str | None] = [
        entry[1] if (entry := _MEMORY.get(p)) and entry[0] == i else None
        for p, i in zip(absolute, identities, strict=True)
    ]
    memo = _Memo(memo_dir) if memo_dir is not None else None
    missing = [k for k, d in enumerate(digests) if d is None]
    if memo and missing:
        known = memo.lookup([absolute[k] for k in missing])
        for k in missing:
            if known.get(absolute[k], (None,))[0] == identities[k]:
                digests[k] = known[absolute[k]][1]
    fresh = []
    for k, digest in enumerate(digests):
        if digest is None:
            digests[k] = digest = content_digest(absolute[k])
            fresh.append(k)
        if stable[k]:
            _MEMORY[absolute[k]] = (identities[k], digest)
    if memo:
        memo.store([(absolute[k], identities[k], digests[k]) for k in fresh if stable[k]])
    return [d for d in digests if d is not None]


def _memo_key(path: str) -> str | bytes:
    """``path`` as SQLite can store it: the text when it is UTF-8, else its bytes as a BLOB.

    Linux file names are bytes; one that is not UTF-8 (``caf\\xe9.png`` in Latin-1) reaches
    Python as text with surrogates, which SQLite cannot encode. A BLOB never equals a TEXT
    value, so the two kinds of keys cannot collide, and memo files written before keep working.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


class _Memo:
    """The SQLite memo ``path -> (identity, digest)``; every failure degrades to "unknown"."""

    def __init__(self, memo_dir: str | os.PathLike[str]) -> None:
        self.path = Path(memo_dir) / MEMO_FILENAME
        self.usable = True  # False after a failure: one warning, not one per lookup and store

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=60)
        connection.execute("CREATE TABLE IF NOT EXISTS digests "
                           "(path TEXT PRIMARY KEY, identity TEXT NOT NULL, digest TEXT NOT NULL)")
        return connection

    def lookup(self, paths: list[str]) -> dict[str, tuple[str, str]]:
        if not self.usable:
            return {}
        try:
            with contextlib.closing(self._connect()) as db:
                found = {}
                by_key = {_memo_key(p): p for p in paths}
                keys = list(by_key)
                for start in range(0, len(keys), _CHUNK):
                    chunk = keys[start:start + _CHUNK]
                    rows = db.execute("SELECT path, identity, digest FROM digests WHERE path IN "
                                      f"({','.join('?' * len(chunk))})", chunk)
                    found.update((by_key[p], (i, d)) for p, i, d in rows if p in by_key)
                return found
        except (sqlite3.Error, OSError) as err:
            self._warn(err)
            return {}

    def store(self, rows: list[tuple[str, str, str]]) -> None:
        if not rows or not self.usable:
            return
        try:
            with contextlib.closing(self._connect()) as db, db:
                db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?)",
                               [(_memo_key(p), i, d) for p, i, d in rows])
        except (sqlite3.Error, OSError) as err:
            self._warn(err)

    def _warn(self, err: Exception) -> None:
        self.usable = False
        if isinstance(err, OSError):  # its folder cannot be made or written: not a damaged memo
            warn_cache_unwritable("file-digest memo", self.path.parent, err)
            return
        warnings.warn(f"file-digest memo {self.path} is unusable ({type(err).__name__}: {err}); "
                      "hashing the files instead (delete it to start a fresh one)",
                      DigestMemoWarning, stacklevel=4)


__all__ = ["MEMO_FILENAME", "DigestMemoWarning", "bytes_digest", "content_digest", "file_digests",
           "file_identity"]
