"""Forgetting and backward transfer measured against the untrained model (the zero-shot floor).

For one run over experiences ``0..T-1``, ``a_{t,j}`` is its accuracy on test experience ``j``
after training experience ``t`` (``j <= t``; the record of experience ``t`` holds
``accuracy_per_experience = [a_{t,0}, ..., a_{t,t}]``). In a class-incremental stream the model
predicts among the classes seen so far, so ``a_{t,j}`` falls as ``t`` grows even for a model that
never trains: more classes compete for the same images. Avalanche's forgetting (the one each
run records)

    F^{av}   = (1/(T-1)) * sum_{j<T-1} ( max_{j<=t<T-1} a_{t,j} - a_{T-1,j} )
    BWT^{av} = (1/(T-1)) * sum_{j<T-1} ( a_{T-1,j} - a_{j,j} )

therefore measures the growing class set as well as forgetting: the untrained model of the
CIFAR-10 proxy "forgets" 13 %.

Here every accuracy is taken relative to the untrained model's on the same test data, over the
same seen classes: with ``z_{t,j}`` the zero-shot run's ``a_{t,j}`` (same scenario, seed, data,
model and class order), the gain ``g_{t,j} = a_{t,j} - z_{t,j}`` enters Avalanche's formulas:

    F   = (1/(T-1)) * sum_{j<T-1} ( max_{j<=t<T-1} g_{t,j} - g_{T-1,j} )
    BWT = (1/(T-1)) * sum_{j<T-1} ( g_{T-1,j} - g_{j,j} )

A model that never trains has ``g = 0`` everywhere, so ``F = BWT = 0`` exactly. Where the class set
does not grow (domain-incremental: ``z_{t,j} = z_j`` for every ``t``), ``F`` and ``BWT`` equal
Avalanche's. Neither is clipped at 0: a negative ``F`` means the run kept more of its gain over
the floor than its best earlier gain (it improved on old experiences).

A run without a matching zero-shot run in the same records (or without a whole per-experience
history, e.g. a joint run's single record) has NaN for both.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import pandas as pd

from avalanche_clip.reporting.records import RecordWarning

#: The registered strategy whose runs are the floor: the pretrained model, never trained.
FLOOR_METHOD = "zero-shot"
#: Record keys on which a run and its floor must agree (those absent from the records are skipped):
#: the same test data, class order (seed), model and stream.
MATCH_KEYS: tuple[str, ...] = (
    "scenario",
    "scenario_name",
    "seed",
    "n_experiences",
    "model",
    "pretrained",
    "data_fingerprint",
)

History = list[list[float]]


def forgetting(history: Sequence[Sequence[float]]) -> float:
    """``F^{av}`` of the module docstring over ``history[t][j]`` (``t = 0..T-1``, ``j <= t``);
    NaN for ``T < 2``."""
    last = len(history) - 1
    if last < 1:
        return math.nan
    drops = [max(history[t][j] for t in range(j, last)) - history[last][j] for j in range(last)]
    return sum(drops) / last


def backward_transfer(history: Sequence[Sequence[float]]) -> float:
    """``BWT^{av}`` of the module docstring over ``history``; NaN for ``T < 2``."""
    last = len(history) - 1
    if last < 1:
        return math.nan
    return sum(history[last][j] - history[j][j] for j in range(last)) / last


def gains(history: Sequence[Sequence[float]], floor: Sequence[Sequence[float]]) -> History:
    """``g_{t,j} = history[t][j] - floor[t][j]``; both must have the same triangular shape."""
    shape = [len(row) for row in history]
    if shape != [len(row) for row in floor]:
        raise ValueError(
            f"a run's accuracies per experience have shape {shape} but its floor's have "
            f"{[len(row) for row in floor]} (expected the same experiences)"
        )
    return [
        [a - z for a, z in zip(row, base, strict=True)]
        for row, base in zip(history, floor, strict=True)
    ]


def floor_forgetting(history: Sequence[Sequence[float]], floor: Sequence[Sequence[float]]) -> float:
    """``F`` of the module docstring: Avalanche's forgetting of the gains over ``floor``."""
    return forgetting(gains(history, floor))


def floor_backward_transfer(
    history: Sequence[Sequence[float]], floor: Sequence[Sequence[float]]
) -> float:
    """``BWT`` of the module docstring: backward transfer of the gains over ``floor``."""
    return backward_transfer(gains(history, floor))


def accuracy_history(run: pd.DataFrame) -> History | None:
    """``[[a_{0,0}], [a_{1,0}, a_{1,1}], ...]`` from one run's records, or None when the run has
    not recorded every experience ``0..T-1`` with its per-experience accuracies (a joint run)."""
    rows = run.sort_values("experience", kind="stable")
    n = int(rows["n_experiences"].iloc[0])
    if list(rows["experience"]) != list(range(n)):
        return None
    history = []
    for t, accuracies in enumerate(rows["accuracy_per_experience"]):
        if not isinstance(accuracies, list) or len(accuracies) != t + 1:
            return None
        history.append([float(a) for a in accuracies])
    return history


def _methods(records: pd.DataFrame) -> pd.Series:
    """The registered strategy of each record (``method``; the label for older records)."""
    if "method" in records:
        return records["method"].fillna(records["strategy"])
    return records["strategy"]


def _match_key(run: pd.DataFrame) -> tuple[str, ...]:
    first = run.iloc[0]
    return tuple(str(first[key]) for key in MATCH_KEYS if key in run)


def floor_metrics(records: pd.DataFrame) -> pd.DataFrame:
    """Per run: ``forgetting`` and ``backward_transfer`` against its floor (module docstring).

    Index ``run_id``, one row per run in ``records``; NaN where the run has no whole history or no
    zero-shot run in ``records`` matches it on :data:`MATCH_KEYS`. Several matching zero-shot runs
    with different accuracies (they should be identical: the floor never trains) are a
    :class:`RecordWarning`, and the first by ``run_id`` is used.
    """
    runs = {run_id: run for run_id, run in records.groupby("run_id", sort=True)}
    floors: dict[tuple[str, ...], History] = {}
    is_floor = _methods(records) == FLOOR_METHOD
    for run_id in sorted(set(records.loc[is_floor, "run_id"])):
        history = accuracy_history(runs[run_id])
        if history is None:
            continue
        key = _match_key(runs[run_id])
        if key in floors and floors[key] != history:
            warnings.warn(
                f"zero-shot run {run_id!r} has other accuracies than an earlier zero-shot run of "
                f"the same {', '.join(k for k in MATCH_KEYS if k in records)}; the earlier is the floor",
                RecordWarning,
                stacklevel=2,
            )
            continue
        floors.setdefault(key, history)
    rows = []
    for run_id, run in runs.items():
        history = accuracy_history(run)
        floor = floors.get(_match_key(run))
        if history is None or floor is None or len(floor) != len(history):
            rows.append((run_id, math.nan, math.nan))
            continue
        rows.append(
            (run_id, floor_forgetting(history, floor), floor_backward_transfer(history, floor))
        )
    frame = pd.DataFrame(rows, columns=["run_id", "forgetting", "backward_transfer"])
    return frame.set_index("run_id")
