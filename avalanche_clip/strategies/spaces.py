"""Hyper-parameter search spaces: what ``avalanche-clip tune`` may choose for each strategy.

A space maps a hyper-parameter name to a spec (plain data, so it prints and serialises)::

    {"type": "float", "low": 1e-4, "high": 1.0, "log": True}
    {"type": "int", "low": 1, "high": 10}
    {"type": "categorical", "choices": ["instance", "class"]}
    {"type": "float", "low": 0.1, "high": 1.0, "limit": ["high"]}

``limit`` names the bounds that are the parameter's own limit rather than a choice of the space
(GCL's moving-average rate ``gamma`` is a weight in (0, 1], 1 being the plain mini-batch loss):
nothing lies beyond them, so a best value there is a finding, not a space cut short
(:func:`near_bound` does not report it).

Every trained strategy shares :data:`COMMON_SPACE` (learning rate and epochs, what the paper tunes
per method); a registration adds the method's own (``register_strategy(..., search_space=...)``).
The tuned values are checked against the space when read back, so a value no tune could have
chosen is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SPEC_TYPES = ("float", "int", "categorical")

#: Tuned for every trained strategy: the learning rate, and (only when a tune asks for it, as
#: it breaks the equal step budget) the epochs per experience. The learning rate spans 1e-7 to 1:
#: on the old [1e-5, 0.1], CE's best (1.2e-5) lay at the bottom and EWC's (0.063) near the top,
#: so their best may lie beyond (a best value near a bound is reported by :func:`near_bound`; a
#: learning rate that diverges ends its trial with the worst score).
COMMON_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "float", "low": 1e-7, "high": 1.0, "log": True},
    "train_epochs": {"type": "int", "low": 1, "high": 10},
}


def check_spec(name: str, spec: Mapping[str, Any]) -> None:
    """``ValueError`` naming a malformed spec."""
    kind = spec.get("type")
    if kind not in SPEC_TYPES:
        raise ValueError(f"search space of {name!r}: type={kind!r}; expected one of {SPEC_TYPES}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ValueError(f"search space of {name!r}: categorical needs a non-empty 'choices' list")
        return
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise ValueError(f"search space of {name!r}: needs numbers low < high, got {low!r}, {high!r}")
    if spec.get("log") and low <= 0:
        raise ValueError(f"search space of {name!r}: a log scale needs low > 0, got {low!r}")
    limit = spec.get("limit", [])
    if not isinstance(limit, (list, tuple)) or not set(limit) <= {"low", "high"}:
        raise ValueError(f"search space of {name!r}: limit must list 'low' and/or 'high', got {limit!r}")


def check_space(space: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A checked copy of ``space``."""
    for name, spec in space.items():
        check_spec(name, spec)
    return {name: dict(spec) for name, spec in space.items()}


def in_space(value: Any, spec: Mapping[str, Any]) -> bool:
    """Whether ``value`` is one the spec can produce."""
    kind = spec["type"]
    if kind == "categorical":
        return value in spec["choices"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if kind == "int" and int(value) != value:
        return False
    return spec["low"] <= value <= spec["high"]


def describe(spec: Mapping[str, Any]) -> str:
    """``"float in [1e-05, 0.1], log"`` and the like, for ``avalanche-clip list --spaces``."""
    if spec["type"] == "categorical":
        return f"one of {list(spec['choices'])}"
    scale = ", log" if spec.get("log") else ""
    limits = [f"{spec[side]:g} its limit" for side in ("low", "high") if side in spec.get("limit", ())]
    return f"{spec['type']} in [{spec['low']:g}, {spec['high']:g}]{scale}" + "".join(f", {x}" for x in limits)


#: How close to a bound (as a fraction of the space's width) a best value counts as at it.
BOUND_MARGIN = 0.05


def near_bound(value: Any, spec: Mapping[str, Any], margin: float = BOUND_MARGIN) -> str | None:
    """``"low"`` or ``"high"`` when ``value`` lies within ``margin`` of that bound of ``spec``, else None.

    The position of ``v`` in ``[low, high]`` is ``u = (v - low) / (high - low)``, or on a log space
    ``u = (log v - log low) / (log high - log low)``; it is at the low bound when ``u < margin`` and
    at the high bound when ``u > 1 - margin``. An int space is measured the same way (so its end
    values always count). A bound the spec names under ``limit`` (the parameter's own limit) is
    never reported. A categorical space has no order, hence no bound: None.
    """
    if spec["type"] == "categorical":
        return None
    low, high = float(spec["low"]), float(spec["high"])
    if spec.get("log"):
        if value <= 0:
            raise ValueError(f"value {value!r} is not on the log space [{low:g}, {high:g}]")
        position = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    else:
        position = (value - low) / (high - low)
    limit = spec.get("limit", ())
    if position < margin and "low" not in limit:
        return "low"
    if position > 1 - margin and "high" not in limit:
        return "high"
    return None


def widen(space: Mapping[str, Mapping[str, Any]], widened: Mapping[str, Mapping[str, Any]] | None
          ) -> dict[str, dict[str, Any]]:
    """``space`` with the specs of ``widened`` in place of its own: the space of one study whose
    bound walk (``avalanche_clip.pipeline.tune_walk``) went past a bound. Only a widening is
    accepted: the same type and scale, ``low`` no higher and ``high`` no lower, every ``limit`` kept;
    anything else is a ``ValueError`` naming the parameter (a file that narrows or moves a space
    would let a value no tune chose through)."""
    result = {name: dict(spec) for name, spec in space.items()}
    for name, wider in (widened or {}).items():
        if name not in space:
            raise ValueError(f"widened space of {name!r}: not a parameter of the space ({', '.join(space) or 'empty'})")
        if not isinstance(wider, Mapping):
            raise ValueError(f"widened space of {name!r}: expected a spec mapping, got {wider!r}")
        check_spec(name, wider)
        spec = space[name]
        same = wider["type"] == spec["type"] and bool(wider.get("log")) == bool(spec.get("log"))
        if spec["type"] == "categorical" or not same or wider["low"] > spec["low"] or wider["high"] < spec["high"] \
                or not set(spec.get("limit", ())) <= set(wider.get("limit", ())):
            raise ValueError(f"widened space of {name!r}: {describe(wider)} does not contain its registered "
                             f"space {describe(spec)}; expected a widening of it")
        result[name] = dict(wider)
    return result


def suggest(trial: Any, name: str, spec: Mapping[str, Any]) -> Any:
    """Draw ``name`` from an Optuna ``trial`` according to ``spec``."""
    if spec["type"] == "float":
        return trial.suggest_float(name, spec["low"], spec["high"], log=bool(spec.get("log")))
    if spec["type"] == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
    return trial.suggest_categorical(name, list(spec["choices"]))
