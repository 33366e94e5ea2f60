"""Caches that cannot be written: the work goes on without them, with one warning.

The feature cache and the decoded-image cache only save time: a run computes the same features
or pixels without them, and its records do not depend on them. So when a cache folder cannot be
written — read-only, full, or below a regular file (``AVALANCHE_CLIP_CACHE=/data/notes.txt/cache``)
— what was computed is used from memory instead of stopping the run, and a
:class:`CacheWriteWarning` says so. Its text names only the folder and the reason, so Python's
default warning filter shows it once per folder, however many runs of a sweep meet it.
"""

from __future__ import annotations

import os
import warnings


class CacheWriteWarning(UserWarning):
    """A cache folder could not be written; the run went on without keeping what it computed."""


def warn_cache_unwritable(what: str, folder: str | os.PathLike[str], err: OSError) -> None:
    """Warn that ``what`` (e.g. "feature cache") cannot be written in ``folder`` because of ``err``."""
    reason = os.strerror(err.errno) if err.errno else f"{type(err).__name__}: {err}"
    warnings.warn(
        f"cannot write the {what} in {os.fspath(folder)} ({reason}); going on without it: "
        "what it would keep is computed again by later runs (set cache_dir or "
        "$AVALANCHE_CLIP_CACHE to a writable folder to keep it)", CacheWriteWarning, stacklevel=3,
    )


__all__ = ["CacheWriteWarning", "warn_cache_unwritable"]
