"""``tuned.yaml``: what a tune chose for each strategy at each memory size, and how a sweep applies it.

Written by ``avalanche-clip tune`` (:mod:`avalanche_clip.pipeline.tune`)::

    tuned_for: {scenarios: [cifar10], model: ..., replay_sampling: union, ...}   # the protocol tuned
    settings: {trials: 20, validation_fraction: 0.2, mem_sizes: [0, 20, 200], seeds: [0], ...}
    strategies:
      gcl:
        strategy: gcl
        memory: optional                   # how its runs use memory (the registry's)
        space: {lr: {type: float, low: 1.0e-07, high: 0.1, log: true}, ...}
        by_mem_size:
          0:                               # one study per tuned memory size
            params: {lr: 0.0021, tau: 0.07, gamma: 0.62}    # what the sweep will run
            value: 0.731                   # best validation accuracy
            standard_error: 0.012          # of that accuracy (tune_quality)
            validation_sizes: [1500]       # validation samples of each run behind it
            at_bound: []                   # best values within 5 % of a bound of the space
            trials: 20
            lr_search: {start_lr: 0.0007, start_value: 0.72, lr: 0.0021, value: 0.731,
                        scored: [{lr: 0.00023, value: 0.70}, ...], stopped: neighbours lower}
            bound_walks: []                # each value near a bound walked past it (tune_walk)
            widened: {}                    # the specs those walks widened: values checked against them
            wall_time_s: 143.2             # the study's trials, line search and walks, summed
            sampler_seed: 81...            # from the study and the config (tune.study_seed)
          20: {...}
      ewc:
        memory: none
        note: its runs ignore the memory size, so it is tuned once (at 0) and applied at every size
        by_mem_size: {0: {...}}

Older files hold one flat entry per strategy (``params``, ``value``, ... beside ``strategy``),
tuned at ``settings.mem_size``: they read as ``by_mem_size: {<settings.mem_size>: {...}}``.

``sweep --tuned tuned.yaml`` (or the config key ``tuned``) puts, into a run at memory ``m``, the
values tuned at the tuned size nearest ``m`` (of two as near, the smaller: the values chosen with
less memory to lean on) into its strategy's options (``lr`` and ``train_epochs`` as per-method
options), after checking every value against the strategy's current search space (widened where
the study's bound walks went past a bound, ``widened``): a value no
tune could have chosen is refused. The run records that size as ``tuned_at_mem_size`` (a run
key, also in its records and hyperparameters). A sweep variant (``{label: gcl-reset, strategy:
gcl, options: ...}``) takes its strategy's tuned values unless it was tuned itself, and keeps the
options it sets.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.config_schema import RUN_KEYS, scenario_label
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.strategies import strategy_info
from avalanche_clip.strategies.registry import search_space
from avalanche_clip.strategies.spaces import describe, in_space, widen

#: Config keys a tune's result depends on besides the strategies: a sweep applying tuned values
#: that were tuned under other values of these is refused.
PROTOCOL_KEYS = ("model", "pretrained", "image_size", "trainable", "templates", "train_mb_size",
                 "train_epochs", "optimizer", "weight_decay", "replay_sampling", "memory_share",
                 "steps_per_experience", "head", "train_logits", "feature_views")
#: Protocol keys added after tuned files were first written, with what a tune that recorded no
#: value ran with: such a file compares as that value. Before ``train_logits`` existed, the
#: CE-family trained over the seen classes and GCL / GDRO over the batch's, which neither value
#: of the key reproduces; before ``feature_views``, every method saw one un-augmented view.
ABSENT_MEANS = {"train_logits": "seen for the CE family, batch for GCL and GDRO (before the key)",
                "feature_views": 1}


#: What a tuned.yaml says of a strategy whose runs ignore the memory size.
MEMORYLESS_NOTE = "its runs ignore the memory size, so it is tuned once (at 0) and applied at every size"


@dataclass
class TunedStudy:
    """The outcome of one study: one strategy at one memory size."""

    params: dict[str, Any]
    value: float
    trials: int
    wall_time_s: float
    validation_sizes: list[int]
    standard_error: float
    at_bound: list[dict[str, Any]]
    sampler_seed: int
    #: the learning-rate line search that ended the study (tune_refine.Refinement as a mapping):
    #: where it started (the sampler's best), the points it scored and why it stopped
    lr_search: dict[str, Any] | None = None
    #: torch's intra-op threads in the process that ended the study (None: not recorded, an older
    #: file). CPU float sums are split across threads, so a score's last bits depend on the count,
    #: and a run that amplifies them (a high learning rate) ends elsewhere: check-optimum re-scores
    #: under the same count
    threads: int | None = None
    #: the bound walks that ended the study (tune_walk.BoundWalk as mappings): each value that lay
    #: within 5 % of a bound after the line search, walked past it
    bound_walks: list[dict[str, Any]] = field(default_factory=list)
    #: the specs of the study's space its walks widened (by parameter; the rest is the registered
    #: space): its values are checked against these
    widened: dict[str, dict[str, Any]] = field(default_factory=dict)


def tuned_for(config: SweepConfig | dict[str, Any]) -> dict[str, Any]:
    """The protocol a tune ran under (compared when a sweep applies its values)."""
    sweep = parse_sweep_config(config)
    resolved = {key: sweep.shared.get(key, RUN_KEYS[key][0]) for key in ABSENT_MEANS}  # its default if unset
    return {"scenarios": [scenario_label(s) for s in sweep.scenario_configs()],
            **{key: sweep.shared.get(key) for key in PROTOCOL_KEYS}, **resolved}


def write_tuned(path: Path, config: SweepConfig | dict[str, Any], settings: Any,
                results: dict[str, dict[int, TunedStudy]], storage: str) -> Path:
    """Write the studies ``results`` (``{label: {mem_size: TunedStudy}}``) as ``path`` (module docstring)."""
    sweep = parse_sweep_config(config)
    strategies = {label: strategy for label, strategy, _ in sweep.entries}
    document = {
        "tuned_for": tuned_for(sweep),
        "settings": {**asdict(settings), "storage": _portable(storage, path.parent)},
        "strategies": {label: _strategy_entry(strategies[label], studies, settings.tune_epochs)
                       for label, studies in results.items()},
    }
    header = ("# Written by `avalanche-clip tune`: the best validation values of each strategy.\n"
              "# Apply with `avalanche-clip sweep --tuned <this file>` (values are checked against\n"
              "# each strategy's search space when read).\n")
    return atomic_write_text(path, header + yaml.safe_dump(document, sort_keys=True))


def _strategy_entry(strategy: str, studies: dict[int, TunedStudy], tune_epochs: bool) -> dict[str, Any]:
    memory = strategy_info(strategy).memory
    entry = {"strategy": strategy, "memory": memory, "space": search_space(strategy, tune_epochs=tune_epochs),
             "by_mem_size": {size: asdict(study) for size, study in sorted(studies.items())}}
    return {**entry, "note": MEMORYLESS_NOTE} if memory == "none" else entry


def _portable(storage: str, folder: Path) -> str:
    """The storage URL, relative to ``folder`` when it is a SQLite file in it (committed files
    must not name this machine's paths)."""
    prefix = "sqlite:///"
    if storage.startswith(prefix):
        database = Path(storage[len(prefix):])
        if database.parent.resolve() == folder.resolve():
            return f"{prefix}{database.name} (beside this file)"
    return storage


def read_tuned(path: str | Path) -> dict[str, Any]:
    """The document of a ``tuned.yaml``, every strategy's studies under ``by_mem_size`` (an older
    flat entry moved there, at ``settings.mem_size``) and every value checked against its
    strategy's space."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"tuned file {path} does not exist (write one with avalanche-clip tune)")
    try:
        document = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"tuned file {path} is not valid YAML: {err}") from None
    strategies = document.get("strategies") if isinstance(document, dict) else None
    if not isinstance(strategies, dict):
        raise ConfigError(f"tuned file {path} has no 'strategies' mapping")
    settings = document.get("settings") or {}
    tune_epochs = bool(settings.get("tune_epochs", False))
    for label, entry in strategies.items():
        if not isinstance(entry, dict) or "strategy" not in entry or not (
                isinstance(entry.get("params"), dict) or isinstance(entry.get("by_mem_size"), dict)):
            raise ConfigError(f"tuned file {path}: strategy {label!r} needs 'strategy' and 'by_mem_size' "
                              "(or, in an older file, 'params')")
        if "by_mem_size" not in entry:  # an older file: one study, at settings.mem_size
            size = settings.get("mem_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ConfigError(f"tuned file {path}: {label} has flat 'params' but settings.mem_size is "
                                  f"{size!r}; expected the memory size it was tuned at (an integer >= 0)")
            study = {k: v for k, v in entry.items() if k not in ("strategy", "space")}
            entry["by_mem_size"] = {size: study}
            for key in study:
                del entry[key]
        space = search_space(entry["strategy"], tune_epochs=tune_epochs)
        for size, study in entry["by_mem_size"].items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or not isinstance(study, dict) \
                    or not isinstance(study.get("params"), dict):
                raise ConfigError(f"tuned file {path}: {label}.by_mem_size maps memory sizes (integers >= 0) "
                                  f"to studies with 'params', got {size!r}: {study!r}")
            where = f"{label}.by_mem_size.{size}"
            _check_params(path, where, entry["strategy"], study["params"], study_space(path, where, space, study))
    return document


def study_space(path: str | Path, where: str, space: dict[str, dict[str, Any]],
                study: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The search space of one study: the registered ``space`` with the specs its bound walks
    widened (``widened``; :func:`~avalanche_clip.strategies.spaces.widen`). ``ConfigError`` naming
    the file and study when they are not a widening of it, or a widened spec is not the one a walk
    of that parameter recorded (``bound_walks``): a space is widened by a walk, not by hand."""
    widened = study.get("widened") or {}
    walked = {walk.get("param"): walk.get("space") for walk in study.get("bound_walks") or []
              if isinstance(walk, dict)}
    for name, spec in widened.items():
        if walked.get(name) != spec:
            raise ConfigError(f"tuned file {path}: {where}: widened space of {name!r} is {spec!r}, but no bound walk "
                              f"of {name!r} recorded it (walks: {walked or 'none'}); expected the space its walk "
                              "left")
    try:
        return widen(space, widened)
    except ValueError as err:
        raise ConfigError(f"tuned file {path}: {where}: {err}") from None


def _check_params(path: Path, where: str, strategy: str, params: dict[str, Any],
                  space: dict[str, dict[str, Any]]) -> None:
    for name, value in params.items():
        if name not in space:
            raise ConfigError(f"tuned file {path}: {where}: {name} is not in the search space of "
                              f"{strategy!r} ({', '.join(space) or 'empty'})")
        if not in_space(value, space[name]):
            raise ConfigError(f"tuned file {path}: {where}: {name}={value!r} is outside its search space "
                              f"({describe(space[name])})")


def nearest_size(sizes: Iterable[int], mem_size: int) -> int:
    """The size of ``sizes`` nearest ``mem_size``; of two as near, the smaller."""
    return min(sizes, key=lambda size: (abs(size - mem_size), size))


@dataclass(frozen=True)
class TunedValues:
    """A read and checked ``tuned.yaml`` (:func:`load_tuned`): the values of each run."""

    path: str
    strategies: dict[str, dict[str, Any]]  # label -> entry, its studies under by_mem_size

    def source(self, label: str, strategy: str) -> str | None:
        """The entry whose values ``label`` takes: its own, else its strategy's (a variant)."""
        return label if label in self.strategies else strategy if strategy in self.strategies else None

    def tuned_at(self, label: str, strategy: str, mem_size: int) -> int | None:
        """The tuned memory size whose values a run of ``label`` at ``mem_size`` takes (None: not tuned)."""
        source = self.source(label, strategy)
        return None if source is None else nearest_size(self.strategies[source]["by_mem_size"], mem_size)

    @property
    def per_memory(self) -> bool:
        """Whether some strategy was tuned at more than one memory size (its values differ by run)."""
        return any(len(entry["by_mem_size"]) > 1 for entry in self.strategies.values())

    def apply(self, config: SweepConfig, mem_size: int | None = None) -> SweepConfig:
        """``config`` with the values for runs at ``mem_size`` in its strategies' options (None:
        only for a file with one tuned size per strategy, the same values at every memory)."""
        if mem_size is None and self.per_memory:
            raise ConfigError(f"tuned file {self.path} holds values per memory size: they are applied run by "
                              "run (plan_sweep with tuned=...), not to the whole sweep at once")
        entries = []
        # each entry's label and strategy as the sweep reads them (checked when the config was made)
        for entry, (label, strategy, _) in zip(copy.deepcopy(config.strategies), config.entries, strict=True):
            # a variant (gcl-reset) takes its strategy's tuned values unless it was tuned itself;
            # what the variant sets (reset_loss_state, gamma=1, ...) stays as it says
            source = self.source(label, strategy)
            if source is None:
                entries.append(entry)
                continue
            studies = self.strategies[source]["by_mem_size"]
            size = next(iter(studies)) if mem_size is None else nearest_size(studies, mem_size)
            variant = {"label": entry, "strategy": entry} if isinstance(entry, str) else dict(entry)
            variant["options"] = {**studies[size]["params"], **(variant.get("options") or {})}
            entries.append(variant)
        return config.replace(strategies=entries)  # entries of the file the sweep does not run are left unused


def load_tuned(config: SweepConfig | dict[str, Any], path: str | Path) -> TunedValues:
    """The tuned values of ``path`` for the sweep ``config``.

    Raises ``ConfigError`` when the tune ran under another protocol (:data:`PROTOCOL_KEYS`; with
    ``tuned_check: false`` in the config, a warning instead) or a value is outside its space.
    """
    config = parse_sweep_config(config)  # tuned_check checked there, with the other sweep keys
    document = read_tuned(path)
    recorded = document.get("tuned_for") or {}
    if recorded:
        recorded = {**ABSENT_MEANS, **recorded}
    current = tuned_for(config)
    differing = [key for key in PROTOCOL_KEYS if key in recorded and recorded[key] != current[key]]
    if differing:
        detail = "; ".join(f"{k}: tuned {recorded[k]!r} vs now {current[k]!r}" for k in differing)
        if config.tuned_check:
            raise ConfigError(f"tuned file {path} was tuned under another protocol ({detail}); set "
                              "tuned_check: false to apply its values anyway (an ablation)")
        warnings.warn(f"applying values tuned under another protocol ({detail})", stacklevel=3)
    return TunedValues(str(path), document["strategies"])


def apply_tuned(config: SweepConfig | dict[str, Any], path: str | Path, mem_size: int | None = None) -> SweepConfig:
    """The sweep ``config`` with the tuned values of ``path`` for runs at ``mem_size`` in its
    strategies' options (:meth:`TunedValues.apply`; errors as :func:`load_tuned`)."""
    config = parse_sweep_config(config)
    return load_tuned(config, path).apply(config, mem_size)
