"""The Optuna storage of a tune, and a damaged SQLite file told in one line.

A truncated or overwritten ``optuna.db`` makes SQLite fail with "database disk image is
malformed" or "file is not a database", which reaches the user as a long SQLAlchemy traceback.
:func:`storage_errors` turns that into a :class:`StudyStorageError` naming the file, what is
wrong and what to do (move it aside; the trial folders stay, the studies start again). Other
database errors (a locked database, a server that cannot be reached) are not about the file and
pass through unchanged.
"""

from __future__ import annotations

import contextlib
import shlex
import sqlite3
from collections.abc import Iterator

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from avalanche_clip.common.errors import AvalancheClipError


class StudyStorageError(AvalancheClipError):
    """The tune's study storage cannot be read (a damaged SQLite file)."""


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` storage URL (None for other databases or in-memory SQLite)."""
    try:
        parsed = make_url(url)
    except Exception:  # not a database URL at all: Optuna says so itself
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Within the block, a damaged SQLite file behind ``url`` raises :class:`StudyStorageError`."""
    try:
        yield
    except DatabaseError as err:
        path = sqlite_path(url)
        damaged = isinstance(err.orig, sqlite3.DatabaseError) and not isinstance(
            err.orig, sqlite3.OperationalError)  # locked, read-only, ...: not the file's content
        if path is None or not damaged:
            raise
        raise StudyStorageError(
            f"the tune's study storage {path} is not a readable SQLite database ({err.orig}); it is "
            f"damaged (truncated or overwritten): move it aside (mv {shlex.quote(path)} "
            f"{shlex.quote(path + '.damaged')}) and run the tune again, which starts its studies "
            "anew, or pass --storage with another database"
        ) from None


__all__ = ["StudyStorageError", "sqlite_path", "storage_errors"]
