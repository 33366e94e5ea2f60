"""The ``tune:`` section of a sweep config, checked once into :class:`TuneSettings`, and the
memory sizes each strategy is tuned at (module :mod:`avalanche_clip.pipeline.tune` has the whole
story)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avalanche_clip.common.values import is_int, is_number
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.strategies import strategy_info

TUNE_DEFAULTS: dict[str, Any] = {
    "trials": 20,
    "validation_fraction": 0.2,
    "mem_sizes": None,
    "mem_size": None,  # the older one-size key: mem_sizes [mem_size]
    "seeds": None,
    "tune_epochs": False,
    "sampler_seed": 0,
    "strategies": None,
}


@dataclass(frozen=True)
class TuneSettings:
    trials: int
    validation_fraction: float
    mem_sizes: list[int]
    seeds: list[int]
    tune_epochs: bool
    sampler_seed: int
    strategies: list[str]


def tune_settings(config: SweepConfig | dict[str, Any], trials: int | None = None) -> TuneSettings:
    """The checked ``tune`` section of a sweep config (``trials`` overrides it)."""
    config = parse_sweep_config(config)
    section = config.tune or {}
    if not isinstance(section, dict):
        raise ConfigError(f"tune must be a mapping of {sorted(TUNE_DEFAULTS)}, got {section!r}")
    unknown = sorted(set(section) - set(TUNE_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown tune key(s) {unknown}; known: {sorted(TUNE_DEFAULTS)}")
    merged = {**TUNE_DEFAULTS, **section}
    if trials is not None:
        merged["trials"] = trials
    n = merged["trials"]
    if not is_int(n) or n < 1:
        raise ConfigError(f"tune.trials must be an integer >= 1, got {n!r}")
    fraction = merged["validation_fraction"]
    if not is_number(fraction) or not 0 < fraction < 1:
        raise ConfigError(f"tune.validation_fraction must lie in (0, 1), got {fraction!r}")
    mem_sizes = _tune_mem_sizes(config, merged["mem_sizes"], merged["mem_size"])
    seeds = merged["seeds"] if merged["seeds"] is not None else [config.seeds[0]]
    if not isinstance(seeds, list) or not seeds or not all(is_int(s) for s in seeds):
        raise ConfigError(f"tune.seeds must be a non-empty list of integers, got {seeds!r}")
    if not isinstance(merged["tune_epochs"], bool):
        raise ConfigError(f"tune.tune_epochs must be true or false, got {merged['tune_epochs']!r}")
    labels = [label for label, strategy, _ in config.entries if strategy_info(strategy).trains]
    wanted = merged["strategies"] if merged["strategies"] is not None else labels
    missing = sorted(set(wanted) - set(labels))
    if missing:
        raise ConfigError(f"tune.strategies {missing} are not trained strategies of the sweep ({labels})")
    return TuneSettings(n, float(fraction), mem_sizes, list(seeds), merged["tune_epochs"],
                        int(merged["sampler_seed"]), [label for label in labels if label in wanted])


def _tune_mem_sizes(config: SweepConfig, sizes: Any, single: Any) -> list[int]:
    """The checked memory sizes of a tune: ``mem_sizes``, else ``[mem_size]`` (the older key),
    else every size of the sweep grid."""
    if sizes is not None and single is not None:
        raise ConfigError(f"tune.mem_size ({single!r}) and tune.mem_sizes ({sizes!r}) are both set: "
                          "keep mem_sizes (mem_size: M is the older form of mem_sizes: [M])")
    if single is not None:
        if not is_int(single) or single < 0:
            raise ConfigError(f"tune.mem_size must be an integer >= 0, got {single!r}")
        return [single]
    sizes = list(config.mem_sizes) if sizes is None else sizes
    if (not isinstance(sizes, list) or not sizes or not all(is_int(m) and m >= 0 for m in sizes)
            or len(set(sizes)) != len(sizes)):
        raise ConfigError(f"tune.mem_sizes must be a non-empty list of distinct integers >= 0, got {sizes!r}")
    return sorted(sizes)


def study_mem_sizes(strategy: str, sizes: list[int]) -> list[int]:
    """The memory sizes ``strategy`` is tuned at: 0 alone for a method whose runs ignore the
    memory (its sweep runs it at 0 only), the sizes above 0 for one that needs a memory."""
    memory = strategy_info(strategy).memory
    if memory == "none":
        return [0]
    chosen = [m for m in sizes if m > 0] if memory == "required" else list(sizes)
    if not chosen:
        raise ConfigError(f"strategy {strategy!r} needs a replay memory but tune.mem_sizes {sizes} "
                          "holds no size above 0")
    return chosen


__all__ = ["TUNE_DEFAULTS", "TuneSettings", "study_mem_sizes", "tune_settings"]
