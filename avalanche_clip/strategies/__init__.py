"""Avalanche strategies: GCL and GDRO on one CLIP base, the CE baseline, and the registry of
every method a comparison can run (``STRATEGIES``, ``build_strategy``)."""

from avalanche_clip.losses.masked import masked_cross_entropy
from avalanche_clip.strategies import catalog as _catalog  # noqa: F401  (registers the strategies)
from avalanche_clip.strategies.base import CLIPStrategyBase
from avalanche_clip.strategies.contrastive import ContrastiveCLIPStrategy, GCLStrategy, GDROStrategy
from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy
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
