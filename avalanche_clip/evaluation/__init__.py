"""Evaluation metrics for CLIP classifiers under seen-class masking (drop-ins for Avalanche's)."""

from avalanche_clip.evaluation.loss import (
    VisibleLoss,
    VisibleLossPluginMetric,
    loss_metrics,
    visible_samples,
)

__all__ = ["VisibleLoss", "VisibleLossPluginMetric", "loss_metrics", "visible_samples"]
