"""A sweep config's grid keys, read and checked in one place.

``strategies`` (names, or variants ``{label, strategy, options}``), ``mem_sizes`` and ``seeds``
are non-empty lists; :class:`~avalanche_clip.pipeline.sweep_schema.SweepConfig` checks them
through :func:`grid_list` and :func:`strategy_entries` as it is made, and every reader of the
grid (planning a sweep, tuning, applying tuned values, one run of a sweep on the command line)
reads them from it, so an entry's label, strategy and options mean the same everywhere.
The values themselves (a memory size, a seed, an option) are checked as the keys of each run when
it is parsed (:func:`~avalanche_clip.pipeline.config_parse.parse_run_config`).
"""

from __future__ import annotations

from typing import Any

from avalanche_clip.common.errors import ConfigError


def grid_list(config: dict[str, Any], key: str) -> list[Any]:
    """The sweep grid key ``key`` (strategies, mem_sizes, seeds), checked to be a non-empty list
    (its values are checked as the runs' own keys, when each run is parsed)."""
    value = config[key]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key} must be a non-empty list, got {value!r}")
    return value


def strategy_entries(config: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, registered strategy, options)`` of each entry of ``strategies``.

    An entry is a registered name (its options: ``strategy_options[name]``) or a variant
    ``{label: gcl-reset, strategy: gcl, options: {reset_loss_state: true}}`` (its options:
    ``strategy_options[strategy]`` updated by ``options``). Labels must be unique.
    """
    shared = config.get("strategy_options") or {}
    entries, labels = [], set()
    for entry in grid_list(config, "strategies"):
        if isinstance(entry, str):
            label, strategy, extra = entry, entry, {}
        elif isinstance(entry, dict) and set(entry) <= {"label", "strategy", "options"} and "strategy" in entry:
            strategy = entry["strategy"]
            label, extra = entry.get("label") or strategy, entry.get("options") or {}
            if not isinstance(extra, dict):
                raise ConfigError(f"strategies entry {entry!r}: options must be a mapping")
        else:
            raise ConfigError(
                f"strategies entry {entry!r}: expected a strategy name or a mapping "
                "{label: NAME, strategy: REGISTERED, options: {...}}"
            )
        if label in labels:
            raise ConfigError(f"two strategies entries are labelled {label!r}; give variants distinct labels")
        labels.add(label)
        entries.append((label, strategy, {**shared.get(strategy, {}), **extra}))
    return entries


__all__ = ["grid_list", "strategy_entries"]
