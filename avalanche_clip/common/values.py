"""Type tests and range rules of config and record values, written once for every layer.

YAML and JSON give ``True``/``False`` as ``bool``, a subclass of ``int`` in Python, so a bare
``isinstance(value, int)`` would take ``true`` for 1; these tests refuse booleans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

#: A range rule of a named value: ``rule(name, value)`` gives the value back (a float for the
#: number rules) or raises ``ValueError`` naming ``name``, the value and what is expected.
Rule = Callable[[str, Any], Any]


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float that is not a boolean (inf and nan included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A number (:func:`is_number`) that is neither infinite nor nan."""
    return is_number(value) and math.isfinite(value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """``value`` if it is one of ``choices`` by value *and* type (``0 == False`` and ``1 == True``
    in Python, but ``feature_cache=0`` is not the choice ``False``); ``ValueError`` naming
    ``name``, the value and the choices otherwise."""
    if not any(value == choice and type(value) is type(choice) for choice in choices):
        raise ValueError(f"{name}={value!r}; expected one of {choices}")
    return value


# -- range rules of named values: one per kind of key, shared by the run config and the
# library's constructors (StrategySetup, the strategies), so their messages cannot disagree ------
def check_int(name: str, value: Any, minimum: int, *, nullable: bool = False) -> int | None:
    """``value`` if it is an integer (not a boolean) ``>= minimum``, or None when ``nullable``;
    ``ValueError`` naming ``name``, the value and the bound otherwise."""
    if value is None and nullable:
        return None
    if not is_int(value) or value < minimum:
        null = " or null" if nullable else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{null}, got {value!r}")
    return value


def check_finite_positive(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is a finite number > 0
    (a learning rate: inf or nan would train on nan)."""
    if not is_finite_number(value) or not value > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_finite_non_negative(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is a finite number >= 0."""
    if not is_finite_number(value) or not value >= 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


# -- range rules of hyper-parameters: each returns the value as a float -------------------------
def check_positive(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is a number > 0."""
    if not is_number(value) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is a number >= 0."""
    if not is_number(value) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_open_fraction(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless ``0 < value < 1``."""
    if not is_number(value) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    return float(value)


def check_unit_interval(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless ``0 <= value < 1``."""
    if not is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


def check_options(rules: Mapping[str, Rule], **values: Any) -> list[Any]:
    """Each of ``values`` checked by its rule in ``rules`` (a strategy's declared rules, which the
    pipeline reads too), in the order given: ``a, b = check_options(RULES, a=a, b=b)``."""
    return [rules[name](name, value) for name, value in values.items()]


__all__ = ["Rule", "check_choice", "check_options", "check_finite_non_negative", "check_finite_positive", "check_int",
           "check_non_negative", "check_open_fraction", "check_positive", "check_unit_interval",
           "is_finite_number", "is_int", "is_number"]
