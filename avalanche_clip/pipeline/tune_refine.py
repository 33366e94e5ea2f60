"""The learning-rate line search that ends every study of a tune.

A study's sampler (TPE over up to six parameters in a dozen trials) leaves its best learning
rate wherever its best trial happened to draw it, often on a slope: re-scored on validation, a
neighbouring rate ``lr / 3`` or ``lr · 3`` of the tuned values was better beyond one standard
error in 6 of the default's 41 studies. Every study therefore ends with the same deterministic
line search over the learning rate, the other tuned values fixed:

    p_0 = the sampler's best lr;  s(p) = validation score of p (what a trial scores)
    at p_t: score p_t / F and p_t · F (F = :data:`REFINE_FACTOR`, points outside the space skipped);
            if the better of them beats s(p_t), move there (p_{t+1}); else stop.

It stops when neither neighbour is better (``neighbours lower``), when the way on leaves the
search space (``space bound``) or after :data:`REFINE_MOVES` moves (``move limit``). The
neighbours are computed from the current point exactly as ``avalanche-clip check-optimum``
computes them from a tuned value (``p / F``, ``p · F``), so a study stopped by ``neighbours
lower`` passes that check by construction, its neighbours' scores being ones it has already
seen (unless the bound walk that follows, :mod:`avalanche_clip.pipeline.tune_walk`, moves another
value: then check-optimum scores them anew); scores are memoised by the exact float, so a point
is scored once.

Every study gets this same procedure (at least two more scored points, at most
``2 + 2 · REFINE_MOVES``), recorded in ``tuned.yaml`` beside the sampler's result
(:class:`Refinement`), so the tuning effort stays equal across methods and memory sizes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: one tune process per output folder
    fcntl = None  # type: ignore[assignment]

from avalanche_clip.strategies.spaces import in_space

#: Ratio between a learning rate and its neighbours (the same as check-optimum's default factor).
REFINE_FACTOR = 3.0
#: Most moves of the line search (each move a factor of 3: up to 81× from the sampler's best).
REFINE_MOVES = 4
NEIGHBOURS_LOWER, SPACE_BOUND, MOVE_LIMIT = "neighbours lower", "space bound", "move limit"


@dataclass
class Refinement:
    """A line search's outcome: the chosen ``lr`` and its ``value``, where it started (the
    sampler's best), every point scored (``[{lr, value}]`` in the order scored) and why it stopped."""

    lr: float
    value: float
    start_lr: float
    start_value: float
    scored: list[dict[str, float]] = field(default_factory=list)
    stopped: str = NEIGHBOURS_LOWER


def refine_lr(score: Callable[[float], float], lr: float, value: float, spec: Mapping[str, Any], *,
              factor: float = REFINE_FACTOR, moves: int = REFINE_MOVES) -> Refinement:
    """Line search from ``lr`` (scored ``value``) over the learning-rate ``spec`` (module docstring).

    ``score(rate)`` returns the validation score of ``rate`` (the other values fixed); it is
    called at most once per distinct float. Ties keep the current point (the sampler's choice
    stands unless validation prefers another)."""
    if factor <= 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    seen: dict[float, float] = {lr: value}
    order: list[dict[str, float]] = []

    def scored(rate: float) -> float:
        if rate not in seen:
            seen[rate] = float(score(rate))
            order.append({"lr": rate, "value": seen[rate]})
        return seen[rate]

    current, stopped = lr, MOVE_LIMIT
    for move in range(moves + 1):
        candidates = [rate for rate in (current / factor, current * factor) if in_space(rate, spec)]
        values = {rate: scored(rate) for rate in candidates}
        better = [rate for rate in candidates if values[rate] > seen[current]]
        if not better:
            stopped = SPACE_BOUND if len(candidates) < 2 else NEIGHBOURS_LOWER
            break
        if move == moves:  # a better neighbour is known but the moves are spent
            break
        current = max(better, key=lambda rate: values[rate])
    return Refinement(lr=current, value=seen[current], start_lr=lr, start_value=value, scored=order,
                      stopped=stopped)


@contextlib.contextmanager
def refine_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` (an exclusive ``flock``) for a study's line search: two tune processes
    that finish one study's trials together run its line search one after the other, the second
    reusing the first's finished runs instead of writing the same run folders at once."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["MOVE_LIMIT", "NEIGHBOURS_LOWER", "REFINE_FACTOR", "REFINE_MOVES", "SPACE_BOUND", "Refinement",
           "refine_lock", "refine_lr"]
