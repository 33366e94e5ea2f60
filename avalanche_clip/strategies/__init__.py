"""Avalanche strategies: GCL and GDRO on one CLIP base, the CE baseline, and the registry of
every method a comparison can run (``STRATEGIES``, ``build_strategy``).

The registry and its metadata load without Avalanche (``import avalanche`` alone costs ~10 s);
the strategy classes are imported on first use (``from avalanche_clip.strategies import
GCLStrategy`` imports them then), so commands that only read the registry stay fast."""

from typing import Any

from avalanche_clip.losses.masked import masked_cross_entropy
from avalanche_clip.strategies import catalog as _catalog  # noqa: F401  (registers the strategies)
from avalanche_clip.strategies.registry import (
    CLASS_INCREMENTAL,
    DOMAIN_INCREMENTAL,
    STRATEGIES,
    StrategyInfo,
    build_strategy,
    check_strategy,
    option_rules,
    strategy_hparams,
    strategy_info,
    strategy_roles,
)
from avalanche_clip.strategies.setup import StrategySetup

#: The strategy classes, each imported from its module (of this package) on first access (PEP 562).
_CLASSES = {
    "CLIPStrategyBase": "base",
    "ContrastiveCLIPStrategy": "contrastive",
    "GCLStrategy": "contrastive",
    "GDROStrategy": "contrastive",
    "CLIPCrossEntropyStrategy": "cross_entropy",
}


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        from avalanche_clip.strategies import base, contrastive, cross_entropy

        modules = {"base": base, "contrastive": contrastive, "cross_entropy": cross_entropy}
        value = getattr(modules[_CLASSES[name]], name)
        globals()[name] = value  # later lookups find it without this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLASS_INCREMENTAL",
    "CLIPCrossEntropyStrategy",
    "CLIPStrategyBase",
    "ContrastiveCLIPStrategy",
    "DOMAIN_INCREMENTAL",
    "GCLStrategy",
    "GDROStrategy",
    "STRATEGIES",
    "StrategyInfo",
    "StrategySetup",
    "build_strategy",
    "check_strategy",
    "masked_cross_entropy",
    "option_rules",
    "strategy_hparams",
    "strategy_info",
    "strategy_roles",
]
