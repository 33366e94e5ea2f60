"""The order in which a parallel sweep starts its runs: a seed's floor-measuring run first (the
others of the seed wait for its zero-shot floor), then the longest runs, so that no long run is
left for last while the other workers idle. Outcomes do not depend on the order."""

from __future__ import annotations

from pathlib import Path

from cli_fixtures import tiny_config

from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.parallel_sweep import _dispatch, relative_steps
from avalanche_clip.pipeline.sweep_runs import Outcome, SweepLedger


def _run(tmp_path: Path, strategy: str, seed: int = 0, **options):
    config = tiny_config(tmp_path / "cache", strategy=strategy, mem_size=0, seed=seed, train_epochs=2)
    if options:
        config["strategy_options"] = {strategy: options}
    return parse_run_config(config)


class RecordingPool:
    """Runs nothing: records the order of submission and finishes each run with a floor of 0.5
    when the dispatcher next waits (up to ``workers`` in flight at once, as a real pool)."""

    cores = 2

    def __init__(self) -> None:
        self.started: list[str] = []
        self.in_flight_at_start: list[int] = []
        self._open: list[str] = []

    def submit(self, run, folder, zero_shot, threads, data_fingerprint):
        self.started.append(run.run_id)
        self._open.append(run.run_id)
        self.in_flight_at_start.append(len(self._open))
        return run.run_id

    def wait_any(self, handles):
        done = handles[:1]  # the oldest finishes first
        self._open.remove(done[0])
        return done

    def outcome(self, handle, run):
        return Outcome(handle, "ran", zero_shot=0.5)

    def close(self, in_flight):
        assert in_flight == []


def test_relative_steps_are_epochs_times_the_budget_scale(tmp_path):
    assert relative_steps(_run(tmp_path, "ce")) == 2.0
    assert relative_steps(_run(tmp_path, "gcl", train_epochs=5)) == 5.0  # the method's own epochs
    assert relative_steps(_run(tmp_path, "joint-converged")) == 6.0  # default budget_scale 3
    assert relative_steps(_run(tmp_path, "joint-converged", budget_scale=7.5)) == 15.0


def test_floor_runs_first_then_the_longest(tmp_path):
    plan = [_run(tmp_path, name, seed) for seed in (0, 1)
            for name in ("zero-shot", "ce", "gcl", "joint", "joint-converged")]
    plan.insert(3, _run(tmp_path, "gdro", 0, train_epochs=4))
    pool = RecordingPool()
    ledger = SweepLedger(tmp_path / "out")
    _dispatch(pool, plan, tmp_path / "out", ledger, workers=2, threads=1, progress=False)
    order = [run_id.split("__")[1] + "/s" + run_id[-1] for run_id in pool.started]
    assert order == [
        "zero-shot/s0", "zero-shot/s1",  # each seed's first run measures its floor
        "joint-converged/s0", "joint-converged/s1", "gdro/s0",  # then the longest: 6, 6, 4 budgets
        "ce/s0", "gcl/s0", "joint/s0", "ce/s1", "gcl/s1", "joint/s1",  # ties in plan order
    ]
    assert max(pool.in_flight_at_start) == 2
    assert sorted(o.run_id for o in ledger.attempted) == sorted(r.run_id for r in plan)
    assert ledger.floors == {key: 0.5 for key in ledger.floors} and len(ledger.floors) == 2
