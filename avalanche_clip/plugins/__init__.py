"""Public import path for our Avalanche plugins (``from avalanche_clip.plugins import
SynapticIntelligencePlugin``); the code lives in :mod:`avalanche_clip.training.plugins`."""

from avalanche_clip.training.plugins import (
    REPLAY_SAMPLING,
    ClassBalancedReplayPlugin,
    LossStatePlugin,
    SeenClassesPlugin,
    SynapticIntelligencePlugin,
    experience_classes,
)

__all__ = ["REPLAY_SAMPLING", "ClassBalancedReplayPlugin", "LossStatePlugin", "SeenClassesPlugin",
           "SynapticIntelligencePlugin", "experience_classes"]
