"""Public import path for checkpoints (``from avalanche_clip.checkpoint import save_checkpoint``);
the code lives in :mod:`avalanche_clip.training.checkpoint`."""

from avalanche_clip.training.checkpoint import (
    CheckpointDamagedError,
    CheckpointMismatchError,
    ResumeError,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["CheckpointDamagedError", "CheckpointMismatchError", "ResumeError", "load_checkpoint",
           "save_checkpoint"]
