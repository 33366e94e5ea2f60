"""Named strategy factories with what each supports.

A factory takes a :class:`StrategySetup` and the method's own hyper-parameters (keyword-only,
with defaults) and returns an Avalanche strategy. Its registration says which scenario kinds it
supports, whether it needs the stream with the global sample index, how it uses the replay
memory, whether its state can be checkpointed exactly, and whether it trains jointly on the
whole stream (an upper bound rather than a continual learner).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from avalanche_clip.common.registry import Registry
from avalanche_clip.common.values import Rule, check_finite_positive, check_int
from avalanche_clip.models.label_alignment import check_label_alignment
from avalanche_clip.strategies.defaults import default_lr
from avalanche_clip.strategies.setup import StrategySetup
from avalanche_clip.strategies.spaces import COMMON_SPACE, check_space

CLASS_INCREMENTAL = "class-incremental"
DOMAIN_INCREMENTAL = "domain-incremental"
MEMORY_USES = ("none", "optional", "required")


@dataclass(frozen=True)
class StrategyInfo:
    """What a registered strategy supports."""

    description: str
    scenarios: tuple[str, ...] = (CLASS_INCREMENTAL, DOMAIN_INCREMENTAL)
    uses_index: bool = True
    memory: str = "optional"
    checkpointable: bool = True
    joint: bool = False
    trains: bool = True
    distributed: bool = False
    #: Keeps exemplars of its own choosing (iCaRL's herding), not the shared memory: its
    #: ``memory_digest`` is of those, so reports do not compare it with the shared memory's.
    own_exemplars: bool = False
    search_space: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The range rule of each of the method's own options: the rules its constructor applies
    #: (declared once, beside it), read by the pipeline to check a config before any training.
    option_rules: dict[str, Rule] = field(default_factory=dict)
    #: Views of each image its training items should hold (the strategy class's
    #: ``views_per_item``; a feature cache with augmented views gives this many).
    views_per_item: int = 1


STRATEGIES: Registry[Callable[..., Any]] = Registry("strategy")


def register_strategy(name: str, **info: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a factory ``(setup, **hparams) -> strategy`` under ``name``.

    ``search_space`` (see :mod:`avalanche_clip.strategies.spaces`) lists the method's own tunable
    hyper-parameters; ``trains=False`` marks a strategy that never trains (nothing to tune);
    ``option_rules`` the range rules its constructor applies to its options.
    """
    parsed = StrategyInfo(**info)
    if parsed.memory not in MEMORY_USES:
        raise ValueError(f"memory={parsed.memory!r}; expected one of {MEMORY_USES}")
    check_space(parsed.search_space)
    return STRATEGIES.register(name, info=parsed)


def search_space(name: str, *, tune_epochs: bool = False) -> dict[str, dict[str, Any]]:
    """Everything ``tune`` may choose for strategy ``name``: the learning rate (and the epochs
    with ``tune_epochs``) then the method's own space; empty for a strategy that never trains."""
    info = strategy_info(name)
    if not info.trains:
        return {}
    common = {k: v for k, v in COMMON_SPACE.items() if tune_epochs or k != "train_epochs"}
    return {**copy.deepcopy(common), **copy.deepcopy(info.search_space)}


def strategy_info(name: str) -> StrategyInfo:
    """The :class:`StrategyInfo` of a registered strategy."""
    return STRATEGIES.info(name)["info"]


def strategy_roles() -> dict[str, dict[str, bool]]:
    """``{name: {"trains": bool, "joint": bool, "own_exemplars": bool}}`` for every registered
    strategy: what a report's protocol checks need to know of each method
    (:mod:`avalanche_clip.reporting.protocol`)."""
    return {name: {"trains": strategy_info(name).trains, "joint": strategy_info(name).joint,
                   "own_exemplars": strategy_info(name).own_exemplars}
            for name in STRATEGIES}


#: Options every strategy takes besides its own hyper-parameters: per-method overrides of the
#: run's learning rate and epochs (what the paper tunes per method; None = the run's value, and
#: a run without a learning rate takes the method's default).
PER_METHOD_OPTIONS: dict[str, Any] = {"lr": None, "train_epochs": None}
#: Their rules: the run's learning-rate rule, and at least one epoch (the untrained model is the
#: strategy 'zero-shot'); StrategySetup applies its own (the same lr rule) when build_strategy
#: gives them to it.
PER_METHOD_RULES: dict[str, Rule] = {"lr": check_finite_positive, "train_epochs": partial(check_int, minimum=1)}


def option_rules(name: str) -> dict[str, Rule]:
    """The range rule of every option strategy ``name`` takes that has one: the per-method
    options' then the method's own (:attr:`StrategyInfo.option_rules`)."""
    return {**PER_METHOD_RULES, **strategy_info(name).option_rules}


def strategy_hparams(name: str) -> dict[str, Any]:
    """The method's own hyper-parameters and their defaults, then :data:`PER_METHOD_OPTIONS`."""
    signature = inspect.signature(STRATEGIES.get(name))
    own = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return {**own, **PER_METHOD_OPTIONS}


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
    ``lr`` / ``train_epochs`` among ``hparams`` replace the setup's for this method, and a setup
    without a learning rate (``lr=None``) trains with the method's default
    (:mod:`avalanche_clip.strategies.defaults`).

    ``setup.benchmark`` may come from ``build_scenario`` or from Avalanche's own builders
    (``class_incremental_benchmark``, ``nc_benchmark``, ``benchmark_from_datasets`` ...): ids are
    assigned to its samples as experiences arrive, and each strategy gets the item layout it
    needs. A benchmark that relabels classes needs ``CLIPClassifier.for_benchmark``."""
    check_label_alignment(setup.classifier, setup.benchmark)
    check_strategy(
        name,
        scenario_kind=getattr(setup.benchmark, "scenario_kind", CLASS_INCREMENTAL),
        mem_size=setup.mem_size,
        hparams=hparams,
    )
    overrides = {k: hparams.pop(k) for k in list(hparams) if k in PER_METHOD_OPTIONS}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if setup.lr is None and "lr" not in overrides:
        overrides["lr"] = default_lr(name)
    if overrides:
        setup = dataclasses.replace(setup, **overrides)
    return STRATEGIES.get(name)(setup, **hparams)
