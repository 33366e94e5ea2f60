"""Class names that line up with a benchmark's labels, and errors where they cannot.

A CLIP classifier predicts class ``k`` from the prompt of ``class_names[k]``, so the names must be
indexed by the labels the benchmark yields. Avalanche's ``nc_benchmark(...,
class_ids_from_zero_from_first_exp=True)`` relabels classes in order of appearance
(``benchmark.class_mapping[original] = new``): names listed by the data set's own labels then
describe the wrong classes, silently. :func:`names_for_benchmark` reorders them, and
:func:`check_label_alignment` refuses what can be detected:

- a label outside ``[0, K)`` for a classifier with ``K`` names;
- a benchmark whose ``class_mapping`` is not the identity, unless the classifier declares that
  its names follow that mapping (``classifier.class_mapping``, set by
  ``CLIPClassifier.for_benchmark``);
- labels restarted from zero in each experience (``class_ids_from_zero_in_each_exp``) for a
  classifier without task heads: one global class space cannot name them, only (task, label)
  can (``CLIPClassifier.for_benchmark`` maps them, :mod:`avalanche_clip.models.task_heads`).

:func:`attach_task_heads` gives a classifier without heads those of a task-incremental benchmark
with global class ids that its experiences link to (``nc_benchmark``), so such a benchmark is
classified task-aware with any classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from avalanche_clip.models.task_heads import benchmark_task_heads


def _benchmark_of(source: Any) -> Any:
    """The benchmark object of an experience (old and new Avalanche APIs) or the source itself."""
    for get in (lambda s: s.benchmark, lambda s: s.origin_stream.benchmark):
        try:
            found = get(source)
        except AttributeError:
            continue
        if found is not None:
            return found
    return source


def benchmark_class_mapping(source: Any) -> list[int] | None:
    """``class_mapping[original label] = benchmark label`` of a benchmark (or of an experience's
    benchmark) when it relabels classes into one class space; None when it keeps the data set's
    labels, or restarts them in each experience (then (task, label) names a class: task heads)."""
    benchmark = _benchmark_of(source)
    if _restarts_labels(benchmark):
        return None
    mapping = getattr(benchmark, "class_mapping", None)
    if mapping is None:
        return None
    mapping = [int(m) for m in mapping]
    return None if mapping == list(range(len(mapping))) else mapping


def _restarts_labels(benchmark: Any) -> bool:
    return bool(getattr(benchmark, "class_ids_from_zero_in_each_exp", False))


def attach_task_heads(model: Any, source: Any) -> None:
    """Give ``model`` (a classifier with ``task_heads``, still None) the heads of ``source``'s
    benchmark when it has several task labels and global class ids; nothing otherwise (labels
    restarting in each experience need the names' mapping: ``CLIPClassifier.for_benchmark``)."""
    if getattr(model, "task_heads", False) is not None:
        return  # heads already, or a classifier without task heads (linear head)
    benchmark = _benchmark_of(source)
    if not _restarts_labels(benchmark):
        model.task_heads = benchmark_task_heads(benchmark)


def names_for_benchmark(class_names: Sequence[str], benchmark: Any) -> list[str]:
    """``class_names`` (indexed by the data set's original labels) reindexed by the benchmark's
    labels."""
    names = list(class_names)
    mapping = benchmark_class_mapping(benchmark)
    if mapping is None:
        return names
    if len(mapping) != len(names):
        raise ValueError(
            f"the benchmark maps {len(mapping)} original labels but {len(names)} class names "
            "were given (one per original label expected)"
        )
    ordered: list[str | None] = [None] * len(names)
    for original, new in enumerate(mapping):
        if new >= 0:
            ordered[new] = names[original]
    missing = [k for k, name in enumerate(ordered) if name is None]
    if missing:
        raise ValueError(f"benchmark labels {missing} have no original class in class_mapping")
    return [str(name) for name in ordered]


def check_label_alignment(model: Any, source: Any, labels: Sequence[int] = ()) -> None:
    """Raise ``ValueError`` on a detectable mismatch between ``model``'s class names and the
    labels of ``source`` (a benchmark or an experience; ``labels``: labels about to be used)."""
    names = list(getattr(model, "class_names", []))
    k = getattr(model, "num_classes", len(names))
    bad = sorted({int(y) for y in labels if not 0 <= int(y) < k})
    if bad:
        raise ValueError(
            f"labels {bad[:10]} are outside the classifier's {k} classes "
            f"({', '.join(map(repr, names[:5]))}{', ...' if len(names) > 5 else ''}): give the "
            "classifier one class name per label of the benchmark"
        )
    if _restarts_labels(_benchmark_of(source)) and getattr(model, "task_heads", None) is None:
        raise ValueError(
            "this benchmark restarts class ids from zero in each experience "
            "(class_ids_from_zero_in_each_exp=True), so a label names a class only within its "
            "task; build the classifier with CLIPClassifier.for_benchmark(clip, tokenizer, "
            "class_names, benchmark) (names indexed by the data set's labels): one head per task"
        )
    mapping = benchmark_class_mapping(source)
    if mapping is not None and getattr(model, "class_mapping", None) != mapping:
        raise ValueError(
            "this benchmark relabels classes (class_mapping "
            f"{mapping[:10]}{' ...' if len(mapping) > 10 else ''}, e.g. "
            "class_ids_from_zero_from_first_exp=True), so class names listed by the data set's "
            "labels would name the wrong classes; build the classifier with "
            "CLIPClassifier.for_benchmark(clip, tokenizer, class_names, benchmark)"
        )


__all__ = ["attach_task_heads", "benchmark_class_mapping", "check_label_alignment", "names_for_benchmark"]
