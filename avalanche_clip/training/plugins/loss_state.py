"""Housekeeping of a stateful loss (GCL / GDRO) inside an Avalanche strategy.

The losses keep per-sample estimators ``log_u``, ``log_v`` (``[N]``) and, for GDRO, per-class
``class_loss`` (``[K]``). This plugin

- moves the loss to the strategy's device and switches it to train mode for training and to
  eval mode for evaluation, so evaluation can never touch the estimators;
- optionally resets all state at the start of each experience (an ablation; the paper carries
  the moving averages across tasks);
- after each experience, once the replay memory has been updated, ``forget``\\ s every id that
  was trained but is no longer in memory, so a stale estimate is never read again.

It must come after the replay plugin in the strategy's plugin list (Avalanche calls plugins in
order, and eviction is known only after the memory update).
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

_MARK_EVERY = 256  # steps whose ids are kept before they are marked


class LossStatePlugin(SupervisedPlugin, supports_distributed=True):  # the same on every process
    """Keeps a stateful loss in step with training, evaluation and the replay memory.

    Args:
        loss: the loss module (with ``forget(ids)`` and ``reset()``).
        num_samples: ``N``, the size of the global id space (None: grows with the ids seen).
        replay: the replay plugin whose ``buffer_ids()`` are kept, or None (no memory).
        reset_each_experience: reset every estimator at each experience start.
    """

    def __init__(self, loss: nn.Module, num_samples: int | None = None, replay: Any = None,
                 reset_each_experience: bool = False) -> None:
        super().__init__()
        self.loss = loss
        self.replay = replay
        self.reset_each_experience = reset_each_experience
        self._live = torch.zeros(num_samples or 0, dtype=torch.bool)  # ids whose state may be set
        # each step's trained ids, marked in _live when it is read: marking them every step cost
        # ~4 tensor operations and a device read a step, for a mask read once an experience
        self._pending: list[torch.Tensor] = []
        self._was_training = True

    @property
    def live(self) -> torch.Tensor:
        """``[N]`` bool: the ids trained since the last memory update (whose state may be set)."""
        self._mark_pending()
        return self._live

    def _mark_pending(self) -> None:
        if self._pending:
            index = torch.cat([ids.cpu().flatten() for ids in self._pending])
            self._pending.clear()
            self._cover(int(index.max()) + 1)
            self._live[index] = True

    @live.setter
    def live(self, value: torch.Tensor) -> None:
        self._pending.clear()
        self._live = value

    def _cover(self, size: int) -> None:
        """Grow the live mask to hold ids ``< size`` (ids arrive as the loss's state grows)."""
        if size > len(self._live):
            self._live = torch.cat([self._live, torch.zeros(size - len(self._live), dtype=torch.bool)])

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.loss.to(strategy.device).train()
        if self.reset_each_experience:
            self.loss.reset()
            self.live.zero_()

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        # the global batch's ids under several processes (each process's state covers them all);
        # every step's are new tensors, never written to afterwards, so they are kept as they are
        index = getattr(strategy, "mb_global_index", None)
        if index is None:
            index = getattr(strategy, "mb_index", None)
        if index is not None and index.numel():
            self._pending.append(index)
            if len(self._pending) >= _MARK_EVERY:  # a long experience holds few steps' ids
                self._mark_pending()

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        kept = self.replay.buffer_ids() if self.replay is not None and self.replay.mem_size > 0 else None
        if kept is not None and kept.numel():
            self._cover(int(kept.max()) + 1)
        keep = torch.zeros_like(self.live)
        if kept is not None:
            keep[kept] = True
        evicted = torch.nonzero(self.live & ~keep).flatten()
        if evicted.numel():
            self.loss.forget(evicted.to(strategy.device))
        self.live = keep

    def before_eval(self, strategy: Any, **kwargs: Any) -> None:
        self._was_training = self.loss.training
        self.loss.eval()

    def after_eval(self, strategy: Any, **kwargs: Any) -> None:
        self.loss.train(self._was_training)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"live": self.live.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.live = state["live"].clone()
