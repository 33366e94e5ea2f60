"""Value checks of strategy hyper-parameters, run before any training.

Names are checked by the registry (``check_strategy``); this module checks values by building
the pieces that own them (the losses, the replay plugin) on a one-sample problem, so the error
is the one those classes raise — e.g. ``gamma must lie in (0, 1], got 1.5`` — and no rule is
written twice.
"""

from __future__ import annotations

from typing import Any

from avalanche_clip.common.values import is_int, is_number
from avalanche_clip.losses import GCLLoss, GDROLoss

_LOSS_KEYS = {
    "gcl": (GCLLoss, ("tau", "gamma", "negatives")),
    "gdro": (GDROLoss, ("tau", "margin", "dro_lambda", "gamma", "class_gamma")),
}
_NON_NEGATIVE = ("ewc_lambda", "alpha", "beta", "ird_lambda", "distill_lambda", "lambda_okd")
_POSITIVE = ("lr", "budget_scale", "tau", "base_temperature", "kappa", "kappa_past",
             "distill_temperature", "temperature")
_FRACTIONS = ("classifier_fraction", "compression_fraction")  # shares of a step budget: (0, 1)
_BETAS = ("beta1", "beta2")  # FOSTER's effective-number betas: [0, 1)
_CHOICES = {"train_logits": ("seen", "batch")}


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
    for key in _NON_NEGATIVE:
        if key in hparams and (not is_number(hparams[key]) or hparams[key] < 0):
            raise ValueError(f"{key} must be a number >= 0, got {hparams[key]!r}")
    for key in _POSITIVE:
        if key in hparams and (not is_number(hparams[key]) or not hparams[key] > 0):
            raise ValueError(f"{key} must be a number > 0, got {hparams[key]!r}")
    if "train_epochs" in hparams and (not is_int(hparams["train_epochs"]) or hparams["train_epochs"] < 1):
        raise ValueError(f"train_epochs must be an integer >= 1, got {hparams['train_epochs']!r}")
    for key in _FRACTIONS:
        if key in hparams and (not is_number(hparams[key]) or not 0 < hparams[key] < 1):
            raise ValueError(f"{key} must lie in (0, 1), got {hparams[key]!r}")
    for key in _BETAS:
        if key in hparams and (not is_number(hparams[key]) or not 0 <= hparams[key] < 1):
            raise ValueError(f"{key} must lie in [0, 1), got {hparams[key]!r}")
    for key, choices in _CHOICES.items():
        if key in hparams and hparams[key] not in choices:
            raise ValueError(f"{key}={hparams[key]!r}; expected one of {choices}")
