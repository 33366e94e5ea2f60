"""Value checks of strategy hyper-parameters, run before any training.

Names are checked by the registry (``check_strategy``); this module checks values by building
the pieces that own them (the losses, the replay plugin) on a one-sample problem, so the error
is the one those classes raise — e.g. ``gamma must lie in (0, 1], got 1.5``. The other options'
range rules are the ones each strategy declares beside its constructor, which applies them
(``option_rules``, from its registration), so no rule is written twice.
"""

from __future__ import annotations

from typing import Any

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.strategies import option_rules

_LOSS_KEYS = {
    "gcl": (GCLLoss, ("tau", "gamma", "negatives")),
    "gdro": (GDROLoss, ("tau", "margin", "dro_lambda", "gamma", "class_gamma")),
}


def check_hyperparameters(strategy: str, hparams: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the strategy and the first out-of-range value."""
    try:
        _check(strategy, hparams)
    except ValueError as err:  # a ConfigError (a mapping-valued option's entry) stays one
        kind = ConfigError if isinstance(err, ConfigError) else ValueError
        raise kind(f"strategy {strategy!r}: {err}") from None


def _check(strategy: str, hparams: dict[str, Any]) -> None:
    if strategy in _LOSS_KEYS:
        loss_class, keys = _LOSS_KEYS[strategy]
        kwargs = {k: hparams[k] for k in keys if k in hparams}
        if loss_class is GDROLoss:
            kwargs["num_classes"] = 1
        loss_class(num_samples=1, **kwargs)
    for key, rule in option_rules(strategy).items():  # the rules the strategy's constructor applies
        if key in hparams:
            rule(key, hparams[key])
