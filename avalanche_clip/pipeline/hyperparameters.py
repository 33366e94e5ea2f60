"""Value checks of strategy hyper-parameters, run before any training.

Names are checked by the registry (``check_strategy``); this module checks values by building
the pieces that own them (the losses, the replay plugin) on a one-sample problem, so the error
is the one those classes raise — e.g. ``gamma must lie in (0, 1], got 1.5``. The other options'
range rules are :mod:`avalanche_clip.common.values`'s, the ones the strategies' constructors
apply (here only which rule each option name takes), so no rule is written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avalanche_clip.common.values import (
    check_choice,
    check_finite_positive,
    check_int,
    check_non_negative,
    check_open_fraction,
    check_positive,
    check_unit_interval,
)
from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.strategies.contrastive import TRAIN_LOGITS

_LOSS_KEYS = {
    "gcl": (GCLLoss, ("tau", "gamma", "negatives")),
    "gdro": (GDROLoss, ("tau", "margin", "dro_lambda", "gamma", "class_gamma")),
}
#: The range rule of each option name (the rules themselves, and their messages, are
#: avalanche_clip.common.values's, which the strategies' constructors apply too).
_RULES: dict[str, Callable[[str, Any], float]] = {
    **dict.fromkeys(("ewc_lambda", "alpha", "beta", "ird_lambda", "distill_lambda", "lambda_okd"),
                    check_non_negative),
    "lr": check_finite_positive,  # the run's lr rule (StrategySetup's)
    **dict.fromkeys(("budget_scale", "tau", "base_temperature", "kappa", "kappa_past",
                     "distill_temperature", "temperature"), check_positive),
    # shares of a step budget: (0, 1); FOSTER's effective-number betas: [0, 1)
    **dict.fromkeys(("classifier_fraction", "compression_fraction"), check_open_fraction),
    **dict.fromkeys(("beta1", "beta2"), check_unit_interval),
}
_CHOICES = {"train_logits": TRAIN_LOGITS}


def check_hyperparameters(strategy: str, hparams: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the strategy and the first out-of-range value."""
    try:
        _check(strategy, hparams)
    except ValueError as err:
        raise ValueError(f"strategy {strategy!r}: {err}") from None


def _check(strategy: str, hparams: dict[str, Any]) -> None:
    if strategy in _LOSS_KEYS:
        loss_class, keys = _LOSS_KEYS[strategy]
        kwargs = {k: hparams[k] for k in keys if k in hparams}
        if loss_class is GDROLoss:
            kwargs["num_classes"] = 1
        loss_class(num_samples=1, **kwargs)
    for key, rule in _RULES.items():
        if key in hparams:
            rule(key, hparams[key])
    if "train_epochs" in hparams:  # a method's own epochs: at least one (zero-shot is its own strategy)
        check_int("train_epochs", hparams["train_epochs"], 1)
    for key, choices in _CHOICES.items():
        if key in hparams:
            check_choice(key, hparams[key], choices)
