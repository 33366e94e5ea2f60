"""What every strategy factory receives for one run: the model, the data, the budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from avalanche_clip.common.values import (
    check_choice,
    check_finite_non_negative,
    check_finite_positive,
    check_int,
)
from avalanche_clip.models import CLIPClassifier, LinearHeadClassifier
from avalanche_clip.strategies.defaults import TRAIN_EPOCHS, TRAIN_LOGITS, WEIGHT_DECAY

OPTIMIZERS = ("adamw", "sgd")
HEADS = ("text", "linear")


def check_setup_values(values: Any, *, lr_required: bool = False) -> None:
    """The one range rule of each shared training value, for ``StrategySetup`` and the run config
    (``parse_run_config`` asks it of a ``RunConfig``): ``values`` has the attributes ``lr``,
    ``weight_decay``, ``train_mb_size``, ``eval_mb_size``, ``train_epochs`` and ``mem_size``.

    ``lr`` may be None (each method's default) unless ``lr_required``. Raises ``ValueError``
    naming the first bad value.
    """
    if values.lr is not None or lr_required:
        check_finite_positive("lr", values.lr)
    check_finite_non_negative("weight_decay", values.weight_decay)
    check_int("train_mb_size", values.train_mb_size, 1)
    check_int("eval_mb_size", values.eval_mb_size, 1)
    check_int("train_epochs", values.train_epochs, 0)
    check_int("mem_size", values.mem_size, 0)


@dataclass
class StrategySetup:
    """Shared settings of a comparison: same encoder, head, optimizer, budget, batches, memory.

    Attributes:
        classifier: a fresh zero-shot :class:`CLIPClassifier` for this run (its trainable
            parts already chosen with ``set_trainable``).
        benchmark: the scenario: from ``build_scenario`` or any Avalanche classification
            benchmark (``train_stream``; ``num_train_samples`` preallocates GCL / GDRO state when
            present).
        device: where training runs.
        mem_size: total replay memory for methods that use one.
        train_mb_size, eval_mb_size: as in Avalanche.
        train_epochs: passes over each experience's new data (default: the recipe the methods'
            defaults were tuned under, :mod:`avalanche_clip.strategies.defaults`).
        lr, weight_decay, optimizer: one optimizer recipe for every method (``adamw``/``sgd``);
            ``lr=None`` (the default): each method's own default learning rate
            (``build_strategy`` fills it in from :data:`~avalanche_clip.strategies.defaults.METHOD_DEFAULTS`).
        amp: mixed precision for our strategies (``fp32``/``bf16``/``fp16``; CUDA only).
        plugins: extra Avalanche plugins for every strategy.
        evaluator: the ``EvaluationPlugin`` (or None for Avalanche's default).
        seed: seeds every method's batches and the shared memory's exemplars.
        replay_sampling, memory_share: the batch composition of every replay method.
        steps_per_experience: explicit step budget (None: ``train_epochs`` passes over each
            experience's new data).
        head: ``"text"`` (the CLIP prompt head over the seen classes, for every method) or
            ``"linear"`` (a prompt-initialised linear head, for every method: the ablation).
        train_logits: the classes every trained method's classification (or contrastive)
            logits range over: ``"batch"`` (those present in the batch) or ``"seen"`` (all seen
            so far); :class:`~avalanche_clip.strategies.base.CLIPStrategyBase`, iCaRL's BCE.
    """

    classifier: CLIPClassifier
    benchmark: Any
    device: torch.device | str = "cpu"
    mem_size: int = 0
    train_mb_size: int = 32
    eval_mb_size: int = 128
    train_epochs: int = TRAIN_EPOCHS
    lr: float | None = None
    weight_decay: float = WEIGHT_DECAY
    optimizer: str = "adamw"
    amp: str = "fp32"
    plugins: list[Any] = field(default_factory=list)
    evaluator: Any = None
    seed: int = 0
    replay_sampling: str = "union"
    memory_share: float = 0.5
    steps_per_experience: int | None = None
    head: str = "text"
    train_logits: str = TRAIN_LOGITS[0]

    def __post_init__(self) -> None:
        # replay_sampling, memory_share and steps_per_experience are checked by the strategies
        # that use them (their StepBudget, avalanche_clip.strategies.budget), once, when built
        check_choice("head", self.head, HEADS)
        check_choice("train_logits", self.train_logits, TRAIN_LOGITS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_setup_values(self)

    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        """The shared optimizer over ``module``'s trainable parameters."""
        if self.lr is None:
            raise ValueError("StrategySetup.lr is None (each method's default): build the strategy "
                             "with build_strategy(name, setup), which fills in the method's learning rate, "
                             "or give lr=...")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            # Avalanche still wants an optimizer (zero-shot, a fully frozen model).
            params = [nn.Parameter(torch.zeros(1))]
        # foreach: one kernel per operation over all parameters instead of a Python loop per
        # tensor. Torch picks it by itself on CUDA only; on CPU it computes the same values bit
        # for bit (tested) and an AdamW step on the ConSE proxy's 1.81 M trained weights takes
        # 0.84x the time (benchmarks/bench_optimizer.py, benchmarks/README.md). The fused kernels
        # are faster still but round differently, which would move committed records.
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay,
                                   foreach=True)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, foreach=True)

    def model(self) -> nn.Module:
        """The run's classifier with the protocol's head (the same for every method)."""
        if self.head == "linear":
            return LinearHeadClassifier.from_clip_classifier(self.classifier)
        return self.classifier

    def protocol(self) -> dict[str, Any]:
        """Keyword arguments of the step budget, the shared memory and the negatives."""
        return {
            "seed": self.seed,
            "replay_sampling": self.replay_sampling,
            "memory_share": self.memory_share,
            "steps_per_experience": self.steps_per_experience,
            "train_logits": self.train_logits,
        }

    def common(self) -> dict[str, Any]:
        """Keyword arguments every Avalanche strategy constructor takes."""
        kwargs: dict[str, Any] = {
            "train_mb_size": self.train_mb_size,
            "train_epochs": self.train_epochs,
            "eval_mb_size": self.eval_mb_size,
            "device": self.device,
        }
        if self.evaluator is not None:
            kwargs["evaluator"] = self.evaluator
        return kwargs
