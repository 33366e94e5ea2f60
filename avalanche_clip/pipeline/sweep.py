"""Sweeps: the grid of scenarios × seeds × strategies × memory sizes, resumable, then a report.

Memory sizes apply as each strategy uses memory: methods without one run once per seed (at
``mem_size = 0``), methods that need one skip ``mem_size = 0``, ours run at every size.
Strategies that do not support a scenario kind (iCaRL on domain-incremental data) are skipped,
and the skip is reported. With a ``tuned`` file, each run takes the values tuned at the tuned
memory size nearest its own and records that size (:mod:`avalanche_clip.pipeline.tuned_values`).

Layout of ``out``::

    <out>/sweep.yaml              the resolved sweep config (earlier ones: sweep-history/)
    <out>/runs/<run_id>/          one run folder each (see avalanche_clip.pipeline.run)
    <out>/failures.jsonl          runs that raised, with the error, as they fail (the sweep goes
                                  on, unless its first runs all fail alike: avalanche_clip.pipeline.sweep_runs)
    <out>/report/                 tables and figures (avalanche_clip.reporting), once a run has records

Re-running a sweep skips finished runs, resumes interrupted ones from their checkpoints and
never rewrites a finished record. It is refused before anything is trained when a run folder
was made with other settings (:mod:`avalanche_clip.pipeline.sweep_state`) or other data
(:mod:`avalanche_clip.pipeline.data_identity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avalanche_clip.assets import check_assets
from avalanche_clip.common.device import check_device
from avalanche_clip.common.errors import check_writable_dir
from avalanche_clip.common.threads import apply_threads
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.config_schema import RunConfig, scenario_label
from avalanche_clip.pipeline.data_identity import (
    check_same_data,
    run_data_fingerprint,
    warn_unknown_data,
)
from avalanche_clip.pipeline.parallel_sweep import (
    auto_threads,
    auto_workers,
    check_local_workers,
    run_parallel,
)
from avalanche_clip.pipeline.run import check_same_config
from avalanche_clip.pipeline.run_loop import read_records
from avalanche_clip.pipeline.sweep_runs import (
    SweepLedger,
    data_key,
    finished_outcome,
    run_dir,
    run_serial,
)
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.pipeline.sweep_state import check_run_folders, record_sweep_config
from avalanche_clip.pipeline.tuned_values import TunedValues, load_tuned
from avalanche_clip.reporting import write_report
from avalanche_clip.scenarios import scenario_kind
from avalanche_clip.strategies import strategy_info, strategy_roles


@dataclass
class SweepPlan:
    """The runs of a sweep, and what was left out and why."""

    runs: list[RunConfig] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plan_sweep(config: SweepConfig | dict[str, Any], tuned: TunedValues | None = None) -> SweepPlan:
    """Expand every run of the sweep ``config`` and parse it (:func:`parse_run_config`: before any
    training); its grid keys were checked once, when the :class:`SweepConfig` was made. With
    ``tuned``, a run at memory ``m`` takes the values tuned nearest ``m`` and records that size
    (``tuned_at_mem_size``)."""
    sweep = parse_sweep_config(config)
    seeds, mem_sizes = sweep.seeds, sweep.mem_sizes
    # the entries (label, strategy, options) of the runs at each memory size
    entries_at = {m: (sweep if tuned is None else tuned.apply(sweep, m)).entries for m in {0, *mem_sizes}}
    entries = entries_at[0]
    plan = SweepPlan()
    seen_ids: set[str] = set()
    for scenario_config in sweep.scenario_configs():
        kind = scenario_kind(scenario_config["scenario"])
        for seed in seeds:
            for position, (label, strategy, _) in enumerate(entries):
                info = strategy_info(strategy)
                if kind not in info.scenarios:
                    plan.skipped.append(f"{label} on {scenario_label(scenario_config)}: supports {', '.join(info.scenarios)} only")
                    continue
                for mem_size in _memory_sizes(info.memory, mem_sizes):
                    options = entries_at[mem_size][position][2]
                    run = {**scenario_config, "strategy": strategy, "mem_size": mem_size, "seed": seed,
                           "strategy_label": label if label != strategy else None,
                           "strategy_options": {strategy: options} if options else {}}
                    if tuned is not None and tuned.tuned_at(label, strategy, mem_size) is not None:
                        run["tuned_at_mem_size"] = tuned.tuned_at(label, strategy, mem_size)
                    parsed = parse_run_config(run)
                    if parsed.run_id in seen_ids:
                        raise ConfigError(f"two runs share the id {parsed.run_id!r}; give the scenarios distinct labels")
                    seen_ids.add(parsed.run_id)
                    plan.runs.append(parsed)
    return plan


class _DataFingerprints:
    """The data fingerprint of each scenario of a sweep, computed once (when first needed)."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}  # data_key -> fingerprint

    def of(self, run: RunConfig) -> str:
        key = data_key(run)
        if key not in self.known:
            self.known[key] = run_data_fingerprint(run)
        return self.known[key]

    def check_records(self, run: RunConfig, run_dir: Path) -> bool:
        """Whether the run folder's records (if any) carry this data's fingerprint (False: they
        carry none); refuses records of other data before anything is trained."""
        records = read_records(run_dir / "results.jsonl")
        return not records or check_same_data(records, self.of(run), run_dir)


def _memory_sizes(memory: str, sizes: list[int]) -> list[int]:
    if memory == "none":
        return [0]
    if memory == "required":
        return [m for m in sizes if m > 0]
    return list(sizes)


def run_sweep(config: SweepConfig | dict[str, Any], out_dir: str | Path, *, progress: bool = True,
              workers: int | str = 1, ray_address: str | None = None) -> dict[str, Any]:
    """Run every planned run in ``out_dir`` (skipping finished ones), then write the report.

    Missing weights or data of the runs still to do are one error before the first run starts
    (:func:`avalanche_clip.assets.check_assets`). ``workers > 1`` runs them in parallel
    (:mod:`avalanche_clip.pipeline.parallel_sweep`: worker processes of this machine, or the Ray
    cluster at ``ray_address``), with the same records as one after another at the same threads;
    ``"auto"``: one one-thread worker per core for CPU runs, else serial
    (:func:`~avalanche_clip.pipeline.parallel_sweep.auto_workers`, ``auto_threads``).
    """
    config = parse_sweep_config(config)
    tuned = load_tuned(config, config.tuned) if config.tuned else None
    plan = plan_sweep(config, tuned)
    if tuned is not None and not tuned.per_memory:
        # one set of values per strategy: sweep.yaml holds them, as it always has; values per
        # memory size are in each run's config.yaml (sweep.yaml names the tuned file)
        config = tuned.apply(config)
    out = Path(out_dir)
    for run in plan.runs:  # a changed sweep config must not silently reuse old results
        saved = out / "runs" / run.run_id / "config.yaml"
        if saved.is_file():
            check_same_config(saved, run)
    check_run_folders(config, out, {run.run_id for run in plan.runs})  # nor mix in runs of another setting
    pending = [run for run in plan.runs if finished_outcome(run, run_dir(out, run)) is None]
    threads = config.shared.get("threads")
    if workers == "auto":
        workers, threads = auto_workers(pending), auto_threads(pending, threads)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a number >= 1 or 'auto', got {workers!r}")
    if workers > 1 and not ray_address:
        check_local_workers(pending, workers)
    check_assets([run.to_dict() for run in pending])  # missing weights or data: one error before the first run
    fingerprints = _DataFingerprints()
    unknown = [run_dir(out, run) for run in plan.runs if not fingerprints.check_records(run, run_dir(out, run))]
    warn_unknown_data(unknown)
    for device in sorted({run.device for run in pending}):
        check_device(device)  # before any run trains, as parse_run_config's checks
    check_writable_dir(out)
    record_sweep_config(config, out)
    # runs compute their data's fingerprint themselves (memoised file digests make that cheap),
    # so data that cannot be read fails those runs, not the whole sweep before it starts
    ledger = SweepLedger(out, data_fingerprints=dict(fingerprints.known))
    if (workers > 1 or ray_address) and pending:
        run_parallel(plan.runs, out, ledger, workers=workers, ray_address=ray_address,
                     threads=threads, progress=progress)
    else:
        apply_threads(threads)
        run_serial(plan.runs, out, ledger, progress=progress)
    # no report when no run left a record (every run failed): the failures say why
    recorded = any((run_dir(out, run) / "results.jsonl").is_file() for run in plan.runs)
    report = write_report(out, roles=strategy_roles()) if recorded else None
    return {"report": report, "runs": len(plan.runs), "skipped": plan.skipped,
            "failures": ledger.failures, "stopped": ledger.stopped}
