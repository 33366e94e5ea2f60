"""The sweep ledger's early stop: only when the first runs a sweep attempts all fail alike."""

from __future__ import annotations

from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.sweep_runs import STOP_AFTER, Outcome, SweepLedger

RUN = RunConfig(scenario="digits", label=None, seed=0)


def _ledger(out, *outcomes: Outcome) -> SweepLedger:
    out.mkdir(exist_ok=True)
    ledger = SweepLedger(out)
    for outcome in outcomes:
        ledger.record(RUN, outcome)
    return ledger


def failed(error: str) -> Outcome:
    return Outcome("r", "failed", error=error)


def test_the_same_error_on_the_first_runs_stops_the_sweep(tmp_path):
    assert STOP_AFTER == 2
    ledger = _ledger(tmp_path, failed("E: x"))
    assert ledger.stopped is None
    ledger.record(RUN, failed("E: x"))
    assert ledger.stopped and "E: x" in ledger.stopped


def test_finished_runs_do_not_count_as_attempts(tmp_path):
    finished = Outcome("r", "finished", zero_shot=0.5)
    ledger = _ledger(tmp_path, finished, failed("E: x"), finished, failed("E: x"))
    assert ledger.stopped is not None
    assert ledger.floor(RUN) == 0.5


def test_different_errors_or_a_success_first_do_not_stop_it(tmp_path):
    assert _ledger(tmp_path / "a", failed("E: x"), failed("E: y"), failed("E: y")).stopped is None
    ran = Outcome("r", "ran", zero_shot=0.1)
    ledger = _ledger(tmp_path, ran, failed("E: x"), failed("E: x"), failed("E: x"))
    assert ledger.stopped is None and len(ledger.failures) == 3
    assert ledger.floor(RUN) == 0.1  # the first success measured the floor
