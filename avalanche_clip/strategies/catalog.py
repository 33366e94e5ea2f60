"""The registered strategies: ours, the paper's CE baseline, Avalanche's baselines, bounds.

Every factory starts from ``setup.model()``: the run's zero-shot classifier with the protocol's
head (the CLIP prompt head over the seen classes by default; ``head: linear`` swaps in a
prompt-initialised linear head for every method), so every method starts from the zero-shot
point and predicts the same way. Every method takes the protocol's step budget and batch
composition, and every replay method but iCaRL (whose herding is its method) the shared,
seed-determined memory (``setup.protocol()``).

Under this protocol Avalanche's ``Naive`` and ``Replay`` are cross-entropy fine-tuning without
and with the memory: ``naive`` and ``replay`` are the ``ce`` strategy restricted to those memory
uses (a test checks that Avalanche's own ``Naive`` class with the same plugins gives the same
records). EWC is Avalanche's ``EWCPlugin`` on that strategy, exactly as Avalanche's ``EWC`` is the
plugin on ``Naive``.

Registering reads no strategy class: each factory imports its class when it builds one, so the
registry's metadata (what ``report`` and ``list`` read) loads without Avalanche.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from avalanche_clip.common.values import check_options
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS
from avalanche_clip.strategies.option_rules import (
    CASSLE_RULES,
    CO2L_RULES,
    DER_RULES,
    EWC_RULES,
    FOSTER_RULES,
    JOINT_RULES,
    TWO_VIEWS,
    ZSCL_RULES,
)
from avalanche_clip.strategies.registry import CLASS_INCREMENTAL, register_strategy
from avalanche_clip.strategies.setup import StrategySetup

if TYPE_CHECKING:  # the classes are imported when a factory builds one (they import Avalanche)
    from avalanche_clip.strategies.cassle import CaSSLeStrategy
    from avalanche_clip.strategies.co2l import Co2LStrategy
    from avalanche_clip.strategies.contrastive import GCLStrategy, GDROStrategy
    from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy
    from avalanche_clip.strategies.der import DERStrategy
    from avalanche_clip.strategies.foster import FOSTERStrategy
    from avalanche_clip.strategies.icarl import BudgetedICaRL
    from avalanche_clip.strategies.joint import CLIPJointStrategy
    from avalanche_clip.strategies.zscl import ReferenceSet, ZSCLStrategy

# The tuned hyper-parameters' defaults: derived from the offline proxies' tuned values, one
# table for the factories and the strategy classes (avalanche_clip.strategies.defaults).
GCL, GDRO, EWC, DER = (METHOD_DEFAULTS[m] for m in ("gcl", "gdro", "ewc", "der"))
CO2L, FOSTER, CASSLE = (METHOD_DEFAULTS[m] for m in ("co2l", "foster", "cassle"))
ZSCL = METHOD_DEFAULTS["zscl"]


def _ours(setup: StrategySetup, *extra_plugins: Any, mem_size: int | None = None) -> dict[str, Any]:
    model = setup.model()
    return {
        "model": model,
        "optimizer": setup.make_optimizer(model),
        "mem_size": setup.mem_size if mem_size is None else mem_size,
        "amp": setup.amp,
        "plugins": [*setup.plugins, *extra_plugins],
        **setup.protocol(),
        **setup.common(),
    }


@register_strategy("gcl", distributed=True,
                   description="GCL: global contrastive loss between images and label "
                   "prompts with moving-average estimators (ours)",
                   # tau down to 0.002: on [0.01, 0.5] the best lay at the bottom (memory 20); up to
                   # 5: on [0.002, 0.5] at the top (0.39, memory 100). gamma is a moving-average
                   # weight in (0, 1]: 1 (the plain mini-batch loss) is its limit, not the space's
                   search_space={"tau": {"type": "float", "low": 0.002, "high": 5.0, "log": True},
                                 "gamma": {"type": "float", "low": 0.1, "high": 1.0, "limit": ["high"]}})
def build_gcl(setup: StrategySetup, *, tau: float = GCL["tau"], gamma: float = GCL["gamma"],
              negatives: str = "instance", reset_loss_state: bool = False) -> GCLStrategy:
    from avalanche_clip.strategies.contrastive import GCLStrategy

    return GCLStrategy(num_samples=getattr(setup.benchmark, "num_train_samples", None), tau=tau, gamma=gamma,
                       negatives=negatives, reset_loss_state=reset_loss_state, **_ours(setup))


@register_strategy("gdro", distributed=True,
                   description="GDRO: class-wise contrastive losses under KL group DRO "
                   "(ours)",
                   # tau over [0.01, 10] and dro_lambda up to 1000: tuned on [0.05, 1] and [0.05, 5], the
                   # best values lay at the top (0.93 on the comparison, 4.8 on PACS), then on
                   # [0.05, 2] and [0.05, 50] at the top again (1.9 at memory 100, 47 at 200 on the
                   # comparison under batch negatives). A large dro_lambda makes the class weights
                   # uniform (plain averaging), a large tau the negatives' weights: both are GDRO's
                   # own limits, so the space reaches them rather than stopping short. dro_lambda
                   # down to 0.001 (towards the worst class alone): at 0.07 on [0.05, 1000] (memory 0).
                   # The hinge's margin up to 2, the largest gap of two cosines (every hinge active: a
                   # squared loss, its limit): at 0.98 on [0.1, 1] (memory 50). gamma as GCL's.
                   search_space={"tau": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
                                 "margin": {"type": "float", "low": 0.1, "high": 2.0, "limit": ["high"]},
                                 "dro_lambda": {"type": "float", "low": 0.001, "high": 1000.0, "log": True},
                                 "gamma": {"type": "float", "low": 0.1, "high": 1.0, "limit": ["high"]}})
def build_gdro(setup: StrategySetup, *, tau: float = GDRO["tau"], margin: float = GDRO["margin"],
               dro_lambda: float = GDRO["dro_lambda"], gamma: float = GDRO["gamma"], class_gamma: float = 0.9,
               reset_loss_state: bool = False, inclusion_weights: bool = True) -> GDROStrategy:
    from avalanche_clip.strategies.contrastive import GDROStrategy

    return GDROStrategy(num_samples=getattr(setup.benchmark, "num_train_samples", None), tau=tau, margin=margin,
                        dro_lambda=dro_lambda, gamma=gamma, class_gamma=class_gamma,
                        reset_loss_state=reset_loss_state, inclusion_weights=inclusion_weights,
                        **_ours(setup))


@register_strategy("ce", distributed=True, description="fine-tune CLIP with cross-entropy on the seen classes "
                   "(the paper's CE baseline; with memory, Avalanche's Replay)")
def build_ce(setup: StrategySetup) -> CLIPCrossEntropyStrategy:
    from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy

    return CLIPCrossEntropyStrategy(**_ours(setup))


@register_strategy("zero-shot", distributed=True, memory="none", trains=False, description="the pretrained model, "
                   "never trained: the floor")
def build_zero_shot(setup: StrategySetup) -> CLIPCrossEntropyStrategy:
    from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy

    kwargs = _ours(setup, mem_size=0)
    kwargs.update(train_epochs=0)
    return CLIPCrossEntropyStrategy(**kwargs)


@register_strategy("naive", distributed=True, memory="none", description="Avalanche's Naive under the protocol: "
                   "cross-entropy fine-tuning without memory")
def build_naive(setup: StrategySetup) -> CLIPCrossEntropyStrategy:
    from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy

    return CLIPCrossEntropyStrategy(**_ours(setup, mem_size=0))


@register_strategy("replay", distributed=True, memory="required", description="Avalanche's Replay under the "
                   "protocol: cross-entropy fine-tuning with the shared memory")
def build_replay(setup: StrategySetup) -> CLIPCrossEntropyStrategy:
    from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy

    return CLIPCrossEntropyStrategy(**_ours(setup))


@register_strategy("ewc", memory="none", option_rules=EWC_RULES,
                   description="Avalanche's EWC "
                   "(elastic weight consolidation) plugin on cross-entropy fine-tuning",
                   # up to 1e8: tuned on [1, 1e6], CIFAR-10's best lay at the top (6.8e5); down to
                   # 1e-3 (plain CE in effect): on [1, 1e8] the digits' best lay at the bottom
                   search_space={"ewc_lambda": {"type": "float", "low": 1e-3, "high": 1e8, "log": True}})
def build_ewc(setup: StrategySetup, *, ewc_lambda: float = EWC["ewc_lambda"], mode: str = "separate",
              decay_factor: float | None = None) -> CLIPCrossEntropyStrategy:
    from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy
    from avalanche_clip.training.plugins.ewc import TrainableEWCPlugin

    check_options(EWC_RULES, ewc_lambda=ewc_lambda)  # the plugin gets the value as given
    plugin = TrainableEWCPlugin(ewc_lambda=ewc_lambda, mode=mode, decay_factor=decay_factor)
    return CLIPCrossEntropyStrategy(**_ours(setup, plugin, mem_size=0))


@register_strategy("der", memory="required", option_rules=DER_RULES,
                   description="Avalanche's DER (dark experience "
                   "replay: logit distillation and CE on memory samples) on the shared memory",
                   # alpha down to 1e-3: on [0.01, 1] the best lay at the bottom (memory 200)
                   search_space={"alpha": {"type": "float", "low": 0.001, "high": 1.0, "log": True},
                                 # beta up to 3: tuned on [0, 1], the best lay at the top (0.99);
                                 # 0 (plain DER, without DER++'s cross-entropy on memory labels) stays in it
                                 # up to 10: on [0, 3] the best lay at the top (2.9, memory 50)
                                 "beta": {"type": "float", "low": 0.0, "high": 10.0}})
def build_der(setup: StrategySetup, *, alpha: float = DER["alpha"], beta: float = DER["beta"]) -> DERStrategy:
    from avalanche_clip.strategies.der import DERStrategy

    return DERStrategy(alpha=alpha, beta=beta, **_ours(setup))


@register_strategy("co2l", option_rules=CO2L_RULES, views_per_item=TWO_VIEWS,
                   description="Co2L: asymmetric supervised contrastive learning and "
                   "instance-wise relation distillation on a projection of the image embedding, "
                   "then the head, class-balanced, on the shared memory",
                   search_space={
                       # tau and kappa up to 5: on [0.05, 1] the best lay at the top (digits,
                       # memory 20 and 50); then tau down to 0.01 (0.058 at memory 100), kappa up
                       # to 50 (4.8 at 200), ird_lambda down to 0.01 (0.11 at 20)
                       "tau": {"type": "float", "low": 0.01, "high": 5.0, "log": True},
                       "ird_lambda": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
                       "kappa": {"type": "float", "low": 0.05, "high": 50.0, "log": True},
                       # up to 2: tuned on [0.005, 0.5], the best lay at the top (0.47); down to
                       # 5e-4: 0.0061 at memory 50
                       "kappa_past": {"type": "float", "low": 5e-4, "high": 2.0, "log": True},
                       "classifier_fraction": {"type": "float", "low": 0.1, "high": 0.7},
                   })
def build_co2l(setup: StrategySetup, *, tau: float = CO2L["tau"], kappa: float = CO2L["kappa"],
               kappa_past: float = CO2L["kappa_past"], ird_lambda: float = CO2L["ird_lambda"],
               base_temperature: float = 0.07, projection_dim: int = 128,
               classifier_fraction: float = CO2L["classifier_fraction"]) -> Co2LStrategy:
    from avalanche_clip.strategies.co2l import Co2LStrategy

    return Co2LStrategy(tau=tau, kappa=kappa, kappa_past=kappa_past, ird_lambda=ird_lambda,
                        base_temperature=base_temperature, projection_dim=projection_dim,
                        classifier_fraction=classifier_fraction, **_ours(setup))


@register_strategy("foster", scenarios=(CLASS_INCREMENTAL,), option_rules=FOSTER_RULES,
                   description="FOSTER: feature "
                   "boosting (a new image path beside the frozen old one, logits alignment, "
                   "feature enhancement, distillation) then compression back into one path",
                   search_space={
                       # beta1 down to 0 (no re-weighting), temperature down to 0.5: on [0.9,
                       # 0.999] and [1, 4] the best lay at the bottom (memory 0, 20)
                       "beta1": {"type": "float", "low": 0.0, "high": 0.999},
                       "beta2": {"type": "float", "low": 0.0, "high": 0.999},  # as beta1 (memory 200)
                       "temperature": {"type": "float", "low": 0.5, "high": 4.0},
                       "lambda_okd": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
                       # from 0.05: on [0.2, 0.6] the best lay at the bottom (memory 20); to 0.95:
                       # 0.76 on [0.05, 0.8] (memory 0)
                       "compression_fraction": {"type": "float", "low": 0.05, "high": 0.95},
                   })
def build_foster(setup: StrategySetup, *, beta1: float = FOSTER["beta1"], beta2: float = FOSTER["beta2"],
                 temperature: float = FOSTER["temperature"], lambda_okd: float = FOSTER["lambda_okd"],
                 compression_fraction: float = FOSTER["compression_fraction"]) -> FOSTERStrategy:
    from avalanche_clip.strategies.foster import FOSTERStrategy

    return FOSTERStrategy(beta1=beta1, beta2=beta2, temperature=temperature, lambda_okd=lambda_okd,
                          compression_fraction=compression_fraction, **_ours(setup))


@register_strategy("cassle", memory="none", option_rules=CASSLE_RULES,
                   views_per_item=TWO_VIEWS,
                   description="CaSSLe (supervised contrastive): SupCon "
                   "and predictive contrastive distillation to the frozen previous model, then "
                   "the head; no memory",
                   search_space={
                       "tau": {"type": "float", "low": 0.05, "high": 1.0, "log": True},
                       "distill_temperature": {"type": "float", "low": 0.05, "high": 1.0, "log": True},
                       "distill_lambda": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
                       "classifier_fraction": {"type": "float", "low": 0.1, "high": 0.7},
                   })
def build_cassle(setup: StrategySetup, *, tau: float = CASSLE["tau"],
                 distill_temperature: float = CASSLE["distill_temperature"],
                 distill_lambda: float = CASSLE["distill_lambda"], projection_hidden: int = 2048,
                 projection_dim: int = 128, predictor_hidden: int = 2048,
                 classifier_fraction: float = CASSLE["classifier_fraction"]) -> CaSSLeStrategy:
    from avalanche_clip.strategies.cassle import CaSSLeStrategy

    return CaSSLeStrategy(tau=tau, distill_temperature=distill_temperature,
                          distill_lambda=distill_lambda, projection_hidden=projection_hidden,
                          projection_dim=projection_dim, predictor_hidden=predictor_hidden,
                          classifier_fraction=classifier_fraction, **_ours(setup, mem_size=0))


@register_strategy("zscl", option_rules=ZSCL_RULES,
                   description="ZSCL: CE plus distillation from the frozen initial model in the "
                   "image-text feature space on reference images (held-out training data by "
                   "default), and a weight ensemble",
                   search_space={
                       # distill_lambda over [0.001, 100] and ensemble_fraction up to 0.99: on [0.1,
                       # 20], then [0.01, 20], and [0.02, 0.5], then 0.95, the best lay at a bound
                       # (memory 20 to 200); a fraction of 1 or more would average only the start
                       # and the first step, so 0.99 is its limit; down to 0.001 (0.012 at memory 0)
                       "distill_lambda": {"type": "float", "low": 0.001, "high": 100.0, "log": True},
                       "ensemble_fraction": {"type": "float", "low": 0.001, "high": 0.99, "log": True,
                                             "limit": ["high"]},
                   })
def build_zscl(setup: StrategySetup, *, distill_lambda: float = ZSCL["distill_lambda"],
               ensemble_fraction: float = ZSCL["ensemble_fraction"], temperature: float = 2.0,
               reference_fraction: float = 0.1, weight_ensemble: bool = True,
               reference: ReferenceSet | None = None) -> ZSCLStrategy:
    from avalanche_clip.strategies.zscl import ZSCLStrategy

    return ZSCLStrategy(distill_lambda=distill_lambda, ensemble_fraction=ensemble_fraction,
                        temperature=temperature, reference_fraction=reference_fraction,
                        weight_ensemble=weight_ensemble, reference=reference, **_ours(setup))


@register_strategy("icarl", scenarios=(CLASS_INCREMENTAL,), memory="required", uses_index=False,
                   checkpointable=False, own_exemplars=True,
                   description="Avalanche's iCaRL (herding exemplars, distillation) with the "
                   "protocol's budget and head, scored with the head (its nearest-mean classifier's "
                   "accuracy recorded beside)")
def build_icarl(setup: StrategySetup, *, fixed_memory: bool = True) -> BudgetedICaRL:
    from avalanche_clip.models.linear_head import NormalizedImageEncoder
    from avalanche_clip.strategies.icarl import (
        BudgetedICaRL,
        PromptHead,
        attach_icarl_benchmark_info,
    )
    from avalanche_clip.training.plugins import SeenClassesPlugin

    if setup.mem_size < setup.classifier.num_classes:
        raise ValueError(
            f"icarl's nearest-mean classifier needs an exemplar of every class: mem_size must be "
            f">= {setup.classifier.num_classes} (the number of classes), got {setup.mem_size}"
        )
    attach_icarl_benchmark_info(setup.benchmark.train_stream)
    model = setup.model()
    features = NormalizedImageEncoder(model.clip.visual) if setup.head == "text" else model.features
    if setup.head == "text":
        features.set_image_input(model._image_input)
        head: nn.Module = PromptHead(model)
    else:
        head = model.head
    trained = nn.ModuleDict({"features": features, "head": head})
    return BudgetedICaRL(feature_extractor=features, classifier=head,
                         optimizer=setup.make_optimizer(trained), memory_size=setup.mem_size,
                         buffer_transform=None, fixed_memory=fixed_memory,
                         plugins=[*setup.plugins, SeenClassesPlugin(model.num_classes)],
                         **setup.protocol(), **setup.common())


@register_strategy("joint", distributed=True, memory="none", joint=True, description="upper bound: cross-entropy "
                   "on the whole stream at once, with the continual methods' total steps")
def build_joint(setup: StrategySetup) -> CLIPJointStrategy:
    from avalanche_clip.strategies.joint import CLIPJointStrategy

    return CLIPJointStrategy(**_ours(setup, mem_size=0))


@register_strategy("joint-converged", distributed=True, memory="none", joint=True, option_rules=JOINT_RULES,
                   description="upper bound "
                   "trained towards convergence: joint with budget_scale times the total steps",
                   search_space={"budget_scale": {"type": "float", "low": 1.0, "high": 8.0}})
def build_joint_converged(setup: StrategySetup, *,
                          budget_scale: float = METHOD_DEFAULTS["joint-converged"]["budget_scale"]
                          ) -> CLIPJointStrategy:
    from avalanche_clip.strategies.joint import CLIPJointStrategy

    return CLIPJointStrategy(budget_scale=budget_scale, **_ours(setup, mem_size=0))
