"""The line search that ends every study: on scores whose optimum is known, it lands on the grid
point nearest it, scores each point once, and stops for the reasons it records."""

from __future__ import annotations

import math

import pytest

from avalanche_clip.pipeline.tune_refine import MOVE_LIMIT, NEIGHBOURS_LOWER, SPACE_BOUND, refine_lr

SPACE = {"type": "float", "low": 1e-7, "high": 1.0, "log": True}


def peaked(at: float):
    """A score with one maximum at ``at`` on the log-lr axis, and the rates it was asked for."""
    asked: list[float] = []

    def score(rate: float) -> float:
        asked.append(rate)
        return -abs(math.log(rate) - math.log(at))

    return score, asked


@pytest.mark.parametrize("start", [1e-5, 3e-3, 1e-4])
def test_it_climbs_to_the_grid_point_nearest_the_optimum_and_its_neighbours_are_lower(start):
    score, asked = peaked(1e-4)
    result = refine_lr(score, start, score(start), SPACE)
    asked = asked[1:]  # without the starting score, the sampler's
    grid = [start * 3.0 ** k for k in range(-6, 7)]
    nearest = min(grid, key=lambda rate: abs(math.log(rate) - math.log(1e-4)))
    assert result.lr == pytest.approx(nearest, rel=1e-12) and result.stopped == NEIGHBOURS_LOWER
    assert result.value == score(result.lr)
    # what check-optimum scores: the final rate's neighbours, computed from it, are no better
    assert max(score(result.lr / 3), score(result.lr * 3)) <= result.value
    assert len(asked) == len(set(asked)) == len(result.scored)  # each point scored once
    assert [point["lr"] for point in result.scored] == asked
    assert result.start_lr == start


def test_ties_keep_the_samplers_choice():
    result = refine_lr(lambda rate: 0.5, 1e-3, 0.5, SPACE)
    assert result.lr == 1e-3 and result.stopped == NEIGHBOURS_LOWER and len(result.scored) == 2


def test_it_stops_at_the_space_bound_and_after_its_moves():
    score, _ = peaked(10.0)  # beyond the space's top
    at_top = refine_lr(score, 0.5, score(0.5), SPACE)
    assert at_top.lr == 0.5 and at_top.stopped == SPACE_BOUND  # 1.5 lies outside [1e-7, 1]
    far = refine_lr(score, 1e-6, score(1e-6), SPACE, moves=2)
    assert far.lr == pytest.approx(9e-6) and far.stopped == MOVE_LIMIT


def test_a_diverged_neighbour_scores_zero_and_is_not_chosen():
    result = refine_lr(lambda rate: 0.0 if rate > 1e-3 else 0.4, 1e-3, 0.4, SPACE)
    assert result.lr == 1e-3 and result.value == 0.4


def test_a_factor_of_one_or_less_is_refused():
    with pytest.raises(ValueError, match="factor must be > 1, got 1"):
        refine_lr(lambda rate: 0.0, 1e-3, 0.0, SPACE, factor=1)
