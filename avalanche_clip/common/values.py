"""Type tests of config and record values, written once for every layer.

YAML and JSON give ``True``/``False`` as ``bool``, a subclass of ``int`` in Python, so a bare
``isinstance(value, int)`` would take ``true`` for 1; these tests refuse booleans.
"""

from __future__ import annotations

import math
from typing import Any


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float that is not a boolean (inf and nan included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A number (:func:`is_number`) that is neither infinite nor nan."""
    return is_number(value) and math.isfinite(value)


__all__ = ["is_finite_number", "is_int", "is_number"]
