"""The project's error base class, and write errors translated into what to do about them.

Every error a user can cause or fix (a bad config value, damaged data or checkpoints, an output
folder that cannot be written) derives from :class:`AvalancheClipError`; the CLI prints such an
error as one line and exits with code 2, while anything else (a bug) keeps its traceback.
Errors that were ``ValueError`` / ``OSError`` before keep those bases as well, so existing
``except`` clauses still catch them.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator


class AvalancheClipError(Exception):
    """Base of the errors that say what is wrong and what to do (CLI: one line, exit code 2).

    Raised in a DataLoader worker process, such an error is re-created in the main process by
    torch with the worker's whole traceback as its message; the message is cut back to the
    original one (plus where it happened), so it stays one clear line there too.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        if len(args) == 1 and isinstance(args[0], str) and _WORKER_TRACEBACK in args[0]:
            self.args = (_original_message(args[0], type(self)),)
        if len(args) == 1 and isinstance(args[0], str) and len(self.args[0]) > MAX_MESSAGE:
            self.args = (clip_message(self.args[0]),)


#: The most characters of an error message shown whole. Messages echo the value they refuse
#: (``got {value!r}``); a value of megabytes (a 10 MB string in a config) is cut in the middle
#: instead of being echoed whole to the terminal or into a failures file. The longest messages
#: written by hand (the list of known config keys) stay well below.
MAX_MESSAGE = 2000


def clip_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` itself if at most ``limit`` characters, else its start and its end (where the
    messages say what was expected) around a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    head, tail = text[:limit * 3 // 5], text[len(text) - limit // 5:]
    return f"{head}… ({len(text) - len(head) - len(tail)} characters left out) …{tail}"


class OutputWriteError(AvalancheClipError, OSError):
    """A result, checkpoint, cache entry or report could not be written (full disk, read-only
    folder); the file that was there before, if any, is unchanged."""


_WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):\n"


def _original_message(wrapped: str, cls: type) -> str:
    """The message of ``cls`` at the end of a worker traceback that torch wrapped."""
    where = wrapped.split("\n", 1)[0].removeprefix(f"Caught {cls.__name__} ").rstrip(".")
    marker = f"{cls.__module__}.{cls.__qualname__}: "
    start = wrapped.rfind(marker)
    if start < 0:
        return wrapped
    return f"{wrapped[start + len(marker):].strip()} ({where})"


#: errno values that mean "this place cannot take the write", with what to do about each.
_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space and run the same command again "
    "(finished records are kept; --resume continues an interrupted run)",
    errno.EDQUOT: "the disk quota is exceeded; free some space and run the same command again",
    errno.EFBIG: "the file would exceed the file-size limit (ulimit -f) or the file system's largest file; "
    "raise the limit or choose another folder and run the same command again "
    "(finished records are kept; --resume continues an interrupted run)",
    errno.EROFS: "the file system is read-only; choose a writable folder (--out, cache_dir)",
    errno.EACCES: "permission denied; choose a writable folder (--out, cache_dir) or fix its permissions",
    errno.EPERM: "operation not permitted; choose a writable folder (--out, cache_dir) or fix its permissions",
}


def write_error(err: OSError, path: str | os.PathLike[str], *, exact: bool = False
                ) -> OutputWriteError | None:
    """The :class:`OutputWriteError` for ``err`` raised while writing ``path`` (None: not a
    can't-write error, e.g. a missing file, which the caller should re-raise as it is).

    The message names the file the error names, else ``path``; ``exact=True``: always ``path``
    (e.g. the target of an atomic write rather than its temporary file). Without ``exact``, an
    error naming a file outside ``path`` (reading a model file, say) is not translated.
    """
    if isinstance(err, AvalancheClipError) or err.errno not in _WRITE_ADVICE:
        return None
    if exact or err.filename is None:
        where = path
    elif _inside(os.fsdecode(err.filename), os.fspath(path)):
        where = err.filename
    else:
        return None
    translated = OutputWriteError(
        f"cannot write {os.fsdecode(where)}: {os.strerror(err.errno)}; {_WRITE_ADVICE[err.errno]}"
    )
    translated.errno = err.errno  # set after: OSError(errno, text) would prefix "[Errno N]"
    return translated


def _inside(name: str, folder: str) -> bool:
    name, folder = os.path.abspath(name), os.path.abspath(folder)
    return name == folder or name.startswith(folder.rstrip(os.sep) + os.sep)


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], *, exact: bool = False) -> Iterator[None]:
    """Turn a full-disk / read-only / permission error inside the block into an
    :class:`OutputWriteError` naming the file (see :func:`write_error`)."""
    try:
        yield
    except OSError as err:
        translated = write_error(err, path, exact=exact)
        if translated is None:
            raise
        raise translated from err


def check_writable_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` if needed and prove a file can be created in it (then removed), so a
    read-only or full output folder is reported before any work starts."""
    folder = os.fspath(path)
    with writing(folder, exact=True):
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-probe-{os.getpid()}")
        try:
            with open(probe, "wb") as handle:
                handle.write(b"\0")
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)


__all__ = ["MAX_MESSAGE", "AvalancheClipError", "OutputWriteError", "check_writable_dir", "clip_message",
           "write_error", "writing"]


class ConfigError(AvalancheClipError, ValueError):
    """A config value or key is invalid; the message names it and what was expected."""
