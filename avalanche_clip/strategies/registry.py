"""Named strategy factories with what each supports.

A factory takes a :class:`StrategySetup` and the method's own hyper-parameters (keyword-only,
with defaults) and returns an Avalanche strategy. Its registration says which scenario kinds it
supports, whether it needs the stream with the global sample index, how it uses the replay
memory, whether its state can be checkpointed exactly, and whether it trains jointly on the
whole stream (an upper bound rather than a continual learner).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avalanche_clip.registry import Registry
from avalanche_clip.strategies.setup import StrategySetup

CLASS_INCREMENTAL = "class-incremental"
DOMAIN_INCREMENTAL = "domain-incremental"
MEMORY_USES = ("none", "optional", "required")


@dataclass(frozen=True)
class StrategyInfo:
    """What a registered strategy supports (``search_space``: see :func:`check_search_space`)."""

    description: str
    scenarios: tuple[str, ...] = (CLASS_INCREMENTAL, DOMAIN_INCREMENTAL)
    uses_index: bool = True
    memory: str = "optional"
    checkpointable: bool = True
    joint: bool = False
    search_space: dict[str, dict[str, Any]] | None = None


STRATEGIES: Registry[Callable[..., Any]] = Registry("strategy")

#: Fields of each kind of search-space entry: required, then optional.
SEARCH_SPACE_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "float": (("low", "high"), ("log",)),
    "int": (("low", "high"), ("log",)),
    "categorical": (("choices",), ()),
}


def check_search_space(space: dict[str, dict[str, Any]], accepted: set[str] | dict[str, Any]) -> None:
    """``ValueError`` naming the entry unless ``space`` is a valid search space over ``accepted``.

    A search space maps a hyper-parameter name (one the strategy accepts: its own keyword-only
    options or :data:`PER_METHOD_OPTIONS`) to one of::

        {"type": "float", "low": 1e-3, "high": 1.0, "log": True}     # log optional (False)
        {"type": "int", "low": 1, "high": 10}                        # inclusive bounds
        {"type": "categorical", "choices": ["instance", "class"]}

    with ``low < high`` and ``low > 0`` on a log scale (the ranges Optuna's ``suggest_float`` /
    ``suggest_int`` / ``suggest_categorical`` take).
    """
    for name, spec in space.items():
        where = f"search space entry {name!r}"
        if name not in accepted:
            raise ValueError(f"{where}: not a hyper-parameter of the strategy (accepted: {', '.join(sorted(accepted))})")
        if not isinstance(spec, dict) or spec.get("type") not in SEARCH_SPACE_TYPES:
            raise ValueError(f"{where}: 'type' must be one of {sorted(SEARCH_SPACE_TYPES)}, got {spec!r}")
        required, optional = SEARCH_SPACE_TYPES[spec["type"]]
        unknown = set(spec) - {"type", *required, *optional}
        missing = [k for k in required if k not in spec]
        if unknown or missing:
            raise ValueError(f"{where}: {spec['type']} entries take {', '.join(required + optional)}; "
                             f"missing {missing}, unknown {sorted(unknown)}")
        if spec["type"] == "categorical":
            if not isinstance(spec["choices"], (list, tuple)) or not spec["choices"]:
                raise ValueError(f"{where}: choices must be a non-empty list, got {spec['choices']!r}")
            continue
        number = int if spec["type"] == "int" else (int, float)
        low, high, log = spec["low"], spec["high"], spec.get("log", False)
        if any(isinstance(v, bool) or not isinstance(v, number) for v in (low, high)) or not low < high:
            raise ValueError(f"{where}: needs {spec['type']} bounds with low < high, got low={low!r}, high={high!r}")
        if not isinstance(log, bool) or (log and low <= 0):
            raise ValueError(f"{where}: log must be a bool, and a log scale needs low > 0 (low={low!r}, log={log!r})")


def register_strategy(name: str, **info: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a factory ``(setup, **hparams) -> strategy`` under ``name`` (``info``: the
    fields of :class:`StrategyInfo`; a ``search_space`` is checked against the factory's
    keyword-only options)."""
    parsed = StrategyInfo(**info)
    if parsed.memory not in MEMORY_USES:
        raise ValueError(f"memory={parsed.memory!r}; expected one of {MEMORY_USES}")
    register = STRATEGIES.register(name, info=parsed)

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        if parsed.search_space is not None:
            try:
                check_search_space(parsed.search_space, {**_keyword_options(factory), **PER_METHOD_OPTIONS})
            except ValueError as err:
                raise ValueError(f"strategy {name!r}: {err}") from None
        return register(factory)

    return decorator


def strategy_info(name: str) -> StrategyInfo:
    """The :class:`StrategyInfo` of a registered strategy."""
    return STRATEGIES.info(name)["info"]


#: Options every strategy takes besides its own hyper-parameters: per-method overrides of the
#: run's learning rate and epochs (what the paper tunes per method; None = the run's value).
PER_METHOD_OPTIONS: dict[str, Any] = {"lr": None, "train_epochs": None}


def _keyword_options(factory: Callable[..., Any]) -> dict[str, Any]:
    signature = inspect.signature(factory)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def strategy_hparams(name: str) -> dict[str, Any]:
    """The method's own hyper-parameters and their defaults, then :data:`PER_METHOD_OPTIONS`."""
    return {**_keyword_options(STRATEGIES.get(name)), **PER_METHOD_OPTIONS}


def strategy_search_space(name: str) -> dict[str, dict[str, Any]]:
    """The registered search space of ``name`` for ``tune`` (``{}`` when none was given)."""
    return dict(strategy_info(name).search_space or {})


def check_strategy(name: str, *, scenario_kind: str, mem_size: int, hparams: dict[str, Any]) -> None:
    """Fail fast, before any training, on a name, scenario, memory or hyper-parameter that does
    not fit: the message names the bad value and the choices."""
    info = strategy_info(name)
    if scenario_kind not in info.scenarios:
        raise ValueError(
            f"strategy {name!r} supports {', '.join(info.scenarios)} scenarios, not {scenario_kind}"
        )
    if info.memory == "required" and mem_size < 1:
        raise ValueError(f"strategy {name!r} needs a replay memory: mem_size must be >= 1, got {mem_size}")
    known = strategy_hparams(name)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        accepted = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
        raise ValueError(
            f"unknown hyper-parameter(s) {', '.join(map(repr, unknown))} for strategy {name!r}; "
            f"accepted: {accepted}"
        )


def build_strategy(name: str, setup: StrategySetup, **hparams: Any) -> Any:
    """Build the registered strategy ``name`` for ``setup`` (see :func:`check_strategy`);
    ``lr`` / ``train_epochs`` among ``hparams`` replace the setup's for this method."""
    check_strategy(
        name,
        scenario_kind=getattr(setup.benchmark, "scenario_kind", CLASS_INCREMENTAL),
        mem_size=setup.mem_size,
        hparams=hparams,
    )
    overrides = {k: hparams.pop(k) for k in list(hparams) if k in PER_METHOD_OPTIONS}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        setup = dataclasses.replace(setup, **overrides)
    return STRATEGIES.get(name)(setup, **hparams)
