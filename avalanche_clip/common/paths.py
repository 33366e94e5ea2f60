"""Names that become parts of file paths (scenario labels, strategy names, run ids).

A run folder is ``<out>/runs/<run_id>`` with ``run_id = <label>__<strategy>__m<mem>__s<seed>``;
a label such as ``../../elsewhere`` would put it outside ``<out>``. Every such name is checked
upfront with :func:`check_safe_name`: one path component, nothing that a file system or a
terminal reads specially, at most :data:`MAX_NAME_BYTES` long (labels also go into every record).
A name built from several of them (a run id) is checked with :func:`check_file_name` against the
file systems' limit on one path component, :data:`NAME_MAX` bytes, which would otherwise stop the
run with ``OSError: [Errno 36] File name too long`` once its folder is made.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from avalanche_clip.common.errors import ConfigError

_SEPARATORS = {"/", "\\"} | {s for s in (os.sep, os.altsep) if s}
#: The longest label or name, in bytes of UTF-8 (128 ASCII characters): short enough that the
#: run id joining two of them with the memory size and seed stays a valid file name.
MAX_NAME_BYTES = 128
#: The longest path component of ext4, XFS, btrfs, tmpfs and NFS (Linux's NAME_MAX), in bytes.
NAME_MAX = 255


def _name_bytes(name: str) -> int:
    """Bytes of ``name`` in UTF-8 (a lone surrogate counts 3: this never raises; such a name is
    refused as a control character)."""
    return len(name.encode("utf-8", "surrogatepass"))


def check_safe_name(value: Any, what: str) -> str:
    """``value`` if it is a safe single path component; ``ConfigError`` naming ``what`` otherwise.

    Refused: non-strings, the empty string, path separators (``/``, ``\\``), ``..`` anywhere
    (``.`` and ``..`` are the current and parent folder), a leading ``.`` (a hidden file),
    control characters (newlines, NUL, escapes) and more than :data:`MAX_NAME_BYTES` bytes.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {value!r}")
    problem, advice = None, "use letters, digits, '-', '_' and '.' (not first)"
    if not value:
        problem = "it is empty"
    elif _name_bytes(value) > MAX_NAME_BYTES:  # first: the scans below are slow on megabytes
        problem = f"it is {_name_bytes(value)} bytes long in UTF-8"
        advice = f"use at most {MAX_NAME_BYTES} bytes ({MAX_NAME_BYTES} letters or digits)"
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
            f"{what}={value!r} is used in file names and {problem}; {advice}")
    return value


def check_file_name(name: str, what: str) -> str:
    """``name`` (built from checked names, e.g. a run id) if it fits in one path component of
    :data:`NAME_MAX` bytes; ``ConfigError`` naming ``what`` and the value otherwise."""
    if _name_bytes(name) > NAME_MAX:
        raise ConfigError(
            f"{what} {name!r} would be {_name_bytes(name)} bytes long in UTF-8, beyond the file "
            f"systems' limit of {NAME_MAX} for a file name; use shorter labels")
    return name


__all__ = ["MAX_NAME_BYTES", "NAME_MAX", "check_file_name", "check_safe_name"]
