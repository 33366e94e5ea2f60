"""ZSCL (Zheng et al., ICCV 2023, "Preventing Zero-Shot Transfer Degradation in Continual
Learning of Vision-Language Models") on our CLIP base, under the protocol.

Per step, on the protocol's batch (the same batches, step budget, head, negatives and memory as
the CE baseline) and on a batch of ``N`` reference images drawn beside it::

    L = CE(seen-class logits of the task rows) + λ · (L_img + L_txt)

- **Task loss**: the CE baseline's (:func:`~avalanche_clip.losses.masked.masked_cross_entropy`
  over the seen classes), on the batch's rows that are not reference samples (below). The
  official code adds label smoothing 0.2 (``ls``); under the protocol every method's task loss is
  CE's, so we do not.
- **Distillation** (:func:`~avalanche_clip.losses.zscl.zscl_distillation`, the math there): the
  student's image features of the reference images against the *teacher's* text features of the
  reference texts, distilled from the teacher's, image→text and text→image, temperature
  ``T = 2``, one weight ``λ`` for both directions. Teacher = the model frozen at the start of
  training, i.e. the model the strategy is built with (the official ``ref_model`` is
  ``clip.load`` afresh, the zero-shot model, for every task: ``cil/continual_clip/models.py``,
  ``ClassIncremental.train``; ``mtil/src/models/finetune.py`` by default), kept for the whole
  stream. The logit scale is the teacher's (the
  official code multiplies both sides by ``model.logit_scale``, which it never trains).
- **Weight ensemble** (the paper's "WE", official ``merge_we`` in ``cil/continual_clip/utils.py``
  with ``--we``/``avg_freq``): the interval is ``I = max(1, round(f·S))`` steps for an experience
  of ``S`` steps (``f = ensemble_fraction``); at each experience's start ``θ̄ ← θ``, ``n ← 0``;
  after the optimizer step with 0-based index ``k`` of the experience, when ``k % I == 0``:
  ``n ← n + 1``, ``θ̄ ← (n·θ̄ + θ) / (n + 1)`` (a uniform mean of the start weights and the
  snapshots); at the experience's end the model takes ``θ̄``. Over the trainable parameters
  (frozen ones never change). The official loop runs ``S + 1`` iterations; we keep the protocol's ``S``.

**Reference data.** The paper distils on ImageNet images with reference texts (ImageNet class
names or Conceptual Captions; the official class-incremental code samples Conceptual Captions
images and captions). Here:

- a :class:`ReferenceSet` (``reference=``): any dataset whose items start with a model input,
  and the teacher's text features of its class names
  (:mod:`avalanche_clip.strategies.reference_sets`). From a run config,
  ``strategy_options: {zscl: {reference: {folder: ..., classes: [...], max_per_class: N}}}``
  (a ``retention_sets`` entry's schema, ``name`` optional, checked into a
  :class:`~avalanche_clip.scenarios.heldout.HeldOutSet` by ``check_reference``) is built by the
  pipeline (:mod:`avalanche_clip.pipeline.zscl_reference`) the way a retention set is: its
  images in the run's input form (cached trunk features with the feature cache, eval-transformed
  images otherwise), its texts the initial model's prompt features of its class names over the
  run's templates; one that is also a retention set of the run is refused (it would leak into
  the retention measurement). :func:`folder_reference` builds one from an ImageFolder-style
  directory outside the pipeline (raw images: for a model without the feature cache);
- by default, a held-out part of the training data: in each experience, a seed-determined
  ``reference_fraction`` of its samples (by the generator ``(seed, "zscl-reference",
  experience)``, independent of the batches) is held out of ZSCL's task loss and joins the
  reference pool; the reference texts are the prompts of the pool's classes (classes seen so
  far), encoded by the teacher. The protocol's loader, batches and steps are untouched (every
  other method, and ZSCL's step budget, stay CE's): held-out rows are only left out of the
  cross-entropy. Reference batches are drawn uniformly, with replacement, from the pool by a
  generator seeded by ``(seed, "zscl-reference-batches")``, in eval (un-augmented) form like the
  official ``test_preprocess``; with the feature cache they are the cached inputs, as for training.

Defaults: ``λ = 5`` (the official class-incremental code: ``loss + 5·loss_ZSCL +
5·loss_ZSCL_2`` in ``cil/continual_clip/models.py``) and ``f = 0.1``: the official intervals are a
tenth of a task's steps in both settings (``avg_freq: 10`` in ``cil/configs/class/*-ZSCL.yaml``
over one epoch of an ImageNet-100 task, 13,000 images at batch 128, ~100 steps; ``--avg_freq 100``
over ``--iterations 1000`` in ``mtil/scripts/ZSCL.sh``), and a fixed interval of 10 steps would
average our experiences of a few dozen steps back towards their start. Final accuracy on the
defaults' digits stream (``tests/test_defaults_learn.py``'s: 60 train images per class, memory
100, seed 0; zero-shot 0.16, replay 0.25): 0.15 with ``I = 10``, 0.22 with ``f = 0.1``, 0.39
without the ensemble (``weight_ensemble=False``), 0.30 with ``λ = 1``. Temperature 2
(``distillation(..., T=2)``; ``mtil/src/args.py --T``). The reference batch has the training
batch's size (the official reference loader's ``batch_size``).
``reference_fraction = 0.1`` is ours (the paper has no held-out default). The learning rate is
CE's default: the official ``7e-6``/``1e-5`` are for fine-tuning the whole ViT-B/16 with batch
128, not our setting. λ, f and the learning rate are tuned like every method's.

What it keeps (``tests/strategies/test_zscl.py``, real CIFAR-10, minilm-effnet-conse, 2 of 5
experiences trained): zero-shot accuracy on the 6 never-trained classes 0.525 against CE's
0.428 (untrained 0.545; seed 1: 0.445, 0.408, 0.502).

Checkpoints (:meth:`ZSCLStrategy.checkpoint_state`): the teacher is frozen when the strategy is
built, from the model it is given — the pretrained model a resumed run rebuilds from its config —
so a checkpoint holds only its fingerprint (checked on resume); the held-out ids (the pool is
rebuilt from the stream's earlier experiences, by the same seeded draw, and checked against them)
and the reference batches' generator state. A given reference is rebuilt from the config too: the
checkpoint holds only the fingerprint of its size and texts (checked on resume). The weight ensemble lives within an experience and
is empty at every checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avalanche_clip.common.errors import AvalancheClipError
from avalanche_clip.common.values import check_options
from avalanche_clip.features.fingerprint import tensors_fingerprint
from avalanche_clip.losses.masked import masked_cross_entropy
from avalanche_clip.losses.zscl import zscl_distillation
from avalanche_clip.strategies.base import CLIPStrategyBase
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS
from avalanche_clip.strategies.option_rules import ZSCL_RULES
from avalanche_clip.strategies.reference_sets import ReferenceSet, check_reference, folder_reference
from avalanche_clip.strategies.snapshots import FrozenImageEncoder
from avalanche_clip.training.batching import ReplayBatchSampler, derived_seed
from avalanche_clip.training.plugins import experience_classes
from avalanche_clip.training.plugins.memory import sample_ids

ZSCL = METHOD_DEFAULTS["zscl"]


class ZSCLCheckpointError(AvalancheClipError, ValueError):
    """A checkpoint's ZSCL state does not fit the strategy resuming it."""


class ZSCLStrategy(CLIPStrategyBase):
    """ZSCL on the shared memory and budget (module docstring).

    Args:
        model, optimizer: the classifier and its optimizer.
        distill_lambda: ``λ >= 0``, the weight of the distillation (both directions).
        ensemble_fraction: ``f`` in (0, 1): weight-ensemble updates every ``round(f·S)`` of an
            experience's ``S`` steps.
        temperature: ``T > 0`` of the distillation.
        reference: a :class:`ReferenceSet`; None: the held-out part of the training data.
        reference_fraction: share of each experience held out as reference (default reference).
        weight_ensemble: False leaves out the weight ensemble (the paper's ablation).
        **kwargs: :class:`CLIPStrategyBase` arguments (``mem_size``, ``seed`` ...).
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, distill_lambda: float = ZSCL["distill_lambda"],
                 ensemble_fraction: float = ZSCL["ensemble_fraction"], temperature: float = 2.0,
                 reference: ReferenceSet | None = None, reference_fraction: float = 0.1,
                 weight_ensemble: bool = True, **kwargs: Any) -> None:
        self.distill_lambda, self.ensemble_fraction, self.temperature, self.reference_fraction = check_options(
            ZSCL_RULES, distill_lambda=distill_lambda, ensemble_fraction=ensemble_fraction,
            temperature=temperature, reference_fraction=reference_fraction)
        if reference is not None and not isinstance(reference, ReferenceSet):  # a config entry: built by the pipeline
            raise TypeError(f"reference must be a ReferenceSet or None, got {type(reference).__name__}; a "
                            "config's reference entry is built into one by avalanche_clip.pipeline.zscl_reference")
        super().__init__(model=model, optimizer=optimizer, criterion=criterion, **kwargs)
        self.reference = reference
        self.weight_ensemble = bool(weight_ensemble)
        self.teacher: FrozenImageEncoder | None = None
        self.teacher_scale: Tensor | None = None
        self.teacher_text: Tensor | None = None  # [K, D] (default reference) or [C, D] (given)
        self.pool: list[Any] = []  # held-out subsets of the experiences so far (eval form)
        self.pool_classes: list[int] = []
        self.held_out = torch.zeros(0, dtype=torch.long)  # sorted held-out sample ids
        self.reference_generator = torch.Generator().manual_seed(
            derived_seed(self.budget.seed, "zscl-reference-batches"))
        # each trained parameter beside its running mean over the experience, listed once an
        # experience (not once a step)
        self.ensemble: list[tuple[nn.Parameter, Tensor]] = []
        self.ensemble_count = 0
        self.ensemble_interval = 1
        self.experience_step = 0
        self._saved_held_out: Tensor | None = None  # a checkpoint's, checked once the pool is rebuilt
        self._freeze_teacher()  # the model as given: the pretrained one, rebuilt alike on resume

    def on_batches_planned(self, sampler: ReplayBatchSampler) -> None:
        super().on_batches_planned(sampler)
        self.ensemble_interval = max(1, round(self.ensemble_fraction * sum(sampler.schedule)))

    # -- the teacher and the reference pool -------------------------------------------------
    def _before_training_exp(self, **kwargs: Any) -> None:
        super()._before_training_exp(**kwargs)
        assert self.teacher is not None and self.teacher_text is not None
        self.teacher.to(self.device)
        self.teacher_text = self.teacher_text.to(self.device)
        if self.reference is None:
            index = self.experience.current_experience
            while len(self.pool) < index:  # resumed: the earlier experiences' held-out parts
                earlier = self.experience.origin_stream[len(self.pool)]
                self._hold_out(len(self.pool), self.sample_ids.dataset_with_ids(earlier), earlier)
            self._check_saved_held_out()
            self._hold_out(index, self.indexed_experience_dataset, self.experience)
        self.ensemble = [(p, p.detach().clone()) for p in self._ensembled()]
        self.ensemble_count = 0
        self.experience_step = 0

    @torch.no_grad()
    def _freeze_teacher(self) -> None:
        self.teacher = FrozenImageEncoder(self.model).to(self.device)
        self.teacher_scale = self.model.logit_scale().detach().float().clone()
        if self.reference is None:
            self.teacher_text = self.model.class_embeddings().detach().float().clone()
        else:
            self.teacher_text = self.reference.text_features.detach().float().to(self.device)

    def _hold_out(self, index: int, data: Any, experience: Any) -> None:
        """Hold out the seed-determined ``reference_fraction`` of experience ``index``'s ``data``."""
        n = len(data)
        k = min(n, max(1, round(self.reference_fraction * n)))
        generator = torch.Generator().manual_seed(derived_seed(self.budget.seed, "zscl-reference", index))
        positions = sorted(torch.randperm(n, generator=generator)[:k].tolist())
        ids = sample_ids(data)
        chosen = torch.tensor([ids[p] for p in positions], dtype=torch.long)
        self.held_out = torch.sort(torch.cat([self.held_out, chosen])).values
        self.pool.append(data.subset(positions).eval())
        self.pool_classes = sorted(set(self.pool_classes) | set(experience_classes(experience)))

    def _check_saved_held_out(self) -> None:
        if self._saved_held_out is None:
            return
        if not torch.equal(self._saved_held_out, self.held_out):
            raise ZSCLCheckpointError(
                f"the rebuilt reference pool holds {len(self.held_out)} ids, not the checkpoint's "
                f"{len(self._saved_held_out)} (or other ids): the stream or the seed differs")
        self._saved_held_out = None

    # -- checkpoints --------------------------------------------------------------------------
    def teacher_fingerprint(self) -> str:
        assert self.teacher is not None
        return tensors_fingerprint({k: v.detach().cpu() for k, v in self.teacher.path.state_dict().items()})

    def reference_fingerprint(self) -> str | None:
        """A given reference's size and texts (None for the held-out default)."""
        if self.reference is None:
            return None
        return tensors_fingerprint({"size": torch.tensor(len(self.reference.images)),
                                    "text": self.reference.text_features.detach().float().cpu()})

    def checkpoint_state(self) -> dict[str, Any]:
        """The teacher's fingerprint, the held-out ids and the reference generator's state (and a
        given reference's fingerprint: the default's state keeps the keys it always had)."""
        state = {"teacher_fingerprint": self.teacher_fingerprint(), "held_out": self.held_out.clone(),
                 "reference_generator": self.reference_generator.get_state()}
        if self.reference is not None:
            state["reference_fingerprint"] = self.reference_fingerprint()
        return state

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        if state["teacher_fingerprint"] != self.teacher_fingerprint():
            raise ZSCLCheckpointError(
                "the teacher this strategy was built with (the model it was given) differs from the "
                "checkpoint's: build it from the same pretrained model and config")
        if state.get("reference_fingerprint") != self.reference_fingerprint():
            raise ZSCLCheckpointError(
                "the reference set this strategy was built with differs from the checkpoint's (another "
                "reference option, or its images or class names changed): resume with the same reference")
        self._saved_held_out = state["held_out"].clone()
        self.reference_generator.set_state(state["reference_generator"])

    def reference_batch(self) -> tuple[Tensor, Tensor]:
        """``(x [N, ...], text [C, D])``: a reference batch and its texts' teacher features."""
        if self.reference is not None:
            sources, text = [self.reference.images], self.teacher_text
        else:
            sources = self.pool
            text = self.teacher_text[torch.tensor(self.pool_classes, device=self.teacher_text.device)]
        sizes = [len(s) for s in sources]
        total = sum(sizes)
        if total == 0:
            raise ValueError("the ZSCL reference set is empty: give reference images, or a "
                             "reference_fraction that holds out at least one sample")
        draws = torch.randint(total, (self.train_mb_size,), generator=self.reference_generator).tolist()
        starts = torch.tensor([0, *sizes]).cumsum(0).tolist()
        items = []
        for j in draws:
            which = next(i for i in range(len(sizes)) if j < starts[i + 1])
            items.append(sources[which][j - starts[which]][0])
        return torch.stack([torch.as_tensor(x) for x in items]).to(self.device), text

    # -- the loss ---------------------------------------------------------------------------
    def task_rows(self) -> Tensor:
        """``[B]`` bool: the batch's rows in the task loss (not held out as reference)."""
        if self.reference is not None or self.mb_index is None or not len(self.held_out):
            return torch.ones(len(self.mb_y), dtype=torch.bool, device=self.device)
        return ~torch.isin(self.mb_index, self.held_out.to(self.mb_index.device))

    def training_loss(self) -> Tensor:
        rows = self.task_rows()
        # negatives under train_logits=batch: the classes of the rows that train (not the reference)
        task = masked_cross_entropy(self.classification_logits(self.mb_output, rows)[rows], self.mb_y[rows])
        if self.distill_lambda == 0:
            return task
        assert self.teacher is not None and self.teacher_scale is not None
        images, text = self.reference_batch()
        student = self.model.encode_images(images)
        teacher = self.teacher(images)
        distill = zscl_distillation(student, teacher, text, scale=self.teacher_scale, temperature=self.temperature)
        return task + self.distill_lambda * distill

    # -- the weight ensemble ----------------------------------------------------------------
    def _ensembled(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _after_update(self, **kwargs: Any) -> None:
        super()._after_update(**kwargs)
        if self.weight_ensemble and self.experience_step % self.ensemble_interval == 0:
            self.ensemble_count += 1
            n = self.ensemble_count
            with torch.no_grad():
                for p, mean in self.ensemble:
                    mean.mul_(n).add_(p.detach()).div_(n + 1)
        self.experience_step += 1

    def _after_training_exp(self, **kwargs: Any) -> None:
        if self.weight_ensemble and self.ensemble_count > 0:
            with torch.no_grad():
                for p, mean in self.ensemble:
                    p.copy_(mean)
        self.ensemble = []
        super()._after_training_exp(**kwargs)


__all__ = ["ZSCL_RULES", "ReferenceSet", "ZSCLCheckpointError", "ZSCLStrategy", "check_reference",
           "folder_reference"]
