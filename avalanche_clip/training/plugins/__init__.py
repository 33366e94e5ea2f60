"""Avalanche plugins: class-balanced replay, seen-class tracking, loss-state housekeeping, and
Synaptic Intelligence with its CPU snapshots fixed."""

from avalanche_clip.training.plugins.loss_state import LossStatePlugin
from avalanche_clip.training.plugins.replay import REPLAY_SAMPLING, ClassBalancedReplayPlugin
from avalanche_clip.training.plugins.seen_classes import SeenClassesPlugin, experience_classes
from avalanche_clip.training.plugins.synaptic_intelligence import SynapticIntelligencePlugin

__all__ = [
    "REPLAY_SAMPLING",
    "ClassBalancedReplayPlugin",
    "LossStatePlugin",
    "SeenClassesPlugin",
    "SynapticIntelligencePlugin",
    "experience_classes",
]
