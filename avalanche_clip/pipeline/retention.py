"""Retention: how much zero-shot ability survives on held-out sets the stream never touches.

A run's ``retention_sets`` (:class:`~avalanche_clip.scenarios.heldout.HeldOutSet`, classes
disjoint from the stream's by name) are scored after every experience's evaluation by the model
as it is then: for set ``s`` with class names ``c_1..c_k`` (labels ``0..k-1``) and images
``x_1..x_N``, a prompt head over *its* classes — the model's own text path over the run's
templates, ``b_j = normalize(mean_T normalize(E_T(template(c_j))))`` ``[k, D]`` — gives

    R_s     = (1/N) · Σ_i [ argmax_{j ≤ k} s·⟨E_I(x_i)/‖·‖, b_j⟩ = y_i ]    (current model)
    R_s^0   = the same for the untrained model, once per run before training
    drop_s  = R_s^0 − R_s                                                 (positive: lost)

Records carry ``retention`` ``{s: R_s}``, ``retention_drop`` ``{s: drop_s}`` and
``retention_zero_shot`` ``{s: R_s^0}`` (only runs with sets: others' records are unchanged).

The head of a set is a :class:`~avalanche_clip.models.CLIPClassifier` around the run's model (no
copy), so it sees every update; its images pass through the feature cache when the trunk is
frozen (``feature_cache``), as the stream's do. Scoring changes nothing the run reads: the model's
train/eval flags, every random generator and the stream classifier's seen-class mask are as they
were, so every other field of every record is what it is without the sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.evaluation.zero_shot import prompt_head_accuracy
from avalanche_clip.features import apply_feature_cache, default_cache_dir
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.models.prompts import readable_class_name
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.scenarios.heldout import HeldOutSet, heldout_benchmark
from avalanche_clip.training.seeding import rng_state_kept


@dataclass
class HeldOutHead:
    """One set: its (possibly feature-cached) one-experience benchmark and its prompt head."""

    name: str
    classifier: CLIPClassifier
    benchmark: Any


@dataclass
class RetentionProbe:
    """Scores the held-out sets (:meth:`score`) and gives a record's retention fields."""

    heads: list[HeldOutHead]
    device: str
    batch_size: int
    num_workers: int = 0
    #: ``R_s^0`` of each set: the untrained model's, set by :func:`build_retention_probe`
    untrained: dict[str, float] = field(default_factory=dict)

    def score(self) -> dict[str, float]:
        """``{set: R_s}`` of the model as it is now, leaving its flags and every RNG as they were."""
        modes = [(module, module.training) for head in self.heads for module in head.classifier.modules()]
        try:
            with rng_state_kept():
                return {head.name: prompt_head_accuracy(
                    head.classifier, head.benchmark, device=self.device, batch_size=self.batch_size,
                    num_workers=self.num_workers, generator=torch.Generator().manual_seed(0))
                    for head in self.heads}
        finally:
            for module, mode in modes:
                module.training = mode

    def record_fields(self) -> dict[str, dict[str, float]]:
        """``retention``, ``retention_drop`` and ``retention_zero_shot`` of the model now."""
        scores = self.score()
        return {"retention": scores,
                "retention_drop": {name: self.untrained[name] - value for name, value in scores.items()},
                "retention_zero_shot": dict(self.untrained)}


def check_disjoint(name: str, set_classes: list[str], stream_classes: list[str]) -> None:
    """``ConfigError`` when the set shares a class with the stream (names compared as prompt
    text, case-insensitive: ``sea_turtle`` and ``Sea turtle`` are one class)."""
    def key(n: str) -> str:
        return readable_class_name(n).casefold()

    stream = {key(n) for n in stream_classes}
    shared = [n for n in set_classes if key(n) in stream]
    if shared:
        raise ConfigError(
            f"retention set {name!r} shares classes {shared} with the stream; a held-out set must "
            "hold classes the stream never trains on: list the others in its classes")


def cached_heldout(config: RunConfig, benchmark: Any, clip: nn.Module,
                   tokenizer: Any) -> tuple[Any, CLIPClassifier]:
    """A held-out set's benchmark (:func:`heldout_benchmark`) in the run's input form — through the
    feature cache when the trunk is frozen, as the stream's — and the prompt head over its classes
    (the run's templates, around ``clip``: no copy). Draws from the global generator (the cache's
    loaders): callers keep the RNG state around it."""
    head = CLIPClassifier(clip, tokenizer, benchmark.class_names, config.templates)
    # the prompts to the model's device, the model itself untouched (it is there already)
    head.prompt_tokens = head.prompt_tokens.to(config.device)
    benchmark = apply_feature_cache(
        benchmark, head, mode=config.feature_cache, trainable=config.trainable,
        cache_dir=config.cache_dir or default_cache_dir(), device=config.device,
        batch_size=config.eval_mb_size, num_workers=config.num_workers, progress=config.progress)
    return benchmark, head


def build_retention_probe(config: RunConfig, clip: nn.Module, tokenizer: Any, eval_transform: Any,
                          stream_classes: list[str]) -> RetentionProbe | None:
    """The probe of ``config.retention`` over ``clip`` (None without sets), with the untrained
    level ``R_s^0`` scored now; run it before training. Every RNG is left as it was."""
    sets: tuple[HeldOutSet, ...] = config.retention
    if not sets:
        return None
    heads = []
    with rng_state_kept():  # the feature cache's loaders draw from the global generator
        for spec in sets:
            benchmark = heldout_benchmark(spec, eval_transform)
            check_disjoint(spec.name, benchmark.class_names, stream_classes)
            benchmark, head = cached_heldout(config, benchmark, clip, tokenizer)
            heads.append(HeldOutHead(spec.name, head, benchmark))
    probe = RetentionProbe(heads, config.device, config.eval_mb_size, config.num_workers)
    probe.untrained = probe.score()
    return probe


__all__ = ["HeldOutHead", "RetentionProbe", "build_retention_probe", "cached_heldout", "check_disjoint"]
