"""The bound walk that ends every study of a tune, after its learning-rate line search.

A study's best value within 5 % of a bound of its search space
(:func:`~avalanche_clip.strategies.spaces.near_bound`) says the space may cut a better value off.
Widening the registered space by hand and re-tuning moves the hit elsewhere (with a dozen trials
over six parameters some parameter lands in the outer 5 % of its range by chance), so every
study instead ends with the same deterministic walk past each such bound, the other values fixed:

    x_0 = the best value (near bound b),  s(x) = its validation score (what a trial scores)
    step = STEP_FRACTION · w   (w = log(high / low) on a log space, high - low on a linear one)
    x_{t+1} = x_t moved by one step away from the space's inside (on a log space x_t · e^{±step});
              if the strategy refuses it (a value past the parameter's domain, e.g. a negative
              weight), SHORT_STEP of a step; if it refuses that too, stop: ``domain limit``
    score x_{t+1}; if it beats s(x_t), move there and go on; else stop: ``neighbour lower``.

It stops after :data:`WALK_MOVES` moves (``move limit``). The study's space for that parameter is
widened to every point the walk scored (``widened`` in ``tuned.yaml``, recorded beside the
registered space; a sweep checks the values against it), and a ``domain limit`` marks that bound
the parameter's own limit. When the walk stops on ``neighbour lower`` after moves of total length
``m`` (in units of the registered width), the value lies ``s`` inside the widened space (``s`` =
0.1, or 0.06 after a short step) and the widened width is at most ``1 + m + s``, so it sits
``s / (1 + m + s)`` of it from the new bound: more than 5 % with no move, after one, or after full
steps only (at most 0.1 / 1.4): no longer within 5 % of a bound, and measured so. After two or
more moves a short last step can leave it within 5 % (0.06 / 1.26), and where the walk stops at
its move limit the value is the last point scored: in both cases ``at_bound`` says so. A walk that
moved a value leaves the line search's neighbours ``lr / 3``, ``lr · 3`` unscored under the new
values; ``check-optimum`` scores them.

The walk visits the parameters in the space's order, each with the values the walks before it
chose, and every study gets it alike (none at a bound: nothing to score), so the tuning effort
stays the same procedure for every method and memory size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from avalanche_clip.strategies.spaces import near_bound

#: One step of the walk, as a fraction of the space's width (log width on a log space).
STEP_FRACTION = 0.1
#: The step tried where the strategy refuses a full one, as a fraction of it: 0.6 (0.06 of the
#: width) is about the least that leaves a value kept after it, with no move before, more than
#: 5 % of the widened width inside, s / (1 + s) > 0.05 needing s > 0.0526 (half a step: 4.8 %).
SHORT_STEP = 0.6
#: Most moves of one walk (each one step: up to 40 % of the registered width past the bound).
WALK_MOVES = 4
NEIGHBOUR_LOWER, DOMAIN_LIMIT, MOVE_LIMIT = "neighbour lower", "domain limit", "move limit"


class RefusedValue(ValueError):
    """The strategy refuses a value the walk would score (past the parameter's domain): raised by
    the walk's score function for that reason only, so that any other failure of a run (a bug, a
    run folder of other values) propagates instead of passing for the parameter's limit."""


@dataclass
class BoundWalk:
    """One walk past a bound: ``param`` from ``start_value`` (scored ``start_score``) to ``value``
    (``score``), every point tried (``[{value, score}]``, or ``{value, refused}`` where the strategy
    refused it), why it stopped, and the parameter's ``space`` widened to the points scored."""

    param: str
    bound: str
    start_value: float
    start_score: float
    value: float
    score: float
    space: dict[str, Any]
    scored: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = NEIGHBOUR_LOWER


def step_past(value: float, spec: Mapping[str, Any], bound: str, fraction: float) -> float:
    """``value`` moved ``fraction`` of the space's width past ``bound`` (module docstring)."""
    sign = -1.0 if bound == "low" else 1.0
    if spec.get("log"):
        point = value * math.exp(sign * fraction * math.log(spec["high"] / spec["low"]))
    else:
        point = value + sign * fraction * (spec["high"] - spec["low"])
    if spec["type"] == "int":  # at least one unit past, whatever the width
        point = float(math.floor(point) if sign < 0 else math.ceil(point))
        point = min(point, value - 1) if sign < 0 else max(point, value + 1)
        return int(point)
    return point


def walk_bound(score: Callable[[Any], float], param: str, value: Any, value_score: float,
               spec: Mapping[str, Any], bound: str, *, step_fraction: float = STEP_FRACTION,
               moves: int = WALK_MOVES) -> BoundWalk:
    """Walk ``param`` from ``value`` (scored ``value_score``) past ``bound`` of ``spec`` (module
    docstring). ``score(x)`` is the validation score of ``x`` (the other values fixed), raising
    :class:`RefusedValue` when the strategy refuses ``x``; it is called at most once per point."""
    if bound not in ("low", "high"):
        raise ValueError(f"bound must be 'low' or 'high', got {bound!r}")
    if not 0 < step_fraction <= 1:
        raise ValueError(f"step_fraction must lie in (0, 1], got {step_fraction!r}")
    current, current_score = value, value_score
    tried: list[dict[str, Any]] = []
    accepted = [value]
    stopped = MOVE_LIMIT
    for _ in range(moves):
        point = point_score = None
        for fraction in (step_fraction, step_fraction * SHORT_STEP):  # shorter where a full one is refused
            candidate = step_past(current, spec, bound, fraction)
            if tried and tried[-1]["value"] == candidate:  # an int space: the short step is the same one
                continue
            try:
                point_score = float(score(candidate))
            except RefusedValue as err:  # past the parameter's domain
                tried.append({"value": candidate, "refused": str(err).splitlines()[0]})
                continue
            point = candidate
            tried.append({"value": candidate, "score": point_score})
            accepted.append(candidate)
            break
        if point is None:
            stopped = DOMAIN_LIMIT
            break
        if not point_score > current_score:  # ties keep the tuned value
            stopped = NEIGHBOUR_LOWER
            break
        current, current_score = point, point_score
    widened = dict(spec)
    widened["low"] = min(spec["low"], *accepted)
    widened["high"] = max(spec["high"], *accepted)
    if stopped == DOMAIN_LIMIT:
        widened["limit"] = sorted({*spec.get("limit", ()), bound})
    return BoundWalk(param=param, bound=bound, start_value=value, start_score=value_score, value=current,
                     score=current_score, space=widened, scored=tried, stopped=stopped)


def walk_bounds(score: Callable[[dict[str, Any]], float], params: Mapping[str, Any], value: float,
                space: Mapping[str, Mapping[str, Any]], **options: Any
                ) -> tuple[dict[str, Any], float, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Walk every parameter of ``params`` that lies near a bound of ``space``, in the space's
    order (module docstring). ``score(params)`` scores a full parameter set; ``value`` is the
    score of ``params``. Returns the walked parameters and their score, the walks (as mappings,
    for ``tuned.yaml``) and the widened specs by parameter."""
    params = dict(params)
    walks: list[dict[str, Any]] = []
    widened: dict[str, dict[str, Any]] = {}
    for name, spec in space.items():
        if name not in params:
            continue
        bound = near_bound(params[name], spec)
        if bound is None:
            continue
        walk = walk_bound(lambda x, name=name: score({**params, name: x}), name, params[name], value, spec,
                          bound, **options)
        params[name], value = walk.value, walk.score
        walks.append(asdict(walk))
        widened[name] = walk.space
    return params, value, walks, widened


__all__ = ["DOMAIN_LIMIT", "MOVE_LIMIT", "NEIGHBOUR_LOWER", "SHORT_STEP", "STEP_FRACTION", "WALK_MOVES", "BoundWalk",
           "RefusedValue", "step_past",
           "walk_bound", "walk_bounds"]
