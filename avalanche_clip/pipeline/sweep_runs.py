"""The runs of a sweep, one at a time or many at once: one function runs a planned run, one
ledger keeps what the sweep learns from each outcome.

:func:`run_planned` is what a sweep does with each run, in this process (serial sweeps) or in a
worker process (``sweep --workers N``, :mod:`avalanche_clip.pipeline.parallel_sweep`): skip it when its final
record exists, else run (or resume) it, and return an :class:`Outcome` instead of raising, so one
failing run does not discard the others. :class:`SweepLedger` takes the outcomes in the order
they arrive:

- the zero-shot floor of each (scenario, seed) is measured by the first run of the pair that
  succeeds and handed to the pair's later runs (:meth:`SweepLedger.floor`);
- each failure is appended to ``failures.jsonl`` and printed when it happens;
- when the first :data:`STOP_AFTER` runs the sweep attempts all fail with the same error (a
  missing GPU, a broken install, ...), the sweep stops instead of repeating it for every run,
  and says why (:attr:`SweepLedger.stopped`, also a line of ``failures.jsonl``).
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from avalanche_clip.common.errors import writing
from avalanche_clip.common.threads import apply_threads
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.run import execute_run
from avalanche_clip.pipeline.run_loop import read_records

#: A sweep stops when this many first attempted runs all fail with the same error.
STOP_AFTER = 2


#: The status of a run whose worker process died under it (a parallel sweep runs it once more).
INTERRUPTED = "interrupted"


@dataclass
class Outcome:
    """What became of one planned run: ``"finished"`` before this sweep, ``"ran"``, ``"failed"``,
    or :data:`INTERRUPTED` (a parallel sweep's worker died: not the run's own error)."""

    run_id: str
    status: str
    zero_shot: float | None = None
    error: str | None = None
    traceback: str | None = None
    data_fingerprint: str | None = None  # of the data its records were made from


def run_dir(out: Path, run: RunConfig) -> Path:
    return Path(out) / "runs" / run.run_id


def finished_outcome(run: RunConfig, folder: Path) -> Outcome | None:
    """The outcome of a run whose final record exists (None if it still has to run)."""
    records = read_records(folder / "results.jsonl")
    if records and records[-1].get("final"):
        return Outcome(run.run_id, "finished", zero_shot=records[-1].get("zero_shot_accuracy"),
                       data_fingerprint=records[-1].get("data_fingerprint"))
    return None


def run_planned(run: RunConfig, folder: Path, zero_shot: float | None,
                data_fingerprint: str | None = None) -> Outcome:
    """Run (or resume, or skip when finished) one planned run in ``folder``; never raises for an
    error of the run itself (see the module docstring). ``data_fingerprint``: the scenario's,
    when the sweep computed it already."""
    done = finished_outcome(run, folder)
    if done is not None:
        return done
    try:
        records = execute_run(run, folder, resume=True, zero_shot=zero_shot,
                              data_fingerprint=data_fingerprint)
    except Exception as err:  # one failing run must not discard the others
        return Outcome(run.run_id, "failed", error=f"{type(err).__name__}: {err}",
                       traceback=traceback.format_exc())
    return Outcome(run.run_id, "ran", zero_shot=records[-1].get("zero_shot_accuracy"),
                   data_fingerprint=records[-1].get("data_fingerprint"))


def run_in_worker(run: RunConfig, folder: str, zero_shot: float | None, threads: int | None,
                  data_fingerprint: str | None) -> Outcome:
    """:func:`run_planned` in a worker process of a parallel sweep (local or Ray), with that
    worker's torch threads."""
    apply_threads(threads)
    return run_planned(run, Path(folder), zero_shot, data_fingerprint)


def floor_key(run: RunConfig) -> tuple[str, Any]:
    return run.scenario_label, run.seed


def data_key(run: RunConfig) -> str:
    """What a run's data fingerprint depends on: its scenario keys and the file-digest memo."""
    return json.dumps({**run.to_scenario_keys(), "cache_dir": run.cache_dir}, sort_keys=True, default=str)


@dataclass
class SweepLedger:
    """Floors, failures and the early stop of one sweep over ``out`` (module docstring)."""

    out: Path
    # data_key -> fingerprint: what the sweep computed before its runs, and what the records of
    # its runs carry as they finish; the later runs of the same data are handed it instead of
    # each hashing the data again (~0.1 s a run)
    data_fingerprints: dict[str, str] = field(default_factory=dict)
    floors: dict[tuple[str, Any], float | None] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    attempted: list[Outcome] = field(default_factory=list)
    stopped: str | None = None

    def floor(self, run: RunConfig) -> float | None:
        return self.floors.get(floor_key(run))

    def fingerprint(self, run: RunConfig) -> str | None:
        """The fingerprint of ``run``'s data when the sweep knows it already (else None: the run
        computes it)."""
        return self.data_fingerprints.get(data_key(run))

    def has_floor(self, run: RunConfig) -> bool:
        return floor_key(run) in self.floors

    def needs_floor(self, run: RunConfig) -> bool:
        """Whether ``run`` would measure its (scenario, seed)'s zero-shot floor if it started now."""
        return run.zero_shot_floor and not self.has_floor(run)

    def record(self, run: RunConfig, outcome: Outcome) -> None:
        if outcome.status != "failed":
            self.floors.setdefault(floor_key(run), outcome.zero_shot)
        if outcome.status == "ran" and outcome.data_fingerprint is not None:  # computed by this sweep
            self.data_fingerprints.setdefault(data_key(run), outcome.data_fingerprint)
        if outcome.status != "finished":
            self.attempted.append(outcome)
        if outcome.status == "failed":
            failure = {"run_id": outcome.run_id, "error": outcome.error, "traceback": outcome.traceback}
            self.failures.append(failure)
            self._append(failure)
            tqdm.write(f"FAILED {outcome.run_id}: {outcome.error}", file=sys.stderr)
            self._check_stop()

    def _check_stop(self) -> None:
        first = self.attempted[:STOP_AFTER]
        if self.stopped or len(first) < STOP_AFTER or any(o.status != "failed" for o in first):
            return
        if len({o.error for o in first}) == 1:
            self.stopped = (f"its first {STOP_AFTER} runs failed with the same error, so the others "
                            f"would too: {first[0].error} (fix it and re-run the sweep; finished "
                            "runs are kept)")
            self._append({"run_id": None, "error": f"sweep stopped: {self.stopped}", "traceback": None,
                          "stopped": True})
            tqdm.write(f"sweep stopped: {self.stopped}", file=sys.stderr)

    def _append(self, line: dict[str, Any]) -> None:
        with writing(self.out), (self.out / "failures.jsonl").open("a") as stream:
            stream.write(json.dumps(line) + "\n")


def run_serial(runs: list[RunConfig], out: Path, ledger: SweepLedger, *, progress: bool) -> None:
    """Every run of ``runs`` in this process, in plan order (until the ledger stops the sweep)."""
    bar = tqdm(runs, desc="runs", disable=not progress)
    for run in bar:
        bar.set_postfix_str(run.run_id)
        ledger.record(run, run_planned(run, run_dir(out, run), ledger.floor(run),
                                       ledger.fingerprint(run)))
        if ledger.stopped:
            break
