"""The retention table and figures (issue 26): numbers against a direct computation from the
records, the untrained row, the Markdown, the figures, report.md's section; sweeps without
held-out sets get none of it."""

from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path

import pytest
from figure_checks import assert_png, assert_svg
from sweep_fakes import write_sweep

from avalanche_clip.reporting import load_records, write_report
from avalanche_clip.reporting.records import RecordError
from avalanche_clip.reporting.retention import UNTRAINED, retention_markdown, retention_table
from avalanche_clip.strategies import strategy_roles

ROLES = strategy_roles()

SEEDS = (0, 1, 2)
CELLS = (("zero-shot", 0), ("gcl", 0), ("gcl", 50), ("gdro", 50))
SETS = ("pacs-photo", "cifar-rest")


def untrained(name: str, seed: int) -> float:
    return {"pacs-photo": 0.60, "cifar-rest": 0.40}[name] + 0.01 * seed


def retained(name: str, strategy: str, mem: int, seed: int) -> float:
    if strategy == "zero-shot":
        return untrained(name, seed)
    return untrained(name, seed) - {"gcl": 0.20, "gdro": 0.05}[strategy] + mem / 1000 - 0.02 * seed


def _write(root: Path) -> Path:
    for strategy, mem in CELLS:
        for seed in SEEDS:
            run = f"cifar10__{strategy}__m{mem}__s{seed}"
            lines = []
            for exp in range(2):
                scores = {n: retained(n, strategy, mem, seed) + (0.1 if exp == 0 else 0) for n in SETS}
                lines.append({
                    "scenario": "cifar10", "strategy": strategy, "mem_size": mem, "seed": seed,
                    "experience": exp, "n_experiences": 2, "stream_accuracy": 0.5, "run_id": run,
                    "retention": scores,
                    "retention_drop": {n: untrained(n, seed) - scores[n] for n in SETS},
                    "retention_zero_shot": {n: untrained(n, seed) for n in SETS},
                })
            (root / run).mkdir(parents=True)
            (root / run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


def test_the_table_holds_each_sets_final_retention_over_seeds_and_the_untrained_level(tmp_path):
    table = retention_table(load_records(_write(tmp_path / "sweep")))
    assert list(table["set"].unique()) == sorted(SETS)
    for name in SETS:
        rows = table[table["set"] == name]
        assert rows["strategy"].iloc[0] == UNTRAINED and rows["mem_size"].isna().iloc[0]
        levels = [untrained(name, s) for s in SEEDS]
        assert rows["retention_mean"].iloc[0] == pytest.approx(statistics.mean(levels))
        assert rows["retention_std"].iloc[0] == pytest.approx(statistics.stdev(levels))
        assert [(r.strategy, r.mem_size) for r in rows.iloc[1:].itertuples()] == list(CELLS)
        for row in rows.iloc[1:].itertuples():
            finals = [retained(name, row.strategy, row.mem_size, s) for s in SEEDS]
            drops = [untrained(name, s) - f for s, f in zip(SEEDS, finals, strict=True)]
            assert row.retention_mean == pytest.approx(statistics.mean(finals))
            assert row.retention_std == pytest.approx(statistics.stdev(finals))
            assert row.drop_mean == pytest.approx(statistics.mean(drops))
            assert row.n_seeds == 3
    text = retention_markdown(table)
    assert "| cifar10  | cifar-rest   | untrained |      — |" in text
    # the middle seed is the mean here; retention falls 1 point a seed, the drop grows 2
    gdro, drop = retained("pacs-photo", "gdro", 50, 1) * 100, (untrained("pacs-photo", 1) - retained(
        "pacs-photo", "gdro", 50, 1)) * 100
    assert f"| pacs-photo   | gdro      |     50 |    {gdro:.1f} ± 1.0 |               {drop:.1f} ± 2.0 |" in text


def test_the_report_shows_the_retention_section_and_one_figure_per_set(tmp_path):
    sweep = _write(tmp_path / "sweep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = write_report(sweep, roles=ROLES)
    text = report["report_md"].read_text()
    assert "## Retention on held-out sets" in text and "pacs-photo" in text
    for name in SETS:
        stem = report["out_dir"] / "figures" / f"retention_vs_memory__cifar10__{name}"
        assert_png(stem.with_suffix(".png"))
        assert_svg(stem.with_suffix(".svg"))
        assert f"retention_vs_memory__cifar10__{name}.png" in text


def test_a_sweep_without_sets_has_no_retention_section(tmp_path):
    sweep = write_sweep(tmp_path / "plain")
    assert retention_table(load_records(sweep)).empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = write_report(sweep, roles=ROLES)
    assert "Retention" not in report["report_md"].read_text()
    assert not any("retention" in p.name for p in report["figures"])


def test_a_retention_value_outside_0_1_is_a_record_error(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "results.jsonl").write_text(json.dumps({
        "scenario": "s", "strategy": "gcl", "mem_size": 0, "seed": 0, "experience": 0,
        "n_experiences": 1, "stream_accuracy": 0.5, "retention": {"a": 1.5}}) + "\n")
    with pytest.raises(RecordError, match=r"retention must map held-out set names to numbers in \[0, 1\]"):
        load_records(tmp_path)
