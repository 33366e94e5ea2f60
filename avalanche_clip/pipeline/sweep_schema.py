"""A sweep config typed: its grid keys checked once, the run keys its runs share kept as given.

:class:`SweepConfig` is what ``sweep``, ``tune``, the tuned values, the sweep folder's state and
the command line receive once a resolved sweep mapping has been parsed
(:func:`parse_sweep_config`). Its sweep-level keys (:data:`~avalanche_clip.pipeline.config.SWEEP_KEYS`:
``strategies``, ``mem_sizes``, ``seeds``, ``scenarios``, ``tune``, ``tuned``, ``tuned_check``)
are fields, checked as it is made; ``shared`` holds the run keys every run starts from, as a
mapping, because they are not one run's values until a scenario entry's overrides and a place in
the grid make each run's :class:`~avalanche_clip.pipeline.config_schema.RunConfig` (checked then).

:meth:`SweepConfig.to_dict` gives back exactly the mapping it was parsed from (the sweep keys it
held and no others), so ``sweep.yaml`` is written as before and a committed sweep folder compares
equal.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from avalanche_clip.pipeline.config import RUN_KEYS, SCENARIO_KEYS, SWEEP_KEYS, ConfigError
from avalanche_clip.pipeline.sweep_grid import grid_list, strategy_entries


def _default(key: str) -> Any:
    return field(default_factory=lambda: copy.deepcopy(SWEEP_KEYS[key][0]))


@dataclass(frozen=True)
class SweepConfig:
    """A parsed sweep config (module docstring); build it with :func:`parse_sweep_config` or
    directly (the constructor checks the sweep keys)."""

    #: every run key the runs share (resolved; checked per run when each RunConfig is made)
    shared: dict[str, Any] = field(default_factory=dict)
    strategies: list[Any] = _default("strategies")  # names or variants {label, strategy, options}
    mem_sizes: list[Any] = _default("mem_sizes")
    seeds: list[Any] = _default("seeds")
    scenarios: list[dict[str, Any]] | None = _default("scenarios")
    tune: dict[str, Any] = _default("tune")  # read (and checked) by tune.tune_settings
    tuned: str | None = _default("tuned")
    tuned_check: bool = _default("tuned_check")
    #: the sweep keys the parsed mapping held: to_dict gives back exactly those
    given: frozenset[str] = frozenset(SWEEP_KEYS)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.shared) - set(RUN_KEYS))
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; known keys: "
                              f"{', '.join(sorted(set(RUN_KEYS) | set(SWEEP_KEYS)))}")
        self.entries  # noqa: B018  (checks strategies: a non-empty list of distinct entries)
        grid_list({"mem_sizes": self.mem_sizes}, "mem_sizes")
        grid_list({"seeds": self.seeds}, "seeds")
        scenarios = self.scenarios
        if scenarios is not None and (not isinstance(scenarios, list)
                                      or not all(isinstance(s, dict) for s in scenarios)):
            raise ConfigError("scenarios must be a list of mappings of scenario keys")
        for override in scenarios or []:
            unknown = sorted(set(override) - set(SCENARIO_KEYS))
            if unknown:
                raise ConfigError(f"scenarios entries take {SCENARIO_KEYS}; got unknown {unknown}")
        if not isinstance(self.tuned_check, bool):
            raise ConfigError(f"tuned_check must be true or false, got {self.tuned_check!r}")

    @property
    def entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(label, registered strategy, options)`` of each ``strategies`` entry
        (:func:`~avalanche_clip.pipeline.sweep_grid.strategy_entries`)."""
        return strategy_entries({"strategies": self.strategies,
                                 "strategy_options": self.shared.get("strategy_options")})

    def scenario_configs(self) -> list[dict[str, Any]]:
        """The shared run keys under each scenario entry's overrides (one mapping when the sweep
        has no ``scenarios``): what each scenario's runs start from."""
        return [{**copy.deepcopy(self.shared), **copy.deepcopy(override)}
                for override in (self.scenarios or [{}])]

    def to_dict(self) -> dict[str, Any]:
        """The resolved mapping it was parsed from (a deep copy): what ``sweep.yaml`` holds."""
        keys = [f.name for f in fields(self) if f.name in SWEEP_KEYS and f.name in self.given]
        return {**copy.deepcopy(self.shared), **{k: copy.deepcopy(getattr(self, k)) for k in keys}}

    def replace(self, **changes: Any) -> SweepConfig:
        """A copy with sweep keys (or ``shared``) changed, checked as any SweepConfig is."""
        given = self.given | (set(changes) & set(SWEEP_KEYS))
        values = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        return SweepConfig(**{**values, **changes, "given": frozenset(given)})


def parse_sweep_config(raw: Mapping[str, Any] | SweepConfig) -> SweepConfig:
    """The resolved sweep mapping ``raw`` typed (a :class:`SweepConfig` is returned as it is: it
    was checked when it was made); ``ConfigError`` names the first bad key and value."""
    if isinstance(raw, SweepConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a sweep config must be a mapping of config keys, got {type(raw).__name__}")
    shared = {k: copy.deepcopy(v) for k, v in raw.items() if k not in SWEEP_KEYS}
    sweep_keys = {k: copy.deepcopy(v) for k, v in raw.items() if k in SWEEP_KEYS}
    return SweepConfig(shared=shared, **sweep_keys, given=frozenset(sweep_keys))


__all__ = ["SweepConfig", "parse_sweep_config"]
