"""Checkpoint state of Avalanche's ``EvaluationPlugin``: its metrics' memory across experiences.

Metrics that span experiences remember earlier evaluations: forgetting keeps each experience's
first and latest accuracy, forward transfer the accuracy before training, and the evaluator the
history ``get_all_metrics()`` returns. Without that state a resumed run reports no forgetting
for the experiences trained before the interruption, and a stream forgetting of 0.

The state is taken generically, so any metric built from Avalanche's (or our) metric classes is
covered: every attribute of a metric that holds plain data (numbers, strings, tensors, and lists
or dicts of them) is saved, nested metric objects (``Mean``, ``Forgetting``, a ``defaultdict``
of per-task ``Accuracy`` ...) recursively; anything else (functions, loggers, figures) is
configuration or a picture and is left as the freshly built evaluator has it. Loading writes the
values back into the identically built evaluator's own objects, so metrics that share an object
keep sharing it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

_PLAIN = (int, float, bool, str, type(None))
_OBJECT = "__metric_state__"  # tags a nested metric object's attributes
_SKIP = object()  # not plain data: left as the evaluator is built
_MAX_DEPTH = 8


def _is_metric(value: Any) -> bool:
    """An object with Avalanche's metric interface (``result``, ``reset``)."""
    return callable(getattr(value, "result", None)) and callable(getattr(value, "reset", None))


def _encode(value: Any, depth: int = 0) -> Any:
    """``value`` as plain data (``_SKIP`` when it is not data)."""
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return value.detach().cpu().clone() if isinstance(value, torch.Tensor) else value
    if depth >= _MAX_DEPTH:
        return _SKIP
    if isinstance(value, (list, tuple)):
        items = [_encode(item, depth + 1) for item in value]
        return _SKIP if any(item is _SKIP for item in items) else items
    if isinstance(value, dict):
        if not all(type(key) in (int, str) for key in value):
            return _SKIP
        items = {key: _encode(item, depth + 1) for key, item in value.items()}
        return _SKIP if any(item is _SKIP for item in items.values()) else items
    if _is_metric(value):
        return {_OBJECT: _attributes(value, depth + 1)}
    return _SKIP


def _attributes(obj: Any, depth: int = 0) -> dict[str, Any]:
    encoded = ((name, _encode(value, depth)) for name, value in vars(obj).items())
    return {name: value for name, value in encoded if value is not _SKIP}


def _decode(saved: Any, current: Any) -> Any:
    """The value to set for ``saved``, written into ``current`` (the fresh evaluator's value)
    where that is a metric object or a container of them."""
    if isinstance(saved, dict) and set(saved) == {_OBJECT}:
        if current is None:
            raise ValueError("the checkpoint holds a metric this evaluator does not have")
        _restore_attributes(current, saved[_OBJECT])
        return current
    if isinstance(saved, dict):
        restored = defaultdict(current.default_factory) if isinstance(current, defaultdict) else {}
        for key, item in saved.items():
            if isinstance(item, dict) and set(item) == {_OBJECT} and isinstance(restored, defaultdict):
                _decode(item, restored[key])  # a new entry made by the dict's own factory
            else:
                restored[key] = _decode(item, current.get(key) if isinstance(current, dict) else None)
        return restored
    if isinstance(saved, list) and isinstance(current, tuple):
        return tuple(saved)
    return saved


def _restore_attributes(obj: Any, saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        setattr(obj, name, _decode(value, getattr(obj, name, None)))


def evaluator_state(evaluator: Any) -> dict[str, Any]:
    """The state of an ``EvaluationPlugin``: each metric's, and the results it collected."""
    results = getattr(evaluator, "all_metric_results", {})
    return {
        "metrics": [_attributes(metric) for metric in evaluator.metrics],
        # (steps, values) per metric name; pictures (confusion matrices) are not kept
        "all_metric_results": {name: list(pair) for name, pair in results.items()
                               if _encode(list(pair)) is not _SKIP},
        "last_metric_results": {name: value for name, value in evaluator.last_metric_results.items()
                                if _encode(value) is not _SKIP},
    }


def load_evaluator_state(evaluator: Any, state: dict[str, Any]) -> None:
    """Restore :func:`evaluator_state` into an identically built ``EvaluationPlugin``."""
    if len(state["metrics"]) != len(evaluator.metrics):
        raise ValueError(f"the checkpoint's evaluator has {len(state['metrics'])} metrics, this "
                         f"one {len(evaluator.metrics)}")
    for metric, saved in zip(evaluator.metrics, state["metrics"], strict=True):
        _restore_attributes(metric, saved)
    results = getattr(evaluator, "all_metric_results", None)
    if isinstance(results, dict):
        results.clear()
        for name, (steps, values) in state["all_metric_results"].items():
            results[name] = (list(steps), list(values))
    evaluator.last_metric_results = dict(state["last_metric_results"])


__all__ = ["evaluator_state", "load_evaluator_state"]
