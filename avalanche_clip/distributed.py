"""Public import path for ``torchrun`` helpers (``avalanche_clip.distributed.init_from_env``); the
code lives in :mod:`avalanche_clip.training.distributed`."""

from avalanche_clip.training.distributed import (
    GradientSumPlugin,
    barrier,
    init_from_env,
    is_main,
    launched,
    rank,
    shutdown,
    world_size,
)

__all__ = ["GradientSumPlugin", "barrier", "init_from_env", "is_main", "launched", "rank", "shutdown",
           "world_size"]
