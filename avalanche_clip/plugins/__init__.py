"""Avalanche plugins: class-balanced replay, seen-class tracking, loss-state housekeeping."""

from avalanche_clip.plugins.loss_state import LossStatePlugin
from avalanche_clip.plugins.replay import REPLAY_SAMPLING, ClassBalancedReplayPlugin
from avalanche_clip.plugins.seen_classes import SeenClassesPlugin, experience_classes

__all__ = [
    "REPLAY_SAMPLING",
    "ClassBalancedReplayPlugin",
    "LossStatePlugin",
    "SeenClassesPlugin",
    "experience_classes",
]
