"""Checkpoint files written on a background thread while the next experience trains.

A checkpoint after experience ``t`` takes a snapshot of the training state, serialises it and
fsyncs it (~6 MB for effnet-lite0-clip's trained projections, BatchNorm statistics and AdamW
moments: ~40–90 ms a checkpoint on one CPU thread, most of it ``torch.save`` and the fsync).
Only the snapshot has to happen between experiences: the next experience modifies the
parameters, the optimizer's moments and the loss state in place. So :func:`snapshot` copies
every tensor of the state first (on the caller's thread), and :class:`BackgroundWriter` writes
the copies while training goes on.

Ordering and errors:

- one write in flight at a time: :meth:`BackgroundWriter.submit` first waits for the previous
  one, so checkpoints reach the disk in experience order (each atomically, as before);
- :meth:`BackgroundWriter.wait` re-raises a failed write's exception on the caller's thread; the
  run loop waits before committing the next experience's record, so a record after ``t`` is
  never written while the checkpoint of ``t − 1`` has failed (as with a synchronous write);
- :meth:`BackgroundWriter.close` waits for the last write: a run returns only once its last
  checkpoint is on disk (or its failure raised).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import torch


def snapshot(state: Any) -> Any:
    """A copy of ``state`` (nested dicts, lists and tuples of tensors, numbers, strings) that
    shares no tensor or container with it: tensors are cloned to CPU (detached), containers
    rebuilt with the same types and keys; anything else (numbers, strings, None, dtypes) is
    immutable and kept."""
    if isinstance(state, torch.Tensor):
        tensor = state.detach()
        return tensor.clone() if tensor.device.type == "cpu" else tensor.to("cpu", copy=True)
    if isinstance(state, dict):
        copied = type(state)()
        for key, value in state.items():
            copied[key] = snapshot(value)
        if getattr(state, "__dict__", None):  # a state_dict's ``_metadata`` (module versions)
            copied.__dict__.update(copy.deepcopy(vars(state)))
        return copied
    if isinstance(state, list):
        return [snapshot(value) for value in state]
    if isinstance(state, tuple):
        return tuple(snapshot(value) for value in state)
    return state


class BackgroundWriter:
    """Runs one write at a time on a daemon thread; see the module docstring."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, write: Callable[[], object]) -> None:
        """Wait for the previous write (raising its error), then start ``write()``."""
        self.wait()

        def run() -> None:
            try:
                write()
            except BaseException as err:  # handed to the caller's thread by wait()
                self._error = err

        self._thread = threading.Thread(target=run, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Block until the write in flight (if any) is done; re-raise its exception."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self, *, raise_error: bool = True) -> None:
        """:meth:`wait`; with ``raise_error=False`` (another exception is already on its way)
        a failed write is dropped instead of hiding that exception."""
        try:
            self.wait()
        except BaseException:
            if raise_error:
                raise
