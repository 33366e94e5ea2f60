"""Summary tables: exact numbers against an independent computation, order, Markdown, CSV."""

from __future__ import annotations

import csv
import io
import math
import statistics

import pandas as pd
import pytest
from sweep_fakes import (
    EXPECTED_ORDER,
    N_EXPERIENCES,
    SEEDS,
    experience_acc,
    experiences,
    forgetting,
    stream_acc,
    zero_shot_acc,
)

from avalanche_clip.reporting import (
    METHOD_ORDER,
    experience_table,
    format_percent,
    sort_methods,
    summary_table,
    to_csv,
    to_markdown,
)


def gain(scenario: str, strategy: str, mem: int, seed: int, exp: int, after: int) -> float:
    """``g_{after,exp}``: the accuracy minus the zero-shot run's of the same seed."""
    return experience_acc(scenario, strategy, mem, seed, exp, after) - experience_acc(
        scenario, "zero-shot", 0, seed, exp, after
    )


def floor_forgetting_and_bwt(scenario: str, strategy: str, mem: int, seed: int) -> tuple[float, float]:
    """Forgetting and BWT against the floor, written out from their definitions."""
    last = N_EXPERIENCES[scenario] - 1
    if strategy == "joint":
        return math.nan, math.nan
    drops, transfers = [], []
    for j in range(last):
        best = max(gain(scenario, strategy, mem, seed, j, t) for t in range(j, last))
        final = gain(scenario, strategy, mem, seed, j, last)
        drops.append(best - final)
        transfers.append(final - gain(scenario, strategy, mem, seed, j, j))
    return statistics.mean(drops), statistics.mean(transfers)


def expected_cell(scenario: str, strategy: str, mem: int) -> dict[str, float]:
    """The summary row computed straight from the generating formulas, with ``statistics``."""
    last = N_EXPERIENCES[scenario] - 1
    floor = [floor_forgetting_and_bwt(scenario, strategy, mem, s) for s in SEEDS]
    floor_forgot, floor_bwt = [f for f, _ in floor], [b for _, b in floor]
    final = [stream_acc(scenario, strategy, mem, s, last) for s in SEEDS]
    average = [
        statistics.mean(
            stream_acc(scenario, strategy, mem, s, e) for e in experiences(scenario, strategy)
        )
        for s in SEEDS
    ]
    forgot = [forgetting(strategy, mem, s, last) for s in SEEDS]
    has_forgetting = forgot[0] is not None
    return {
        "final_acc_mean": statistics.mean(final),
        "final_acc_std": statistics.stdev(final),
        "avg_acc_mean": statistics.mean(average),
        "avg_acc_std": statistics.stdev(average),
        "avalanche_forgetting_mean": statistics.mean(forgot) if has_forgetting else math.nan,
        "avalanche_forgetting_std": statistics.stdev(forgot) if has_forgetting else math.nan,
        "forgetting_mean": statistics.mean(floor_forgot) if has_forgetting else math.nan,
        "forgetting_std": statistics.stdev(floor_forgot) if has_forgetting else math.nan,
        "bwt_mean": statistics.mean(floor_bwt) if has_forgetting else math.nan,
        "bwt_std": statistics.stdev(floor_bwt) if has_forgetting else math.nan,
        "zero_shot_mean": statistics.mean(zero_shot_acc(scenario, s) for s in SEEDS),
    }


@pytest.fixture(scope="module")
def summary(records):
    return summary_table(records)


def test_rows_are_in_scenario_method_memory_order(summary):
    assert (
        list(summary[["scenario", "strategy", "mem_size"]].itertuples(index=False, name=None))
        == EXPECTED_ORDER
    )


def test_every_number_matches_the_independent_computation(summary):
    for row in summary.itertuples(index=False):
        expected = expected_cell(row.scenario, row.strategy, row.mem_size)
        assert row.n_seeds == 3  # the unfinished seed-3 run of gcl/20 is not counted
        for column, value in expected.items():
            got = getattr(row, column)
            if math.isnan(value):
                assert math.isnan(got), (row, column)
            else:
                assert got == pytest.approx(value, abs=1e-12), (row, column)


def test_forgetting_against_the_floor_by_hand(summary):
    # a_{t,j} = a_{j,j} - drift * (t - j); the zero-shot run drifts 0.03 per experience.
    # EWC drifts 0.06: gains fall by 0.03 per experience, so on split-cifar10 (T = 3) experience
    # 0 loses 0.06 and experience 1 0.03 of their first gain: forgetting 0.045, BWT -0.045.
    # GCL drifts 0.02: its gains rise by 0.01 per experience; the best earlier gain is the one
    # after experience T-2, 0.01 below the final one: forgetting -0.01, BWT +0.015.
    # The zero-shot run is its own floor: 0 and 0 (Avalanche's forgetting of it is 0.045).
    cifar = summary[summary["scenario"] == "split-cifar10"].set_index(["strategy", "mem_size"])
    assert cifar.loc[("ewc", 0), "forgetting_mean"] == pytest.approx(0.045)
    assert cifar.loc[("ewc", 0), "bwt_mean"] == pytest.approx(-0.045)
    assert cifar.loc[("gcl", 20), "forgetting_mean"] == pytest.approx(-0.01)
    assert cifar.loc[("gcl", 20), "bwt_mean"] == pytest.approx(0.015)
    assert cifar.loc[("zero-shot", 0), "forgetting_mean"] == 0.0
    assert cifar.loc[("zero-shot", 0), "bwt_mean"] == 0.0
    pacs = summary[summary["scenario"] == "pacs"].set_index(["strategy", "mem_size"])
    assert pacs.loc[("ewc", 0), "forgetting_mean"] == pytest.approx(0.06)  # 0.03 * (3+2+1) / 3


def test_hand_computed_cell(summary):
    # split-cifar10 gcl mem 20, final experience 2: 0.5 + 0.02 - 0.10 + jitter * 1.2
    # -> 0.408, 0.420, 0.450; mean 0.426; sample std sqrt(0.000936 / 2) = 0.0216333.
    row = summary[
        (summary["scenario"] == "split-cifar10")
        & (summary["strategy"] == "gcl")
        & (summary["mem_size"] == 20)
    ]
    assert row["final_acc_mean"].item() == pytest.approx(0.426)
    assert row["final_acc_std"].item() == pytest.approx(math.sqrt(0.000936 / 2))
    # average incremental accuracy: (A_0 + A_1 + A_2) / 3 = final + 0.05 per seed -> 0.476
    assert row["avg_acc_mean"].item() == pytest.approx(0.476)
    # the killed seed-3 run (accuracies ~0.88) would have pulled the mean far up
    assert row["n_seeds"].item() == 3


def test_joint_average_is_its_final_accuracy_and_forgetting_missing(summary):
    joint = summary[summary["strategy"] == "joint"]
    assert (joint["avg_acc_mean"] == joint["final_acc_mean"]).all()
    assert joint["forgetting_mean"].isna().all()


def test_method_order_constant():
    assert METHOD_ORDER[0] == "zero-shot" and METHOD_ORDER[-3:] == ("gcl", "gdro", "joint")
    names = ["joint", "gdro", "mystery", "gcl", "icarl", "ewc", "zero-shot", "der", "naive", "gcl"]
    assert sort_methods(names) == [
        "zero-shot",
        "der",
        "ewc",
        "icarl",
        "mystery",
        "naive",
        "gcl",
        "gdro",
        "joint",
    ]


def test_format_percent():
    assert format_percent(0.6134, 0.0081) == "61.3 ± 0.8"
    assert format_percent(0.6134, math.nan) == "61.3"  # one seed: no std
    assert format_percent(math.nan, 0.01) == "—"
    assert format_percent(None) == "—"
    assert format_percent(-0.0004, 0.0) == "0.0 ± 0.0"  # never "-0.0"
    assert format_percent(-0.0123, 0.004) == "-1.2 ± 0.4"


def test_markdown_is_exact():
    summary = pd.DataFrame(
        [
            ["cifar|x", "zero-shot", 0, 3, 0.41, 0.0081, 0.41, 0.0081, math.nan, math.nan, math.nan, math.nan, 0.41, 0.0081, 0.41],
            ["cifar|x", "gcl", 200, 1, 0.6134, math.nan, 0.7, math.nan, -0.0123, math.nan, -0.1, math.nan, 0.8, math.nan, math.nan],
        ],
        columns=[
            "scenario", "strategy", "mem_size", "n_seeds", "final_acc_mean", "final_acc_std",
            "avg_acc_mean", "avg_acc_std", "forgetting_mean", "forgetting_std", "bwt_mean", "bwt_std",
            "plasticity_mean", "plasticity_std", "zero_shot_mean",
        ],
    )  # fmt: skip
    assert to_markdown(summary) == (
        "| Scenario | Method    | Memory | Final acc. (%) | Avg. acc. (%) | Forgetting (%) | BWT (%) | Plasticity (%) | Zero-shot (%) | Seeds |\n"
        "| :------- | :-------- | -----: | -------------: | ------------: | -------------: | ------: | -------------: | ------------: | ----: |\n"
        "| cifar\\|x | zero-shot |      0 |     41.0 ± 0.8 |    41.0 ± 0.8 |              — |       — |     41.0 ± 0.8 |          41.0 |     3 |\n"
        "| cifar\\|x | gcl       |    200 |           61.3 |          70.0 |           -1.2 |   -10.0 |           80.0 |             — |     1 |\n"
    )  # fmt: skip


def test_markdown_of_the_sweep(summary):
    lines = to_markdown(summary).splitlines()
    assert len(lines) == 2 + len(EXPECTED_ORDER)
    assert len({len(line) for line in lines}) == 1  # padded: every row as wide as the header
    row = next(line for line in lines if "split-cifar10 | gcl " in line and "|     20 |" in line)
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "split-cifar10", "gcl", "20", "42.6 ± 2.2", "47.6 ± 2.2", "-1.0 ± 0.0", "1.5 ± 0.0", "—", "41.0", "3",
    ]  # fmt: skip


def test_csv_is_in_percent_with_empty_missing(summary):
    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    assert len(rows) == len(EXPECTED_ORDER)
    gcl = next(
        r
        for r in rows
        if (r["scenario"], r["strategy"], r["mem_size"]) == ("split-cifar10", "gcl", "20")
    )
    assert float(gcl["final_acc_pct_mean"]) == pytest.approx(42.6)
    assert float(gcl["final_acc_pct_std"]) == pytest.approx(100 * math.sqrt(0.000936 / 2), abs=1e-4)
    assert float(gcl["zero_shot_pct_mean"]) == pytest.approx(41.0)
    assert float(gcl["forgetting_pct_mean"]) == pytest.approx(-1.0)  # against the floor
    assert float(gcl["avalanche_forgetting_pct_mean"]) == pytest.approx(4.0)  # as recorded
    joint = next(r for r in rows if r["strategy"] == "joint")
    assert joint["forgetting_pct_mean"] == "" and joint["n_seeds"] == "3"
    assert joint["avalanche_forgetting_pct_mean"] == ""


def test_experience_table_means_over_seeds(records):
    curves = experience_table(records)
    cell = curves[
        (curves["scenario"] == "pacs")
        & (curves["strategy"] == "gdro")
        & (curves["mem_size"] == 100)
    ]
    assert list(cell["experience"]) == [0, 1, 2, 3]
    for row in cell.itertuples():
        values = [stream_acc("pacs", "gdro", 100, s, row.experience) for s in SEEDS]
        assert row.acc_mean == pytest.approx(statistics.mean(values))
        assert row.acc_std == pytest.approx(statistics.stdev(values))
        assert row.n_runs == 3
    killed = curves[
        (curves["scenario"] == "split-cifar10")
        & (curves["strategy"] == "gcl")
        & (curves["mem_size"] == 20)
    ]
    assert list(killed["n_runs"]) == [3, 3, 3]  # the unfinished run is left out of the curves too


def test_no_finished_run_gives_an_empty_summary(records):
    unfinished = records[~records["final"]]
    assert summary_table(unfinished).empty
    assert to_markdown(summary_table(unfinished)).count("\n") == 2
