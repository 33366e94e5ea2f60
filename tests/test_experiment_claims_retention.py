"""experiments/claims.py on held-out retention (claim (d), issue 26.3), the overview's ZSCL column
and the 5-seed rule (issue 22.6): hand-written records against Welch intervals computed by SciPy."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "claims.py"

#: Retention drops on set "h" per (method, memory), one per seed 0, 1, 2: GCL without memory loses
#: far more than GDRO at 0 and 20; ZSCL at 0 is level with GDRO at 0; ZSCL at 20 loses more.
DROPS = {
    ("gcl", 0): (0.20, 0.25, 0.18),
    ("gdro", 0): (0.03, 0.05, 0.04),
    ("gdro", 20): (0.02, 0.01, 0.03),
    ("gdro", 200): (0.00, 0.01, 0.00),  # not among GDRO's two smallest memories: not compared
    ("zscl", 0): (0.04, 0.06, 0.02),
    ("zscl", 20): (0.10, 0.12, 0.09),
}


@pytest.fixture(scope="module")
def claims():
    spec = importlib.util.spec_from_file_location("experiment_claims_retention", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _write(root: Path, drops: dict[tuple[str, int], tuple[float, ...]] = DROPS,
           retention: bool = True, without: tuple[tuple[str, int], ...] = ()) -> Path:
    """A zero-shot run (drop 0) and one run per (method, memory) of ``drops`` and seed, with retention
    fields on set "h" when ``retention`` (and the cell is not in ``without``)."""
    for (strategy, mem), per_seed in {("zero-shot", 0): (0.0, 0.0, 0.0), **drops}.items():
        for seed, drop in enumerate(per_seed):
            run = f"s__{strategy}__m{mem}__s{seed}"
            record = {"scenario": "s", "strategy": strategy, "mem_size": mem, "seed": seed,
                      "experience": 0, "n_experiences": 1, "stream_accuracy": 0.5 + 0.01 * seed,
                      "run_id": run, "final": True}
            if retention and (strategy, mem) not in without:
                record |= {"retention": {"h": 0.7 - drop}, "retention_drop": {"h": drop},
                           "retention_zero_shot": {"h": 0.7}}
            (root / run).mkdir(parents=True)
            (root / run / "results.jsonl").write_text(json.dumps(record) + "\n")
    return root


def _scipy_interval(a, b) -> tuple[float, float]:
    """Welch's 95 % interval of mean(a) − mean(b), computed by SciPy (independent of welch.py)."""
    result = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return float(result.low), float(result.high)


def test_retention_comparisons_verdict_and_intervals(claims, tmp_path):
    sweep = claims.read_sweep(_write(tmp_path / "sweep"))
    assert sweep.retention_sets() == ["h"]
    comparisons = claims.gdro_retains(sweep)
    expected = [
        ("GCL's drop at 0 − GDRO's at 0 (h)", ("gcl", 0), ("gdro", 0), "ahead"),
        ("ZSCL's drop at 0 − GDRO's at 0 (h)", ("zscl", 0), ("gdro", 0), "within noise"),
        ("GCL's drop at 0 − GDRO's at 20 (h)", ("gcl", 0), ("gdro", 20), "ahead"),
        ("ZSCL's drop at 20 − GDRO's at 20 (h)", ("zscl", 20), ("gdro", 20), "ahead"),
    ]
    assert [c.label for c in comparisons] == [label for label, *_ in expected]
    for c, (_, other, gdro, outcome) in zip(comparisons, expected, strict=True):
        low, high = _scipy_interval(DROPS[other], DROPS[gdro])
        assert c.metric == "retention drop on h"
        assert c.cells == (other, gdro)
        assert c.difference.diff == pytest.approx(sum(DROPS[other]) / 3 - sum(DROPS[gdro]) / 3)
        assert (c.difference.low, c.difference.high) == pytest.approx((low, high), abs=1e-9)
        assert c.difference.outcome == outcome
    assert claims.verdict(comparisons) == "partly"
    assert claims.retention_unmeasured(sweep) is None
    # the row's cell: its verdict, then each comparison in percentage points with its interval
    text = claims.cell(comparisons)
    low, high = _scipy_interval(DROPS[("gcl", 0)], DROPS[("gdro", 0)])
    first = f"GCL's drop at 0 − GDRO's at 0 (h) +17.0 [{low * 100:.1f}, {high * 100:.1f}] (ahead)"
    assert text.startswith(f"**partly**: {first}; ")


def test_gdro_losing_more_than_gcl_is_refuted(claims, tmp_path):
    swapped = {**DROPS, ("gcl", 0): (0.00, 0.01, 0.00), ("zscl", 20): (0.02, 0.01, 0.03)}
    sweep = claims.read_sweep(_write(tmp_path / "sweep", swapped))
    comparisons = claims.gdro_retains(sweep)
    outcomes = [c.difference.outcome for c in comparisons]
    assert outcomes == ["behind", "within noise", "within noise", "within noise"]
    assert claims.verdict(comparisons) == "refuted"


def test_records_without_retention_are_not_measured(claims, tmp_path):
    sweep = claims.read_sweep(_write(tmp_path / "sweep", retention=False))
    assert sweep.retention_sets() == []
    assert claims.gdro_retains(sweep) == []
    assert claims.retention_unmeasured(sweep) == "not measured (records carry no retention)"
    # on the committed sweeps the row is a verdict where the records carry retention, and says
    # "not measured" in the other columns
    sweeps = {f: claims.read_sweep(claims.RESULTS / f) for f, _ in claims.CLAIM_SWEEPS}
    table, _ = claims.claims_table(sweeps)
    row = next(line for line in table.splitlines() if line.startswith("| **(d)** on held-out sets"))
    cells = [c.strip() for c in row.split(" | ")[2:]]
    cells[-1] = cells[-1].removesuffix(" |")
    assert len(cells) == len(sweeps)
    measured = [bool(s.retention_sets()) for s in sweeps.values()]
    assert any(measured) and not all(measured)
    for cell, has in zip(cells, measured, strict=True):
        assert (cell == "not measured (records carry no retention)") is not has


def test_retention_without_gdro_and_gcl_at_0_is_not_measured(claims, tmp_path):
    sweep = claims.read_sweep(_write(tmp_path / "sweep", without=(("gcl", 0), ("zscl", 0), ("zscl", 20))))
    assert sweep.retention_sets() == ["h"]
    assert claims.gdro_retains(sweep) == []
    assert claims.retention_unmeasured(sweep).startswith("not measured (no GDRO and GCL-at-0 runs")


def test_five_seed_rule_lists_the_runs_to_add(claims, tmp_path):
    sweep = claims.read_sweep(_write(tmp_path / "sweep"))
    comparisons = claims.gdro_retains(sweep)
    close = [c for c in comparisons if c.difference.within_two_std]
    # only ZSCL − GDRO at 0 is within two standard deviations (0.00 against stds of 0.01 and 0.02)
    assert [c.label for c in close] == ["ZSCL's drop at 0 − GDRO's at 0 (h)"]
    assert claims.runs_to_add(sweep, comparisons) == {("gdro", 0): [3, 4], ("zscl", 0): [3, 4]}
    # a run with more seeds lacks fewer, the smallest unused; 5 seeds lack none
    sweep.values[claims.FINAL][("zscl", 0)] = {0: 0.5, 1: 0.5, 2: 0.5, 5: 0.5}
    sweep.values[claims.FINAL][("gdro", 0)] = dict.fromkeys(range(5), 0.5)
    assert claims.runs_to_add(sweep, comparisons) == {("zscl", 0): [3]}


def test_seeds_needed_on_the_committed_records(claims, capsys):
    sweeps = {f: claims.read_sweep(claims.RESULTS / f) for f, _ in claims.CLAIM_SWEEPS}
    lines = claims.seeds_needed(sweeps)
    assert not [line for line in lines if line.startswith(("cifar10_proxy_rerun:", "pacs_proxy_rerun:"))]  # 5 seeds
    for line in lines:  # "<sweep>: <method> at memory <m>, seeds <s>, <s>"
        folder, rest = line.split(": ", 1)
        method, rest = rest.split(" at memory ")
        memory, seeds = rest.split(", seeds ")
        have = sweeps[folder].sample(claims.FINAL, method, int(memory))
        missing = [int(s) for s in seeds.split(", ")]
        assert len(have) < claims.MIN_SEEDS and len(have) + len(missing) == claims.MIN_SEEDS
        assert not set(missing) & set(have)
    assert not [line for line in lines if line.startswith("default:")]  # the default runs 5 seeds
    assert claims.main(["--seeds-needed"]) == 0
    assert f"{len(lines) or 'none'}\n" in capsys.readouterr().out.splitlines(keepends=True)[0]


def test_overview_has_a_zscl_column_only_when_run_and_states_the_protocol(claims, tmp_path):
    sweeps = {f: claims.read_sweep(claims.RESULTS / f) for f, _ in claims.PROXIES}
    cifar = claims.PROXIES[0][0]
    overview = claims.overview_table(sweeps)
    assert "Protocol of the CIFAR-10 records: train_logits=batch" in overview
    assert "iCaRL scored by the prompt head" in overview
    header = [h.strip() for h in overview.splitlines()[0].split("|")[1:-1]]
    assert header.index("ZSCL") == header.index("FOSTER") + 1  # the re-run CIFAR-10 ran ZSCL
    without = {}
    for folder, sweep in sweeps.items():
        values = {metric: {k: v for k, v in cells.items() if k[0] != "zscl"}
                  for metric, cells in sweep.values.items()}
        without[folder] = claims.Sweep(sweep.name, values, sweep.protocol)
    assert "ZSCL" not in claims.overview_table(without).splitlines()[0]
    values = {metric: dict(cells) for metric, cells in without[cifar].values.items()}
    values[claims.FINAL][("zscl", 20)] = {0: 0.40, 1: 0.42, 2: 0.44}
    without[cifar] = claims.Sweep(sweeps[cifar].name, values, sweeps[cifar].protocol)
    lines = claims.overview_table(without).splitlines()
    header = [h.strip() for h in lines[0].split("|")[1:-1]]
    row = next(line for line in lines if line.startswith("| CIFAR-10, 20 |"))
    assert [c.strip() for c in row.split("|")[1:-1]][header.index("ZSCL")] == "42.0"
    pacs_20 = next(line for line in lines if line.startswith("| PACS, 20 |"))
    if not sweeps[claims.PROXIES[1][0]].has("zscl", 20):
        assert [c.strip() for c in pacs_20.split("|")[1:-1]][header.index("ZSCL")] == "—"
