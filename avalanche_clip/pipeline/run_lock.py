"""One process at a time in a run folder.

Two processes writing one run folder (two ``avalanche-clip run --out DIR``, two sweeps over one
``--out``) would each write ``config.yaml``, ``results.jsonl`` and ``checkpoint.pt``, leaving a
folder whose config does not match its records. :func:`run_folder_lock` holds an OS-level lock on
``<folder>/.run.lock`` for the whole run (read, train, write): a second process stops at once
with :class:`RunFolderBusyError`, one line naming the holder (pid, host, since when) and the lock
file. It stops rather than waits: a second run on a busy folder is a mistake (same folder, maybe
other settings), and a waiting process would only find a finished run or resume one it did not
start.

The lock is ``flock`` (through :mod:`filelock`): the kernel releases it when its process dies,
killed or not, so a stale lock never blocks. Who holds it is written beside it
(``.run.lock.holder``, JSON) because the lock file's own contents are not portable across
:mod:`filelock` versions; a holder file left by a killed process is simply overwritten by the next
one. Under ``torchrun`` only rank 0 writes, so only rank 0 takes the lock, and tells the other
processes when it is refused (:func:`job_folder_lock`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.common.errors import AvalancheClipError, writing
from avalanche_clip.training.distributed import from_main, is_main

LOCK_NAME = ".run.lock"
HOLDER_NAME = ".run.lock.holder"


class RunFolderBusyError(AvalancheClipError):
    """Another process holds the run folder (its pid and host are in the message)."""


def holder_description(folder: str | os.PathLike[str]) -> str:
    """Who holds ``folder``, from its holder file ("another process" when it cannot be read, e.g.
    in the instant between the holder's lock and its holder file)."""
    try:
        holder = json.loads((Path(folder) / HOLDER_NAME).read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
        return f"pid {int(holder['pid'])} on {holder['host']} (since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def run_folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for the block; :class:`RunFolderBusyError` at once when
    another process (or another holder in this one) has it. Yields the lock file's path."""
    folder = Path(folder)
    lock_path = folder / LOCK_NAME
    created = not folder.exists()
    with writing(folder, exact=True):  # a read-only or full place: one line naming the folder
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunFolderBusyError(
                f"{folder} is in use by {holder_description(folder)}, which holds {lock_path}; wait "
                "for that run to end (or stop it), or choose another --out"
            ) from None
    holder = folder / HOLDER_NAME
    try:
        # only informs a second process; a folder that cannot take it (a full disk) is reported by
        # the run's own writes, naming the folder
        with contextlib.suppress(OSError):
            atomic_write_text(holder, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                  "since": round(time.time(), 3)}))
        yield lock_path
    finally:
        with contextlib.suppress(OSError):
            holder.unlink()  # before the release: the next holder writes its own
        # a run refused before writing anything (no GPU, say) leaves no folder it created behind
        untouched = created and _holds_only_the_lock(folder)
        if untouched:
            lock_path.unlink(missing_ok=True)
        lock.release()
        if untouched:
            with contextlib.suppress(OSError):  # not empty: another process has just started in it
                folder.rmdir()


@contextlib.contextmanager
def job_folder_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """:func:`run_folder_lock` for a run of one or several processes (``torchrun``): rank 0, the
    one that writes, holds the folder, and when it is refused every process stops with its line
    (a collective: every process calls this), not only rank 0 while the others fail in a
    collective that rank 0 never joins."""
    with contextlib.ExitStack() as stack:
        refused = None
        if is_main():
            try:
                stack.enter_context(run_folder_lock(folder))
            except AvalancheClipError as err:
                refused = (isinstance(err, RunFolderBusyError), str(err))
        refused = from_main(refused)
        if refused is not None:
            busy, message = refused
            raise (RunFolderBusyError if busy else AvalancheClipError)(message)
        yield


def _holds_only_the_lock(folder: Path) -> bool:
    try:
        return {entry.name for entry in folder.iterdir()} <= {LOCK_NAME}
    except OSError:
        return False


__all__ = ["HOLDER_NAME", "LOCK_NAME", "RunFolderBusyError", "holder_description", "job_folder_lock",
           "run_folder_lock"]
