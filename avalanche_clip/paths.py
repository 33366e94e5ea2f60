"""Names that become parts of file paths (scenario labels, strategy names, run ids).

A run folder is ``<out>/runs/<run_id>`` with ``run_id = <label>__<strategy>__m<mem>__s<seed>``;
a label such as ``../../elsewhere`` would put it outside ``<out>``. Every such name is checked
upfront with :func:`check_safe_name`: one path component, nothing that a file system or a
terminal reads specially.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from avalanche_clip.config import ConfigError

_SEPARATORS = {"/", "\\"} | {s for s in (os.sep, os.altsep) if s}


def check_safe_name(value: Any, what: str) -> str:
    """``value`` if it is a safe single path component; ``ConfigError`` naming ``what`` otherwise.

    Refused: non-strings, the empty string, path separators (``/``, ``\\``), ``..`` anywhere
    (``.`` and ``..`` are the current and parent folder), a leading ``.`` (a hidden file) and
    control characters (newlines, NUL, escapes).
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {value!r}")
    problem = None
    if not value:
        problem = "it is empty"
    elif any(sep in value for sep in _SEPARATORS):
        problem = "it contains a path separator"
    elif ".." in value:
        problem = "it contains '..'"
    elif value.startswith("."):
        problem = "it starts with '.'"
    elif any(unicodedata.category(ch).startswith("C") for ch in value):
        problem = "it contains a control character"
    if problem:
        raise ConfigError(
            f"{what}={value!r} is used in file names and {problem}; use letters, digits, '-', "
            "'_' and '.' (not first)"
        )
    return value


__all__ = ["check_safe_name"]
