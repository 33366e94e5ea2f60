"""Is every tuned learning rate at its validation optimum? ``avalanche-clip check-optimum``.

A tune (:mod:`avalanche_clip.pipeline.tune`) picks, per strategy and memory size, the best of a
few trials: with few trials its best learning rate may sit on a slope. Since every study now ends
with a line search over these same neighbours (:mod:`avalanche_clip.pipeline.tune_refine`), a
file written by such a tune passes unless its line search stopped at its move limit; the check
still re-scores everything from scratch, so it also catches a file whose values no longer
reproduce (another config, code or machine) or one written before the line search. For every (strategy,
tuned memory size) of a ``tuned.yaml`` this module re-scores, on the tune's validation split and
with its seeds (:func:`~avalanche_clip.pipeline.tune.validation_score`, what a tune trial runs):

* the tuned parameters themselves, whose score must equal the study's best value exactly (runs
  are deterministic; any difference means the config, data or code differ from the tune's, and
  the error names both numbers: :class:`OptimumMismatchError`);
* the neighbours ``lr / f`` and ``lr · f`` (``f`` = ``factor``, default 3), the other tuned
  values unchanged; a neighbour outside the strategy's search space is skipped, with a note.

With ``s_0`` the tuned score, ``s_j`` the neighbours' and ``SE`` the standard error of ``s_0``
(:func:`~avalanche_clip.pipeline.tune_quality.standard_error`: ``sqrt(sum_i p (1 - p) / n_i) / k``
over the ``k`` validation runs of ``n_i`` samples), the gain is ``g = max_j s_j - s_0`` and the
verdict ``optimum`` when ``g <= SE`` (no neighbour better beyond one standard error), else
``neighbour better``.

A tuned value within 5 % of a bound of its space (:func:`~avalanche_clip.strategies.spaces.near_bound`;
a bound that is the parameter's own limit does not count; the space is the study's, widened where
its bound walks went, :mod:`avalanche_clip.pipeline.tune_walk`) may stand where the space cut a
better value off. Each such value is re-scored *beyond* that bound, the other values unchanged:
on a log space at ``bound / f`` or ``bound · f``, on a linear one at ``bound ∓ w / 10`` (``w`` the
space's width), then at ``bound ∓ w / 20`` when the strategy refuses the first (a weight past
its domain). With ``b`` the best such score, the verdict is ``beyond bound better`` when
``b - s_0 > SE`` (the space must be widened), and otherwise the bound is measured not to cut
off a better value; a point every try of which is refused is noted and the bound counts as the
parameter's limit.

Scores are compared bit for bit, and on a CPU their last bits depend on torch's thread count
(sums are split across threads; a high learning rate can carry such a difference to another
accuracy). So the check runs under the thread count each study records (``threads`` in
``tuned.yaml``; the command line applies it unless the config sets another, which is refused),
its runs record that count, and a finished re-score run made under another count is refused
rather than reused.

The re-score runs live under ``<out>/runs/<label>/m<size>/lr<lr>/`` (and ``<param><value>/``); a
finished one is reused, so a check that was stopped continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from avalanche_clip.common.errors import AvalancheClipError
from avalanche_clip.common.values import is_finite_number
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.pipeline.tune import (
    TuneSettings,
    study_name,
    trial_runs,
    tune_settings,
    validation_score,
)
from avalanche_clip.pipeline.tune_quality import standard_error, validation_size, values_at_bound
from avalanche_clip.pipeline.tune_threads import record_threads, refuse_reused_runs
from avalanche_clip.pipeline.tuned_values import load_tuned, read_tuned
from avalanche_clip.strategies.registry import search_space
from avalanche_clip.strategies.spaces import describe, in_space, widen

#: Tune settings that decide what a trial scores: a check under other values would score another split.
SCORING_SETTINGS = ("validation_fraction", "seeds", "tune_epochs")
OPTIMUM, NEIGHBOUR_BETTER, BEYOND_BETTER = "optimum", "neighbour better", "beyond bound better"
#: Steps beyond a linear space's bound tried in turn, as fractions of its width.
LINEAR_BEYOND = (0.1, 0.05)


class OptimumMismatchError(AvalancheClipError):
    """Re-scoring a study's tuned values does not give the study's best value."""


@dataclass(frozen=True)
class Neighbour:
    """One neighbouring learning rate: ``lr = tuned lr × factor``; ``value`` None when skipped."""

    factor: float
    lr: float
    value: float | None
    note: str = ""


@dataclass(frozen=True)
class Beyond:
    """A tuned value at a bound re-scored past it: ``param`` at ``value`` (None: every try refused,
    ``note`` says why) scores ``score``."""

    param: str
    bound: str
    value: float | None
    score: float | None
    note: str = ""


@dataclass(frozen=True)
class OptimumCheck:
    """The check of one study: its tuned ``lr`` and score ``value``, and the neighbours'."""

    label: str
    strategy: str
    mem_size: int
    lr: float
    value: float
    standard_error: float
    neighbours: list[Neighbour]
    notes: list[str] = field(default_factory=list)
    beyond: list[Beyond] = field(default_factory=list)

    @property
    def gain(self) -> float | None:
        """Best neighbour's score minus the tuned score (None: no neighbour in the space)."""
        scored = [n.value for n in self.neighbours if n.value is not None]
        return max(scored) - self.value if scored else None

    @property
    def beyond_gain(self) -> float | None:
        """Best score past a bound minus the tuned score (None: no value at a bound was scored)."""
        scored = [b.score for b in self.beyond if b.score is not None]
        return max(scored) - self.value if scored else None

    @property
    def verdict(self) -> str:
        gain, beyond = self.gain, self.beyond_gain
        if gain is not None and gain > self.standard_error:
            return NEIGHBOUR_BETTER
        return BEYOND_BETTER if beyond is not None and beyond > self.standard_error else OPTIMUM


def check_factor(factor: Any) -> float:
    """``factor`` as a float > 1, else ``ConfigError`` naming it."""
    if not is_finite_number(factor) or factor <= 1:
        raise ConfigError(f"--factor must be a finite number > 1 (neighbours lr / f and lr · f), got {factor!r}")
    return float(factor)


def select_studies(studies: dict[str, dict[int, Any]], strategies: list[str] | None,
                   mem_sizes: list[int] | None) -> list[tuple[str, int]]:
    """The (label, tuned memory size) pairs to check: every study of ``studies`` (``{label:
    {size: study}}``), or those of ``strategies`` at ``mem_sizes``; a name or size that selects
    nothing is a ``ConfigError`` listing what there is."""
    tuned = {label: sorted(sizes) for label, sizes in studies.items()}
    unknown = sorted(set(strategies or ()) - set(tuned))
    if unknown:
        raise ConfigError(f"--strategies {unknown} were not tuned in this file; tuned: {sorted(tuned)}")
    labels = [label for label in tuned if strategies is None or label in strategies]
    if mem_sizes is not None:
        missing = sorted({m for m in mem_sizes if not any(m in tuned[label] for label in labels)})
        if missing:
            sizes = "; ".join(f"{label}: {tuned[label]}" for label in labels)
            raise ConfigError(f"--mem-sizes {missing}: no selected strategy was tuned there (tuned sizes: {sizes})")
    return [(label, m) for label in labels for m in tuned[label] if mem_sizes is None or m in mem_sizes]


def scoring_settings(config: SweepConfig, document: dict[str, Any]) -> TuneSettings:
    """The config's tune settings, refused when they would score on another validation split
    than the tune that wrote ``document``."""
    settings = tune_settings(config)
    recorded = document.get("settings") or {}
    differing = [f"{key}: tuned with {recorded[key]!r}, the config gives {getattr(settings, key)!r}"
                 for key in SCORING_SETTINGS if key in recorded and recorded[key] != getattr(settings, key)]
    if differing:
        raise ConfigError(f"the config's tune section differs from the tune's ({'; '.join(differing)}): "
                          "its scores would not be comparable with the study's")
    return settings


def check_optimum(config: SweepConfig | dict[str, Any], tuned: str | Path, out_dir: str | Path, *,
                  factor: float = 3.0, strategies: list[str] | None = None, mem_sizes: list[int] | None = None,
                  progress: bool = True) -> list[OptimumCheck]:
    """Check every selected study of ``tuned`` against its neighbours (module docstring)."""
    config = parse_sweep_config(config)
    factor = check_factor(factor)
    values = load_tuned(config, tuned)  # protocol and search spaces checked as a sweep checks them
    document = read_tuned(tuned)
    settings = scoring_settings(config, document)
    entries = {label: strategy for label, strategy, _ in config.entries}
    studies = {label: entry["by_mem_size"] for label, entry in values.strategies.items()}
    chosen = select_studies(studies, strategies, mem_sizes)
    outside = sorted({label for label, _ in chosen} - set(entries))
    if outside:
        raise ConfigError(f"tuned strategies {outside} are not strategies of the sweep config ({sorted(entries)})")
    # recorded by every re-score run
    config = record_threads(config, {study_name(label, m): studies[label][m] for label, m in chosen})
    checks = []
    bar = tqdm(chosen, desc="optimum checks", disable=not progress)
    for label, mem_size in bar:
        bar.set_postfix_str(study_name(label, mem_size))
        space = search_space(entries[label], tune_epochs=settings.tune_epochs)
        folder = Path(out_dir) / "runs" / label / f"m{mem_size}"
        checks.append(_check_one(config, settings, label, entries[label], mem_size, studies[label][mem_size],
                                 space, factor, folder))
    return checks


def _check_one(config: SweepConfig, settings: TuneSettings, label: str, strategy: str, mem_size: int,
               study: dict[str, Any], space: dict[str, dict[str, Any]], factor: float,
               folder: Path) -> OptimumCheck:
    name = study_name(label, mem_size)
    params = dict(study["params"])
    space = widen(space, study.get("widened"))  # as far as the study's bound walks went (checked on reading)
    if "lr" not in params or "lr" not in space:
        raise ConfigError(f"study {name}: no tuned lr to check (params {sorted(params)}, space {sorted(space)})")
    lr, best = params["lr"], study.get("value")
    if not is_finite_number(best):
        raise ConfigError(f"study {name}: its best validation value is {best!r}; expected the accuracy "
                          "a finished study records (re-run the tune)")

    threads = config.shared["threads"]

    def score(rate: float) -> tuple[float, str | None]:
        refuse_reused_runs(folder / f"lr{rate!r}", threads)
        result = validation_score(config, settings, label, {**params, "lr": rate}, mem_size,
                                  folder / f"lr{rate!r}", resume=True)
        return result.value, result.error

    value, error = score(lr)
    if value != best:  # exact: the same runs on the same split give the same accuracies
        raise OptimumMismatchError(
            f"study {name}: re-scoring its tuned values {params} on validation gives {value!r}, but the study's "
            f"best value is {best!r}{f' ({error})' if error else ''}; the config, data, code or device differ from "
            f"the tune's (its runs are deterministic on one machine and thread count: {threads} threads here, "
            f"{study.get('threads') or 'not recorded'} in the tune), so its neighbours cannot be compared with it")
    sizes = [validation_size(run) for run in trial_runs(config, settings, label, params, mem_size)]
    at_bound = values_at_bound(params, space)
    notes = [f"{item['param']}={item['value']:.4g} at the {item['bound']} bound of its space ({item['space']})"
             for item in at_bound]
    neighbours = []
    for step, rate in ((1 / factor, lr / factor), (factor, lr * factor)):
        shown = f"lr{' / ' if step < 1 else ' · '}{factor:g} = {rate:.4g}"
        if not in_space(rate, space["lr"]):
            neighbours.append(Neighbour(step, rate, None, f"{shown} outside the space ({describe(space['lr'])}): "
                                                          "skipped"))
            continue
        neighbour, error = score(rate)
        neighbours.append(Neighbour(step, rate, neighbour, f"{shown} diverged: {error}" if error else ""))
    def score_beyond(name: str, x: float) -> float:
        refuse_reused_runs(folder / f"{name}{x!r}", threads)
        return validation_score(config, settings, label, {**params, name: x}, mem_size,
                                folder / f"{name}{x!r}", resume=True).value

    beyond = [_score_beyond(item["param"], item["bound"], space[item["param"]], factor, score_beyond)
              for item in at_bound if item["param"] != "lr"]  # the lr's own neighbours are scored above
    return OptimumCheck(label, strategy, mem_size, lr, value, standard_error(value, sizes), neighbours, notes, beyond)


def beyond_points(bound: str, spec: dict[str, Any], factor: float) -> list[float]:
    """The values tried past ``bound`` (``low`` or ``high``) of ``spec``, in order (module docstring)."""
    edge, sign = (spec["low"], -1) if bound == "low" else (spec["high"], 1)
    if spec.get("log"):
        return [edge / factor if sign < 0 else edge * factor]
    width = spec["high"] - spec["low"]
    return [edge + sign * step * width for step in LINEAR_BEYOND]


def _score_beyond(param: str, bound: str, spec: dict[str, Any], factor: float, score: Any) -> Beyond:
    refused = []
    for point in beyond_points(bound, spec, factor):
        if spec["type"] == "int":
            point = round(point)
        try:
            return Beyond(param, bound, point, score(param, point))
        except (ConfigError, ValueError) as err:  # past the option's domain: the strategy refuses it
            refused.append(f"{param}={point:.4g} refused ({err})")
    return Beyond(param, bound, None, None, "; ".join(refused) + ": the bound is the parameter's limit")


__all__ = ["BEYOND_BETTER", "LINEAR_BEYOND", "NEIGHBOUR_BETTER", "Beyond", "beyond_points", "OPTIMUM", "SCORING_SETTINGS", "Neighbour", "OptimumCheck", "OptimumMismatchError",
           "check_factor", "check_optimum", "scoring_settings", "select_studies"]
