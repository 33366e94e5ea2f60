"""Forgetting and backward transfer against the zero-shot floor: hand-computed examples, the
committed records (the zero-shot row forgets nothing), and the runs that have no floor."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from avalanche_clip.reporting import load_records, summary_table
from avalanche_clip.reporting.floor import (
    backward_transfer,
    floor_backward_transfer,
    floor_forgetting,
    floor_metrics,
    forgetting,
)

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"


def test_two_experiences_by_hand():
    run = [[0.9], [0.5, 0.8]]
    zero_shot = [[0.6], [0.4, 0.3]]  # the untrained model loses 0.2 on experience 0 as classes grow
    # gains: g00 = 0.3, g10 = 0.1 -> forgetting 0.2, BWT -0.2 (Avalanche's: 0.4 and -0.4)
    assert floor_forgetting(run, zero_shot) == pytest.approx(0.2)
    assert floor_backward_transfer(run, zero_shot) == pytest.approx(-0.2)
    assert forgetting(run) == pytest.approx(0.4)
    assert backward_transfer(run) == pytest.approx(-0.4)


def test_three_experiences_by_hand():
    run = [[0.9], [0.7, 0.8], [0.6, 0.7, 0.9]]
    zero_shot = [[0.8], [0.5, 0.6], [0.45, 0.5, 0.4]]
    # gains: [0.1], [0.2, 0.2], [0.15, 0.2, 0.5]
    # forgetting: j=0: max(0.1, 0.2) - 0.15 = 0.05; j=1: 0.2 - 0.2 = 0      -> 0.025
    # BWT:        j=0: 0.15 - 0.1 = 0.05;          j=1: 0.2 - 0.2 = 0      -> 0.025
    assert floor_forgetting(run, zero_shot) == pytest.approx(0.025)
    assert floor_backward_transfer(run, zero_shot) == pytest.approx(0.025)
    # Avalanche's: j=0: 0.9 - 0.6 = 0.3; j=1: 0.8 - 0.7 = 0.1 -> 0.2
    assert forgetting(run) == pytest.approx(0.2)


def test_the_floor_against_itself_is_exactly_zero():
    zero_shot = [[0.855], [0.6375, 0.4425], [0.5975, 0.43, 0.2575]]
    assert floor_forgetting(zero_shot, zero_shot) == 0.0
    assert floor_backward_transfer(zero_shot, zero_shot) == 0.0
    assert forgetting(zero_shot) > 0.1  # what Avalanche's definition reports for it


def test_one_experience_has_no_forgetting_and_shapes_must_match():
    assert math.isnan(floor_forgetting([[0.5]], [[0.4]]))
    with pytest.raises(ValueError, match=r"shape \[1, 2\] but its floor's have \[1, 3\]"):
        floor_forgetting([[0.5], [0.4, 0.3]], [[0.5], [0.4, 0.3, 0.2]])


def _records(strategy: str, seed: int, rows: list[list[float]]) -> list[dict]:
    return [
        {"run_id": f"{strategy}-s{seed}", "scenario": "s", "strategy": strategy, "seed": seed,
         "mem_size": 0, "experience": t, "n_experiences": len(rows), "accuracy_per_experience": row}
        for t, row in enumerate(rows)
    ]  # fmt: skip


def test_a_run_is_matched_with_the_zero_shot_run_of_its_seed_only():
    records = pd.DataFrame(
        _records("zero-shot", 0, [[0.6], [0.4, 0.3]])
        + _records("gcl", 0, [[0.9], [0.5, 0.8]])
        + _records("gcl", 1, [[0.9], [0.5, 0.8]])  # no zero-shot run of seed 1
    )
    metrics = floor_metrics(records)
    assert metrics.loc["gcl-s0", "forgetting"] == pytest.approx(0.2)
    assert metrics.loc["zero-shot-s0", "forgetting"] == 0.0
    assert math.isnan(metrics.loc["gcl-s1", "forgetting"])
    assert math.isnan(metrics.loc["gcl-s1", "backward_transfer"])


@pytest.mark.parametrize("sweep", ["cifar10_proxy_rerun", "default"])
def test_committed_zero_shot_rows_forget_nothing(sweep):
    summary = summary_table(load_records(RESULTS / sweep))
    zero_shot = summary[summary["strategy"] == "zero-shot"].iloc[0]
    assert zero_shot["forgetting_mean"] == 0.0 and zero_shot["forgetting_std"] == 0.0
    assert zero_shot["bwt_mean"] == 0.0
    assert zero_shot["avalanche_forgetting_mean"] > 0.1  # Avalanche's: the growing class set
    trained = summary[~summary["strategy"].isin(["zero-shot", "joint", "joint-converged"])]
    assert trained["forgetting_mean"].notna().all()


def test_domain_incremental_forgetting_equals_avalanches():
    # PACS keeps the same 7 classes: the floor does not move, so the two definitions agree
    summary = summary_table(load_records(RESULTS / "pacs_proxy_rerun"))
    continual = summary[summary["forgetting_mean"].notna()]
    assert len(continual) == 32
    assert continual["forgetting_mean"].to_numpy() == pytest.approx(
        continual["avalanche_forgetting_mean"].to_numpy(), abs=1e-12
    )
    assert continual["bwt_mean"].to_numpy() == pytest.approx(
        continual["avalanche_bwt_mean"].to_numpy(), abs=1e-12
    )
