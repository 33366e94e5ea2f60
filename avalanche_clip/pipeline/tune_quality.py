"""How far a study's best values can be trusted: values at a bound of their space, the size of
the validation split behind the score and the score's standard error.

A best value within 5 % of a bound of its space (:func:`~avalanche_clip.strategies.spaces.near_bound`,
on a log scale for log spaces) says the space may cut off a better value: ``tune`` warns
(:class:`TunedAtBoundWarning`, one line naming the study, the parameter, the value and the bound)
and ``tuned.yaml`` lists it under ``at_bound``, so the space is widened or the bound justified.

The study's score is the final accuracy on the validation data of all seen classes, averaged
over its ``k`` runs (scenarios × tune seeds), run ``i`` evaluating ``n_i`` validation samples. For
an accuracy ``p`` near the best score, each run's accuracy has the binomial standard error
``sqrt(p (1 - p) / n_i)``, and their mean

    SE = sqrt(sum_i p (1 - p) / n_i) / k

(:func:`standard_error`). Two studies whose scores differ by less than about ``2 SE`` are not told
apart by this validation split.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.scenarios import build_scenario
from avalanche_clip.strategies.spaces import describe, near_bound


class TunedAtBoundWarning(UserWarning):
    """A study's best value lies within 5 % of a bound of its search space."""


def values_at_bound(params: Mapping[str, Any], space: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{param, value, bound, space}]`` for each of ``params`` near a bound of ``space`` (``bound``:
    ``low`` or ``high``; ``space``: the spec in words), in the order of ``params``."""
    found = []
    for name, value in params.items():
        side = near_bound(value, space[name]) if name in space else None
        if side is not None:
            found.append({"param": name, "value": value, "bound": side, "space": describe(space[name])})
    return found


def warn_at_bound(study: str, found: Sequence[Mapping[str, Any]]) -> None:
    """One :class:`TunedAtBoundWarning` line per value of ``found`` (:func:`values_at_bound`)."""
    for item in found:
        warnings.warn(f"study {study}: best {item['param']}={item['value']:.4g} lies at the {item['bound']} "
                      f"bound of its space ({item['space']}): widen the space or justify the bound",
                      TunedAtBoundWarning, stacklevel=2)


def validation_size(run: RunConfig) -> int:
    """How many validation samples the final evaluation of ``run`` (a trial run, its test split the
    validation split) reads: every sample of its test stream. Built without transforms or model,
    so only the file lists are read."""
    benchmark = build_scenario(run.scenario, root=run.data_root, n_experiences=run.n_experiences,
                               seed=run.seed, domains=run.domains, **run.scenario_options)
    return sum(len(experience.dataset) for experience in benchmark.test_stream)


def standard_error(accuracy: float, sizes: Sequence[int]) -> float:
    """Standard error of the mean of ``len(sizes)`` accuracies near ``accuracy``, run ``i`` on
    ``sizes[i]`` samples: ``sqrt(sum_i p (1 - p) / n_i) / k`` (module docstring)."""
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must be a non-empty list of sample counts >= 1, got {list(sizes)!r}")
    if not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy must lie in [0, 1], got {accuracy!r}")
    variance = sum(accuracy * (1 - accuracy) / n for n in sizes)
    return math.sqrt(variance) / len(sizes)


__all__ = ["TunedAtBoundWarning", "standard_error", "validation_size", "values_at_bound", "warn_at_bound"]
