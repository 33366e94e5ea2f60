"""experiments/checks.py: the fair-comparison checks flag what they should, on a written summary."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "checks.py"
FIELDS = ["scenario", "strategy", "mem_size", "n_seeds", "final_acc_pct_mean", "final_acc_pct_std"]


def load_checks():
    spec = importlib.util.spec_from_file_location("experiment_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_summary(folder: Path, rows: list[tuple[str, int, float, float]]) -> Path:
    (folder / "report").mkdir(parents=True)
    with open(folder / "report" / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for strategy, memory, mean, std in rows:
            writer.writerow({"scenario": "toy", "strategy": strategy, "mem_size": memory, "n_seeds": 3,
                             "final_acc_pct_mean": mean, "final_acc_pct_std": std})
    return folder


def test_a_fair_sweep_passes_and_a_broken_one_is_flagged(tmp_path):
    checks = load_checks()
    fair = write_summary(tmp_path / "fair", [
        ("zero-shot", 0, 30.0, 0.0), ("joint", 0, 70.0, 0.5),
        ("der", 20, 40.0, 2.0), ("der", 200, 39.0, 1.5),       # lower, but within one std
        ("gcl", 0, 35.0, 1.0), ("gcl", 200, 60.0, 1.0)])
    lines = checks.check(checks.read_summary(fair)["toy"])
    assert not any(line.startswith("FAIL") for line in lines), lines
    assert "ok   der: not worse at a larger memory beyond one std" in lines  # within one std
    assert lines[-1] == "zero-shot floor 30.0; below it: none"

    broken = write_summary(tmp_path / "broken", [
        ("zero-shot", 0, 30.0, 0.0), ("joint", 0, 50.0, 0.5),
        ("der", 20, 48.0, 1.0), ("der", 200, 35.0, 1.0),       # DER falls with memory
        ("ce", 0, 25.0, 1.0)])
    lines = checks.check(checks.read_summary(broken)["toy"])
    assert "ok   joint 50.0 vs best continual der@20 48.0" in lines  # joint is above
    assert any(line.startswith("FAIL der") and "20→200: 48.0→35.0" in line for line in lines)
    assert lines[-1] == "zero-shot floor 30.0; below it: ce@0 25.0"
    below_joint = write_summary(tmp_path / "below", [("joint", 0, 40.0, 0.5), ("gcl", 50, 45.0, 1.0)])
    assert "FAIL joint 40.0 vs best continual gcl@50 45.0" in checks.check(checks.read_summary(below_joint)["toy"])
