"""Per-method tuning on a validation split: ``avalanche-clip tune``.

Every strategy of a sweep config gets the same number of Optuna trials (TPE, seeded). A trial
draws the strategy's search space (:func:`~avalanche_clip.strategies.registry.search_space`:
the learning rate, the method's own hyper-parameters, and the epochs only with
``tune_epochs: true``, since per-method epochs break the equal step budget) and runs the
strategy under the sweep's protocol on every scenario of the config, with the test split
replaced by a stratified validation split carved from each experience's training data
(``validation_fraction``; the test split is never read). The objective is the final accuracy
on the validation data of all seen classes, averaged over the scenarios and the tune seeds.

The tune section of a sweep config (all optional)::

    tune:
      trials: 20                 # per (strategy, memory size): the same for each
      validation_fraction: 0.2   # of each experience's training data
      mem_sizes: null            # memory sizes tuned (default: every size of the sweep's mem_sizes)
      seeds: null                # default: the sweep's first seed
      tune_epochs: false
      sampler_seed: 0
      strategies: null           # default: every trained strategy of the sweep

Every strategy is tuned at every memory size of ``mem_sizes`` its sweep runs use: a method whose
runs ignore the memory (``memory: none`` in the registry: EWC, joint) once, at 0; a method that
needs a memory at the sizes above 0. The sweep applies, to a run at memory ``m``, the values tuned
at the tuned size nearest ``m`` (:mod:`avalanche_clip.pipeline.tuned_values`). The older key
``mem_size: 50`` still reads, as ``mem_sizes: [50]`` (both at once are refused).

Each study's sampler is seeded from the study's name (``<label>__m<size>``) and the config's
canonical form (:func:`study_seed`), so two configs differing in one value draw differently and
one config draws the same. Every study ends with the same line search over the learning rate
from the sampler's best (:mod:`avalanche_clip.pipeline.tune_refine`; its runs under
``<out>/refine/<label>/m<size>/``), so that no neighbouring rate ``lr / 3`` or ``lr · 3`` scores
better, then with a walk past every bound its best values lie near
(:mod:`avalanche_clip.pipeline.tune_walk`; runs under ``<out>/walk/<label>/m<size>/``, the walked
specs recorded as the study's ``widened`` space). A best value still within 5 % of a bound of its
(widened) space is a warning and an ``at_bound`` entry, and the study records its validation size and the standard error of its score
(:mod:`avalanche_clip.pipeline.tune_quality`), and torch's thread count (``threads``: CPU sums
are split across threads, so a score's last bits depend on it; check-optimum re-scores under it).

Studies live in ``--storage`` (any Optuna database URL; default SQLite under the output
folder), one per strategy and memory size (its trial runs under ``<out>/trials/<label>/m<size>/``),
so several processes or machines can work on one study, each study ending with exactly its
budget of finished trials (:mod:`avalanche_clip.pipeline.tune_budget`), and a killed tune
resumes: finished trials are never repeated (a trial killed mid-way is failed, at once on the
same machine, else by Optuna's heartbeat, and re-drawn). A damaged SQLite storage is one
line saying what to do (:mod:`avalanche_clip.pipeline.tune_storage`). Each study's best values go to
``<out>/tuned.yaml`` as soon as its study is complete (:mod:`avalanche_clip.pipeline.tuned_values`).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.run import execute_run
from avalanche_clip.pipeline.sweep import plan_sweep
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.pipeline.tune_budget import (
    HOLDING,
    claimed,
    fail_dead_trials,
    holds_a_place,
    mark_worker,
)
from avalanche_clip.pipeline.tune_quality import (
    standard_error,
    validation_size,
    values_at_bound,
    warn_at_bound,
)
from avalanche_clip.pipeline.tune_refine import refine_lock, refine_lr
from avalanche_clip.pipeline.tune_settings import (
    TUNE_DEFAULTS,
    TuneSettings,
    study_mem_sizes,
    tune_settings,
)
from avalanche_clip.pipeline.tune_storage import storage_errors
from avalanche_clip.pipeline.tune_walk import RefusedValue, walk_bounds
from avalanche_clip.pipeline.tuned_values import TunedStudy, write_tuned
from avalanche_clip.strategies.registry import search_space
from avalanche_clip.strategies.spaces import suggest, widen
from avalanche_clip.training.batching import derived_seed
from avalanche_clip.training.checkpoint import RESUME_NEUTRAL_KEYS
from avalanche_clip.training.plugins.finite_guard import DivergedTrainingError

#: Seconds between a running trial's heartbeats, and after which a silent one is failed.
HEARTBEAT_S, GRACE_S = 10, 30
#: Seconds between looks at the study while its remaining places run in other processes.
WAIT_S = 1.0


def study_name(label: str, mem_size: int) -> str:
    """The Optuna study of ``label`` at memory ``mem_size``."""
    return f"{label}__m{mem_size}"


#: Sweep keys that no trial depends on: the tuned file a sweep applies, and which runs the sweep
#: makes after tuning (its seeds and memory grid; the tune's own seeds and memory sizes are in its
#: settings). A sweep given more seeds draws the same trials.
SWEEP_ONLY_KEYS = ("tuned", "tuned_check", "seeds", "mem_sizes")


def study_seed(config: SweepConfig | dict[str, Any], settings: TuneSettings, study: str,
               space: dict[str, dict[str, Any]] | None = None) -> int:
    """The sampler seed of ``study``: SHA-256 of the study's name, the sweep config's canonical
    form (sorted JSON, without the keys that only say where things run or live, nor
    :data:`SWEEP_ONLY_KEYS`), the tune settings (the sampler seed among them) and the study's search
    ``space``. The space is part of it because a space widened after its best value lay at a
    bound is a new search: with the same seed, a random sampler would draw the same quantiles of
    the wider ranges, and a parameter the score hardly depends on would sit at the new bound
    again, carried there by the trial that is best for its other parameters. (``space=None``
    keeps the seed of the config and settings alone.)"""
    shared = {k: v for k, v in parse_sweep_config(config).to_dict().items()
              if k not in RESUME_NEUTRAL_KEYS and k not in SWEEP_ONLY_KEYS}
    identity: dict[str, Any] = {"config": shared, "tune": asdict(settings)}
    if space is not None:
        identity["space"] = space
    canonical = json.dumps(identity, sort_keys=True, default=str)
    return derived_seed("tune-sampler", study, hashlib.sha256(canonical.encode()).hexdigest())


def trial_runs(config: SweepConfig | dict[str, Any], settings: TuneSettings, label: str,
               params: dict[str, Any], mem_size: int) -> list[RunConfig]:
    """The run configs of one trial: the sweep's runs of ``label`` at memory ``mem_size`` and the
    tune seeds, on the validation split, with ``params`` as the strategy's options (parsed: the
    drawn values are checked as any config's)."""
    config = parse_sweep_config(config)
    single = config.replace(
        seeds=settings.seeds, mem_sizes=[mem_size],
        strategies=[{"label": entry, "strategy": strategy, "options": options}
                    for entry, strategy, options in config.entries if entry == label])
    runs = []
    for run in plan_sweep(single).runs:
        runs.append(parse_run_config({
            **run.to_dict(), "strategy_options": {run.strategy: {**run.options, **params}},
            "scenario_options": {**run.scenario_options, "validation_fraction": settings.validation_fraction},
            "checkpoint": False, "zero_shot_floor": False, "progress": False,
            "retention_sets": [],  # held-out sets are scored in the sweep, not what a trial selects on
        }))
    if not runs:
        raise ConfigError(f"strategy {label!r} has no run at tune memory {mem_size}")
    return runs


@dataclass(frozen=True)
class ValidationScore:
    """What a parameter set scores on validation: ``value`` (the mean final accuracy of its
    ``runs``), or 0.0 with ``error`` when a run diverged (a poor setting, not a bug: the worst score)."""

    value: float
    runs: int
    error: str | None = None


def validation_score(config: SweepConfig | dict[str, Any], settings: TuneSettings, label: str,
                     params: dict[str, Any], mem_size: int, folder: Path, *, resume: bool = False) -> ValidationScore:
    """Score ``params`` of ``label`` at memory ``mem_size`` as a tune trial does: every run of
    :func:`trial_runs` (scenarios × tune seeds, on the validation split) in
    ``folder/<scenario>__s<seed>``, its final accuracy on all seen classes averaged,
    ``(1/k) sum_i acc_i`` over the ``k`` runs. A finished run folder is reused (runs are
    deterministic); ``resume``: an unfinished one is run again rather than refused."""
    values = []
    for run in trial_runs(config, settings, label, params, mem_size):
        try:
            records = execute_run(run, folder / f"{run.scenario_label}__s{run.seed}", resume=resume)
        except DivergedTrainingError as err:
            return ValidationScore(0.0, len(values), f"{type(err).__name__}: {err}")
        values.append(records[-1]["stream_accuracy"])
    return ValidationScore(statistics.fmean(values), len(values))


def run_tune(config: SweepConfig | dict[str, Any], out_dir: str | Path, *, trials: int | None = None,
             storage: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Tune every strategy of the sweep ``config`` into ``out_dir`` (module docstring)."""
    import optuna

    config = parse_sweep_config(config)
    settings = tune_settings(config, trials)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage_url = storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    # heartbeats (how a killed trial is told from a running one) are "experimental" in Optuna
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    entries = {label: strategy for label, strategy, _ in config.entries}
    results: dict[str, dict[int, TunedStudy]] = {}
    began = time.perf_counter()
    with storage_errors(storage_url):  # a damaged optuna.db: one line, not SQLAlchemy's traceback
        db = optuna.storages.RDBStorage(storage_url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        for label in settings.strategies:
            space = search_space(entries[label], tune_epochs=settings.tune_epochs)
            for mem_size in study_mem_sizes(entries[label], settings.mem_sizes):
                study = _tune_one(config, settings, label, mem_size, space, db, out, progress)
                results.setdefault(label, {})[mem_size] = study
                write_tuned(out / "tuned.yaml", config, settings, results, storage_url)
    return {"tuned": out / "tuned.yaml", "strategies": results,
            "wall_time_s": time.perf_counter() - began, "storage": storage_url}


def _tune_one(config: SweepConfig, settings: TuneSettings, label: str, mem_size: int,
              space: dict[str, dict[str, Any]], db: Any, out: Path, progress: bool) -> TunedStudy:
    import optuna
    from optuna.trial import TrialState

    name = study_name(label, mem_size)
    study = optuna.create_study(study_name=name, storage=db, direction="maximize",
                                load_if_exists=True)
    seed = study_seed(config, settings, name, space)
    budget = settings.trials if space else 1  # nothing to choose: one trial of the defaults

    def objective(trial: Any) -> float:
        mark_worker(trial)
        if not holds_a_place(study, trial, budget):  # another process took the last place first
            trial.set_user_attr("surplus", f"the study already held {budget} trials when it started")
            raise optuna.TrialPruned()  # before drawing anything: the sampler learns nothing from it
        params = {name: suggest(trial, name, spec) for name, spec in space.items()}
        trial_dir = out / "trials" / label / f"m{mem_size}" / f"{trial.number:04d}"
        score = validation_score(config, settings, label, params, mem_size, trial_dir)
        if score.error:
            trial.set_user_attr("error", score.error)
        else:
            trial.set_user_attr("runs", score.runs)
        return score.value

    def done() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    # Until the study holds `budget` finished trials. Trials running elsewhere (another process
    # or machine on the same study) count towards it while they run (module tune_budget: exactly
    # `budget` however processes interleave); one whose process was killed is failed (at once on
    # this host, else once its heartbeat is stale) and its place is drawn again.
    stop = optuna.study.MaxTrialsCallback(budget, states=HOLDING)
    while done() < budget:
        fail_dead_trials(study)
        optuna.storages.fail_stale_trials(study)
        if claimed(study) >= budget:  # the remaining places are running elsewhere: wait for them
            time.sleep(WAIT_S)
            continue
        before = done()
        # seeded by the trials so far: a resumed tune draws new points, not its first ones again
        study.sampler = optuna.samplers.TPESampler(seed=derived_seed(seed, len(study.trials)) % 2**32)
        study.optimize(objective, n_trials=budget - before, callbacks=[stop],
                       show_progress_bar=progress, catch=())
    best = study.best_trial
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    # the study's compute, also when earlier processes ran some of its trials
    spent = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in finished)
    params = dict(best.params)
    value = float(best.value) if best.value is not None else math.nan
    refinement = None
    if "lr" in params and math.isfinite(value):  # the same line search ends every study (tune_refine)
        began = time.perf_counter()
        folder = out / "refine" / label / f"m{mem_size}"

        def score(rate: float) -> float:
            return validation_score(config, settings, label, {**params, "lr": rate}, mem_size,
                                    folder / f"lr{rate!r}", resume=True).value

        with refine_lock(folder):
            refinement = refine_lr(score, params["lr"], value, space["lr"])
        params["lr"], value = refinement.lr, refinement.value
        spent += time.perf_counter() - began
    began = time.perf_counter()  # then each value near a bound is walked past it (tune_walk)
    params, value, walks, widened = walk_study(config, settings, label, mem_size, params, value, space,
                                               out / "walk" / label / f"m{mem_size}")
    spent += time.perf_counter() - began
    at_bound = values_at_bound(params, widen(space, widened))
    warn_at_bound(name, at_bound)
    # the validation samples behind the score: one count per run of a trial (scenarios × seeds)
    sizes = [validation_size(run) for run in trial_runs(config, settings, label, params, mem_size)]
    return TunedStudy(
        params=params, value=value, trials=len(finished), wall_time_s=round(spent, 1),
        validation_sizes=sizes,
        standard_error=standard_error(value, sizes) if math.isfinite(value) else math.nan,
        at_bound=at_bound, sampler_seed=seed, lr_search=None if refinement is None else asdict(refinement),
        threads=torch.get_num_threads(), bound_walks=walks, widened=widened,
    )


def walk_study(config: SweepConfig, settings: TuneSettings, label: str, mem_size: int, params: dict[str, Any],
               value: float, space: dict[str, dict[str, Any]], folder: Path
               ) -> tuple[dict[str, Any], float, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The bound walks that end a study (:func:`~avalanche_clip.pipeline.tune_walk.walk_bounds`),
    each point scored as a trial (runs under ``folder/<param><value>[__<param><value>...]/``, every
    value the walks moved, a finished one reused):
    the walked ``params``, their score, the walks and the widened specs. A study without a finite
    score (every trial diverged) is not walked."""
    if not math.isfinite(value):
        return params, value, [], {}

    def score(candidate: dict[str, Any]) -> float:  # its folder names every value moved by the walks
        try:  # the strategy's own checks of its options, before any run: a refusal is the domain's end
            trial_runs(config, settings, label, candidate, mem_size)
        except ConfigError as err:
            raise RefusedValue(str(err)) from None
        moved = "__".join(f"{name}{candidate[name]!r}" for name in candidate if candidate[name] != params.get(name))
        return validation_score(config, settings, label, candidate, mem_size, folder / (moved or "tuned"),
                                resume=True).value

    with refine_lock(folder):
        return walk_bounds(score, params, value, space)


__all__ = ["TUNE_DEFAULTS", "TuneSettings", "ValidationScore", "run_tune", "study_mem_sizes", "study_name",
           "study_seed", "trial_runs", "tune_settings", "validation_score", "walk_study"]
