"""Value checks of strategy hyper-parameters, run before any training.

Names are checked by the registry (``check_strategy``); this module checks values by building
the pieces that own them (the losses, the replay plugin) on a one-sample problem, so the error
is the one those classes raise — e.g. ``gamma must lie in (0, 1], got 1.5`` — and no rule is
written twice.
"""

from __future__ import annotations

from typing import Any

from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.plugins import ClassBalancedReplayPlugin

_LOSS_KEYS = {
    "gcl": (GCLLoss, ("tau", "gamma", "negatives")),
    "gdro": (GDROLoss, ("tau", "margin", "dro_lambda", "gamma", "class_gamma")),
}
_NON_NEGATIVE = ("ewc_lambda", "alpha", "beta")


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
    if "replay_sampling" in hparams or "memory_share" in hparams:
        ClassBalancedReplayPlugin(
            0,
            sampling=hparams.get("replay_sampling", "union"),
            memory_share=hparams.get("memory_share", 0.5),
        )
    for key in _NON_NEGATIVE:
        if key in hparams and (not isinstance(hparams[key], (int, float)) or hparams[key] < 0):
            raise ValueError(f"{key} must be a number >= 0, got {hparams[key]!r}")
    if "batch_size_mem" in hparams and hparams["batch_size_mem"] is not None and (
        not isinstance(hparams["batch_size_mem"], int) or hparams["batch_size_mem"] < 1
    ):
        raise ValueError(f"batch_size_mem must be an integer >= 1 or null, got {hparams['batch_size_mem']!r}")
