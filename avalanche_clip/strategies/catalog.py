"""The registered strategies: ours, the paper's CE baseline, Avalanche's baselines, bounds.

Every factory starts from ``setup.classifier``, the zero-shot CLIP classifier of the run, so
every method starts from the zero-shot point. Linear-head baselines swap the text tower for a
head initialised from the class-prompt embeddings (:class:`LinearHeadClassifier`).
"""

from __future__ import annotations

from typing import Any

from avalanche.models import TrainEvalModel  # noqa: F401  (documented type of iCaRL's model)
from avalanche.training import DER, EWC, ICaRL, JointTraining, Naive
from torch import nn

from avalanche_clip.models import LinearHeadClassifier
from avalanche_clip.plugins import ClassBalancedReplayPlugin, SeenClassesPlugin
from avalanche_clip.strategies.contrastive import GCLStrategy, GDROStrategy
from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy
from avalanche_clip.strategies.icarl import attach_icarl_benchmark_info
from avalanche_clip.strategies.registry import CLASS_INCREMENTAL, register_strategy
from avalanche_clip.strategies.setup import StrategySetup


def _ours(setup: StrategySetup, replay_sampling: str, memory_share: float) -> dict[str, Any]:
    return {
        "model": setup.classifier,
        "optimizer": setup.make_optimizer(setup.classifier),
        "mem_size": setup.mem_size,
        "replay_sampling": replay_sampling,
        "memory_share": memory_share,
        "amp": setup.amp,
        "plugins": list(setup.plugins),
        **setup.common(),
    }


@register_strategy("gcl", description="GCL: global contrastive loss between images and label "
                   "prompts with moving-average estimators, class-balanced replay (ours)")
def build_gcl(setup: StrategySetup, *, tau: float = 0.05, gamma: float = 0.9,
              negatives: str = "instance", reset_loss_state: bool = False,
              replay_sampling: str = "union", memory_share: float = 0.5) -> GCLStrategy:
    return GCLStrategy(num_samples=setup.benchmark.num_train_samples, tau=tau, gamma=gamma,
                       negatives=negatives, reset_loss_state=reset_loss_state,
                       **_ours(setup, replay_sampling, memory_share))


@register_strategy("gdro", description="GDRO: class-wise contrastive losses under KL group DRO, "
                   "class-balanced replay (ours)")
def build_gdro(setup: StrategySetup, *, tau: float = 0.5, margin: float = 0.5,
               dro_lambda: float = 1.0, gamma: float = 0.9, class_gamma: float = 0.9,
               reset_loss_state: bool = False, replay_sampling: str = "union",
               memory_share: float = 0.5) -> GDROStrategy:
    return GDROStrategy(num_samples=setup.benchmark.num_train_samples, tau=tau, margin=margin,
                        dro_lambda=dro_lambda, gamma=gamma, class_gamma=class_gamma,
                        reset_loss_state=reset_loss_state,
                        **_ours(setup, replay_sampling, memory_share))


@register_strategy("ce", description="fine-tune CLIP with cross-entropy on prompt logits "
                   "(the paper's CE baseline), same replay as GCL/GDRO")
def build_ce(setup: StrategySetup, *, replay_sampling: str = "union",
             memory_share: float = 0.5) -> CLIPCrossEntropyStrategy:
    return CLIPCrossEntropyStrategy(**_ours(setup, replay_sampling, memory_share))


@register_strategy("zero-shot", memory="none", description="the pretrained CLIP classifier, "
                   "never trained: the floor")
def build_zero_shot(setup: StrategySetup) -> CLIPCrossEntropyStrategy:
    kwargs = _ours(setup, "union", 0.5)
    kwargs.update(mem_size=0, train_epochs=0)
    return CLIPCrossEntropyStrategy(**kwargs)


def _linear_head(setup: StrategySetup) -> LinearHeadClassifier:
    return LinearHeadClassifier.from_clip_classifier(setup.classifier)


def _baseline(setup: StrategySetup, model: nn.Module, *extra_plugins: Any) -> dict[str, Any]:
    return {
        "model": model,
        "optimizer": setup.make_optimizer(model),
        "criterion": nn.CrossEntropyLoss(),
        "plugins": [*setup.plugins, SeenClassesPlugin(setup.classifier.num_classes), *extra_plugins],
        **setup.common(),
    }


@register_strategy("naive", memory="none", description="Avalanche Naive: fine-tune a "
                   "prompt-initialised linear head and the image tower with cross-entropy")
def build_naive(setup: StrategySetup) -> Naive:
    return Naive(**_baseline(setup, _linear_head(setup)))


@register_strategy("replay", memory="required", description="Avalanche Naive + ReplayPlugin "
                   "with a class-balanced buffer (half of each batch from memory by default)")
def build_replay(setup: StrategySetup, *, replay_sampling: str = "share",
                 memory_share: float = 0.5) -> Naive:
    replay = ClassBalancedReplayPlugin(setup.mem_size, sampling=replay_sampling,
                                       memory_share=memory_share)
    return Naive(**_baseline(setup, _linear_head(setup), replay))


@register_strategy("ewc", memory="none", checkpointable=False, description="Avalanche EWC "
                   "(elastic weight consolidation) on the linear-head model")
def build_ewc(setup: StrategySetup, *, ewc_lambda: float = 100.0, mode: str = "separate",
              decay_factor: float | None = None) -> EWC:
    return EWC(ewc_lambda=ewc_lambda, mode=mode, decay_factor=decay_factor,
               **_baseline(setup, _linear_head(setup)))


@register_strategy("der", memory="required", uses_index=False, checkpointable=False,
                   description="Avalanche DER (dark experience replay: logit distillation "
                   "from a class-balanced memory)")
def build_der(setup: StrategySetup, *, alpha: float = 0.1, beta: float = 0.5,
              batch_size_mem: int | None = None) -> DER:
    # Avalanche's DER replays nothing while the memory holds fewer samples than its memory
    # batch (default: train_mb_size), silently turning into Naive at small memory sizes; cap
    # the memory batch at the memory size so DER replays at every size a sweep asks for.
    if batch_size_mem is None:
        batch_size_mem = min(setup.train_mb_size, setup.mem_size)
    return DER(mem_size=setup.mem_size, alpha=alpha, beta=beta, batch_size_mem=batch_size_mem,
               **_baseline(setup, _linear_head(setup)))


@register_strategy("icarl", scenarios=(CLASS_INCREMENTAL,), memory="required", uses_index=False,
                   checkpointable=False, description="Avalanche iCaRL (herding exemplars, "
                   "distillation, nearest-mean classifier)")
def build_icarl(setup: StrategySetup, *, fixed_memory: bool = True) -> ICaRL:
    attach_icarl_benchmark_info(setup.benchmark.train_stream)
    head = _linear_head(setup)
    kwargs = _baseline(setup, head)
    kwargs.pop("model"), kwargs.pop("criterion")
    kwargs["optimizer"] = setup.make_optimizer(head)
    return ICaRL(feature_extractor=head.features, classifier=head.head,
                 memory_size=setup.mem_size, buffer_transform=None, fixed_memory=fixed_memory,
                 **kwargs)


@register_strategy("joint", memory="none", joint=True, description="upper bound: fine-tune CLIP "
                   "with cross-entropy on prompt logits over the whole stream at once")
def build_joint(setup: StrategySetup) -> JointTraining:
    classifier = setup.classifier
    classifier.mark_seen(range(classifier.num_classes))
    return JointTraining(**_baseline(setup, classifier))
