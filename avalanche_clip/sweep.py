"""Sweeps: the grid of scenarios × seeds × strategies × memory sizes, resumable, then a report.

Memory sizes apply as each strategy uses memory: methods without one run once per seed (at
``mem_size = 0``), methods that need one skip ``mem_size = 0``, ours run at every size.
Strategies that do not support a scenario kind (iCaRL on domain-incremental data) are skipped,
and the skip is reported.

Layout of ``out``::

    <out>/sweep.yaml              the resolved sweep config (earlier ones: sweep-history/)
    <out>/runs/<run_id>/          one run folder each (see avalanche_clip.experiment)
    <out>/failures.jsonl          runs that raised, with the error (the sweep goes on)
    <out>/report/                 tables and figures (avalanche_clip.reporting)

Re-running a sweep skips finished runs, resumes interrupted ones from their checkpoints and
never rewrites a finished record. It is refused before anything is trained when a run folder
was made with other settings (:mod:`avalanche_clip.sweep_state`) or other data
(:mod:`avalanche_clip.data_identity`).
"""

from __future__ import annotations

import copy
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from avalanche_clip.config import SCENARIO_KEYS, SWEEP_KEYS, ConfigError
from avalanche_clip.data_identity import check_same_data, run_data_fingerprint, warn_unknown_data
from avalanche_clip.device import check_device
from avalanche_clip.errors import check_writable_dir, writing
from avalanche_clip.experiment import (
    check_same_config,
    execute_run,
    run_id,
    scenario_label,
    validate_run_config,
)
from avalanche_clip.runner import read_records
from avalanche_clip.scenarios import scenario_kind
from avalanche_clip.strategies import strategy_info
from avalanche_clip.sweep_state import check_run_folders, record_sweep_config


@dataclass
class SweepPlan:
    """The runs of a sweep, and what was left out and why."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _grid_list(config: dict[str, Any], key: str) -> list[Any]:
    value = config[key]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key} must be a non-empty list, got {value!r}")
    return value


def plan_sweep(config: dict[str, Any]) -> SweepPlan:
    """Expand and validate every run of ``config`` (before any training)."""
    base = {k: v for k, v in config.items() if k not in SWEEP_KEYS}
    scenarios = config.get("scenarios") or [{}]
    if not isinstance(scenarios, list) or not all(isinstance(s, dict) for s in scenarios):
        raise ConfigError("scenarios must be a list of mappings of scenario keys")
    plan = SweepPlan()
    seen_ids: set[str] = set()
    for override in scenarios:
        unknown = sorted(set(override) - set(SCENARIO_KEYS))
        if unknown:
            raise ConfigError(f"scenarios entries take {SCENARIO_KEYS}; got unknown {unknown}")
        scenario_config = {**copy.deepcopy(base), **copy.deepcopy(override)}
        kind = scenario_kind(scenario_config["scenario"])
        for seed in _grid_list(config, "seeds"):
            for strategy in _grid_list(config, "strategies"):
                info = strategy_info(strategy)
                if kind not in info.scenarios:
                    plan.skipped.append(f"{strategy} on {scenario_label(scenario_config)}: supports {', '.join(info.scenarios)} only")
                    continue
                for mem_size in _memory_sizes(info.memory, _grid_list(config, "mem_sizes")):
                    run = {**scenario_config, "strategy": strategy, "mem_size": mem_size, "seed": seed}
                    validate_run_config(run)
                    identifier = run_id(run)
                    if identifier in seen_ids:
                        raise ConfigError(f"two runs share the id {identifier!r}; give the scenarios distinct labels")
                    seen_ids.add(identifier)
                    plan.runs.append(run)
    return plan


class _DataFingerprints:
    """The data fingerprint of each scenario of a sweep, computed once (when first needed)."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def of(self, run: dict[str, Any]) -> str:
        key = json.dumps({k: run.get(k) for k in (*SCENARIO_KEYS, "cache_dir")}, sort_keys=True, default=str)
        if key not in self._known:
            self._known[key] = run_data_fingerprint(run)
        return self._known[key]

    def check_records(self, run: dict[str, Any], run_dir: Path) -> bool:
        """Whether the run folder's records (if any) carry this data's fingerprint (False: they
        carry none); refuses records of other data before anything is trained."""
        records = read_records(run_dir / "results.jsonl")
        return not records or check_same_data(records, self.of(run), run_dir)


def _finished(out: Path, run: dict[str, Any], records: list[dict[str, Any]] | None = None) -> bool:
    if records is None:
        records = read_records(out / "runs" / run_id(run) / "results.jsonl")
    return bool(records) and bool(records[-1].get("final"))


def _memory_sizes(memory: str, sizes: list[int]) -> list[int]:
    if memory == "none":
        return [0]
    if memory == "required":
        return [m for m in sizes if m > 0]
    return list(sizes)


def run_sweep(config: dict[str, Any], out_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run every planned run in ``out_dir`` (skipping finished ones), then write the report."""
    plan = plan_sweep(config)
    out = Path(out_dir)
    for run in plan.runs:  # a changed sweep config must not silently reuse old results
        saved = out / "runs" / run_id(run) / "config.yaml"
        if saved.is_file():
            check_same_config(saved, run)
    check_run_folders(config, out)  # nor mix runs of another setting into its report
    fingerprints = _DataFingerprints()
    unknown = [out / "runs" / run_id(run) for run in plan.runs
               if not fingerprints.check_records(run, out / "runs" / run_id(run))]
    warn_unknown_data(unknown)
    for device in sorted({run["device"] for run in plan.runs if not _finished(out, run)}):
        check_device(device)  # before any run trains, as validate_run_config's checks
    check_writable_dir(out)
    record_sweep_config(config, out)
    floors: dict[tuple[str, int], float | None] = {}
    failures = []
    bar = tqdm(plan.runs, desc="runs", disable=not progress)
    for run in bar:
        identifier = run_id(run)
        bar.set_postfix_str(identifier)
        run_dir = out / "runs" / identifier
        finished = read_records(run_dir / "results.jsonl")
        if _finished(out, run, finished):
            floors.setdefault((scenario_label(run), run["seed"]), finished[-1].get("zero_shot_accuracy"))
            continue
        try:
            records = execute_run(run, run_dir, resume=True,
                                  zero_shot=floors.get((scenario_label(run), run["seed"])),
                                  data_fingerprint=fingerprints.of(run))
        except Exception as err:  # one failing run must not discard the others
            failures.append({"run_id": identifier, "error": f"{type(err).__name__}: {err}",
                             "traceback": traceback.format_exc()})
            continue
        floors.setdefault((scenario_label(run), run["seed"]), records[-1].get("zero_shot_accuracy"))
    if failures:
        with writing(out), (out / "failures.jsonl").open("a") as stream:
            for failure in failures:
                stream.write(json.dumps(failure) + "\n")
    from avalanche_clip.reporting import write_report

    report = write_report(out)
    return {"report": report, "runs": len(plan.runs), "skipped": plan.skipped, "failures": failures}
