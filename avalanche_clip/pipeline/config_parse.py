"""A resolved run-config mapping in, a :class:`RunConfig` out: the keys checked here, the values
by :func:`~avalanche_clip.pipeline.config_checks.check_run_values` as the ``RunConfig`` is made.

The rest of the pipeline receives the typed object and checks nothing again; the library's own
constructors (``StrategySetup``, the strategies) apply the same rules (``check_run_values`` asks
them), which an Avalanche user calling them directly needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.pipeline.config_checks import LOGGER_CHOICES, NEEDS_NO_ROOT, check_loggers
from avalanche_clip.pipeline.config_schema import RUN_KEYS, RunConfig


def parse_run_config(raw: Mapping[str, Any] | RunConfig) -> RunConfig:
    """The resolved run config ``raw`` (a mapping of run keys: those it omits take their
    defaults) typed; raises ``ConfigError`` on an unknown key, and what
    :func:`~avalanche_clip.pipeline.config_checks.check_run_values` raises (``ConfigError``, or
    ``ValueError`` / ``TypeError`` where a registry or a loss owns the rule) naming the first bad
    key and value.

    A :class:`RunConfig` is returned as it is: it was checked when it was made.
    """
    if isinstance(raw, RunConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a run config must be a mapping of run keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(RUN_KEYS))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; known keys: "
                          f"{', '.join(sorted(RUN_KEYS))}")
    return RunConfig(**{key: raw[key] for key in raw})  # checked as it is made (config_checks)


__all__ = ["LOGGER_CHOICES", "NEEDS_NO_ROOT", "check_loggers", "parse_run_config"]
