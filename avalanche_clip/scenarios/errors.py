"""Errors raised when a data set is missing, laid out wrongly, or damaged.

Every error says what was expected and, where it applies, how to get the data; a loader never
returns a silently empty stream.
"""

from __future__ import annotations

from avalanche_clip.common.errors import AvalancheClipError


class DataLayoutError(AvalancheClipError, ValueError):
    """The data root exists but is not laid out as the scenario expects."""


class MissingDataError(AvalancheClipError, FileNotFoundError):
    """The data root, a split file, or an image named by a split file does not exist."""


class ImageReadError(AvalancheClipError, OSError):
    """An image file exists but cannot be decoded (truncated, corrupt, not an image)."""


def missing_root_message(what: str, root: object, layout: str, how_to_get: str) -> str:
    """The message for a missing data root: what, where, the expected layout, how to get it."""
    return (
        f"{what}: data root {str(root)!r} does not exist.\n"
        f"Expected layout:\n{layout}\n"
        f"How to get the data: {how_to_get}"
    )


class DataLayoutWarning(UserWarning):
    """Something in the data was skipped or changed on reading; the message says what and why."""
