"""A :class:`CLIPStrategyBase` for methods with modules of their own and stages within an
experience (Co2L, CaSSLe, FOSTER).

- **Method modules** (projectors, predictors, FOSTER's auxiliary head) live in
  :attr:`method_modules`, beside the classifier rather than inside it: the optimizer holds them
  with the model's parameters (same optimizer, learning rate and weight decay as the model), and
  checkpoints carry their state (:meth:`checkpoint_state`). Frozen copies of the previous model
  are not method modules: each experience rebuilds them from the live model.
- **Stages.** An experience's protocol budget, ``T`` optimizer steps, is split into consecutive
  stages (:meth:`stage_plan`, e.g. representation then classifier); :attr:`stage` names the
  current one and :meth:`enter_stage` runs once as each begins, before its first step. The
  stages' steps sum to ``T``, so the method takes exactly the steps every other method takes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from avalanche_clip.strategies.base import CLIPStrategyBase
from avalanche_clip.training.batching import ReplayBatchSampler
from avalanche_clip.training.optimizer_params import update_optimizer_params


def split_steps(total: int, fraction: float, names: tuple[str, str]) -> list[tuple[str, int]]:
    """``total`` steps as ``[(names[0], T − n), (names[1], n)]`` with ``n = round(fraction·T)``
    clamped so each stage gets at least one step (``total >= 2``; 0 steps: no stage)."""
    if total == 0:
        return []
    if total < 2:
        raise ValueError(
            f"the {names[0]} and {names[1]} stages need at least 2 steps per experience, got "
            f"{total}; raise train_epochs or steps_per_experience"
        )
    second = min(max(1, round(fraction * total)), total - 1)
    return [(names[0], total - second), (names[1], second)]


class StagedCLIPStrategy(CLIPStrategyBase):
    """Base of the staged methods (module docstring). Subclasses fill :attr:`method_modules`
    after ``super().__init__`` and implement :meth:`stage_plan` (and usually
    :meth:`enter_stage`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.method_modules = nn.ModuleDict()
        self.planned_steps = 0
        self.stage: str | None = None
        self._plan: list[tuple[str, int]] = []

    # -- stages ----------------------------------------------------------------------------
    def stage_plan(self, total_steps: int) -> list[tuple[str, int]]:
        """``[(stage, steps), ...]`` for an experience of ``total_steps`` steps."""
        return [("train", total_steps)] if total_steps else []

    def enter_stage(self, stage: str) -> None:
        """Called once before the first step of each stage."""

    def stage_at(self, step: int) -> str:
        """The stage that step ``step`` (0-based, within the experience) belongs to."""
        end = 0
        for name, steps in self._plan:
            end += steps
            if step < end:
                return name
        raise RuntimeError(f"step {step} is past this experience's budget of {self.planned_steps} steps")

    def on_batches_planned(self, sampler: ReplayBatchSampler) -> None:
        super().on_batches_planned(sampler)
        self.planned_steps = sum(sampler.schedule)
        self._plan = self.stage_plan(self.planned_steps)
        if sum(steps for _, steps in self._plan) != self.planned_steps:
            raise RuntimeError(f"stage plan {self._plan} does not use the budget of {self.planned_steps} steps")
        self.stage = None

    def _before_training_iteration(self, **kwargs: Any) -> None:
        stage = self.stage_at(self.budget.optimizer_steps)
        if stage != self.stage:
            self.stage = stage
            self.enter_stage(stage)
        super()._before_training_iteration(**kwargs)

    def _before_training_exp(self, **kwargs: Any) -> None:
        super()._before_training_exp(**kwargs)
        self.method_modules.train()

    # -- the optimizer holds the method modules ----------------------------------------------
    def make_optimizer(self, reset_optimizer_state: bool = False, **kwargs: Any) -> None:
        """Avalanche's ``make_optimizer`` over the model's parameters and the method modules'
        (named ``method.<module>.<param>``); parameters of modules since removed leave it."""
        params = dict(self.model.named_parameters())
        for name, param in self.method_modules.named_parameters():
            params[f"method.{name}"] = param
        self.optimized_param_id = update_optimizer_params(
            self.optimizer, params, self.optimized_param_id,
            reset_state=reset_optimizer_state, remove_params=True,
        )

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """The method modules' state (each experience rebuilds everything else)."""
        return {"method_modules": {k: v.detach().clone() for k, v in self.method_modules.state_dict().items()}}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.method_modules.load_state_dict(state["method_modules"])

