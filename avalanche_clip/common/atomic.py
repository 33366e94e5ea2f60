"""Atomic file writes: a reader sees the old file or the whole new one, never half of either.

The bytes go to a temporary file in the *same* directory (``os.replace`` is only atomic within
one file system), are flushed and fsynced, then renamed over the target. On any error the
temporary file is removed and the previous target, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from avalanche_clip.common.errors import writing

#: Mode of written files; ``mkstemp`` would leave 0600, unreadable to other users of a shared sweep.
FILE_MODE = 0o644


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it to ``path``.

    Returns the target path. The parent directory is created when missing.
    """
    target = Path(path)
    with writing(target, exact=True):  # a full disk or read-only folder: one error naming the file
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        _write_and_rename(fd, tmp_name, target, write)
    return target


def _write_and_rename(fd: int, tmp_name: str, target: Path, write: Callable[[BinaryIO], object]) -> None:
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        cause = _os_error_behind(err)
        if cause is not None:  # a fresh one: re-raising ``cause`` would chain it to itself
            raise OSError(cause.errno, cause.strerror, cause.filename) from err
        raise


def _os_error_behind(err: BaseException) -> OSError | None:
    """The earliest ``OSError`` (with an errno) chained behind ``err``, when ``err`` itself is
    another kind of error; else None.

    A writer may hide why it failed: when the disk fills up mid-``torch.save``, the ``OSError``
    (ENOSPC) is followed, while torch closes its archive, by a ``RuntimeError`` about an
    "unexpected pos". Re-raising the ``OSError`` lets :func:`~avalanche_clip.common.errors.writing` say
    what happened in one line instead of that traceback.
    """
    if isinstance(err, OSError) or not isinstance(err, Exception):  # as it is (Ctrl-C too)
        return None
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    os_errors = [e for e in chain if isinstance(e, OSError) and e.errno is not None]
    return os_errors[-1] if os_errors else None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (``\\n`` line endings on every platform)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))
