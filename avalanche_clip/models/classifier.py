"""CLIP as a classifier over global class ids.

For an image batch ``x`` with normalised embeddings ``a = E_I(x)/‖·‖`` (``[B, D]``) and class
prompt embeddings ``b_k`` (``[K, D]``, the normalised mean of the normalised template
embeddings of class ``k``), the logits are

    logits[i, k] = s · a_i · b_k     for visible classes k,      −∞ otherwise      ([B, K])

with ``s = exp(logit_scale)`` (CLIP's learned scale, ≤ 100). Visible classes are those marked
seen (``mark_seen``; every class before any is marked) or all classes (``eval_classes="all"``),
so ``argmax`` over the logits is a prediction among the classes trained so far, in the global
class-id space Avalanche's accuracy metrics use.

``eval_classes`` decides what evaluation numbers mean:

- ``"seen"`` (default, the protocol's): after training experience ``t`` predictions fall among
  the classes of experiences ``0..t``. Accuracy on a test experience whose classes are not seen
  yet is 0 by construction, so Avalanche's forward transfer (accuracy on experience ``t+1``
  after training ``t`` minus the initial model's, which with nothing marked sees every class)
  is just minus the zero-shot accuracy on it: it measures nothing about training.
- ``"all"``: predictions among every class, before and after training; accuracy on a future
  experience is the model's (zero-shot) ability on classes it never trained on, and forward
  transfer is how training on earlier experiences changed that ability — the meaningful choice
  to study forward transfer. Past classes then compete with all future ones too.

Class names are indexed by the benchmark's labels; for a benchmark that relabels classes
(Avalanche's ``class_ids_from_zero_from_first_exp=True``) build the classifier with
:meth:`CLIPClassifier.for_benchmark`, and the strategies refuse names that cannot be aligned
(:mod:`avalanche_clip.models.label_alignment`).

On a task-incremental benchmark (several task labels) ``forward(x, task_labels)`` predicts among
the classes of each item's task, one head of prompts per task (``task_heads``,
:mod:`avalanche_clip.models.task_heads`); without task labels, or without heads, it is the
class-incremental classifier above.

Prompt embeddings are cached while the text tower is frozen, and in eval mode (a cache is
used only while the text path's parameters keep the trainability flags and versions it was
computed from, :mod:`avalanche_clip.models.text_path`, and is dropped when the module moves to
another device or dtype), so evaluation encodes each prompt once. When only the text
projection trains, the pooled text features before it are cached instead and the projection
is applied on every call (a [K·T, W] × [W, D] product instead of a transformer pass;
open_clip's built-in and Hugging Face text towers, see :mod:`avalanche_clip.models.text_tower`).
While the text transformer trains, prompts are recomputed on every call, for the requested
classes only.

Example::

    model, _, eval_tf, tokenizer = create_clip("tiny-clip")
    clf = CLIPClassifier(model, tokenizer, ["cat", "dog"], templates="photo")
    clf.mark_seen([0, 1])
    logits = clf(images)                       # [B, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from avalanche_clip.models.label_alignment import benchmark_class_mapping, names_for_benchmark
from avalanche_clip.models.placement import modules_once, own_tensors_on
from avalanche_clip.models.prompts import class_prompts, resolve_templates
from avalanche_clip.models.task_heads import TaskHeads, benchmark_task_heads, head_logits
from avalanche_clip.models.text_path import TextPath
from avalanche_clip.models.text_tower import pooled_text, project_text
from avalanche_clip.models.train_flags import TrainFlagPlans
from avalanche_clip.models.trainable import freeze_frozen_modules

EVAL_CLASS_CHOICES = ("seen", "all")
MAX_LOGIT_SCALE = 100.0


class SeenClassMask(nn.Module):
    """The set of classes trained so far, as a persistent boolean buffer ``seen`` ``[K]``."""

    def __init__(self, num_classes: int, eval_classes: str = "seen") -> None:
        super().__init__()
        if eval_classes not in EVAL_CLASS_CHOICES:
            raise ValueError(f"eval_classes={eval_classes!r}; expected one of {EVAL_CLASS_CHOICES}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.eval_classes = eval_classes
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))

    def mark_seen(self, class_ids: Iterable[int] | torch.Tensor) -> None:
        """Add classes to the seen set (ids must lie in ``[0, K)``)."""
        ids = torch.as_tensor(list(class_ids) if not torch.is_tensor(class_ids) else class_ids)
        ids = ids.to(dtype=torch.long, device=self.seen.device).flatten()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.seen.numel()):
            bad = ids[(ids < 0) | (ids >= self.seen.numel())][0].item()
            raise ValueError(f"class id {bad} is outside [0, {self.seen.numel()})")
        self.seen[ids] = True

    def visible(self) -> torch.Tensor:
        """Sorted ids of the classes predictions may fall on, ``[k]`` long."""
        if self.eval_classes == "all" or not bool(self.seen.any()):
            return torch.arange(self.seen.numel(), device=self.seen.device)
        return torch.nonzero(self.seen).flatten()

    def scatter(self, partial_logits: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """``[B, k]`` logits of the ``visible`` classes → ``[B, K]`` with −∞ elsewhere."""
        full = partial_logits.new_full((partial_logits.shape[0], self.seen.numel()), float("-inf"))
        full[:, visible] = partial_logits
        return full


class CLIPClassifier(nn.Module):
    """A CLIP model, class names and prompt templates → logits over global class ids.

    Args:
        clip: an open_clip CLIP model (``create_clip(...).model``).
        tokenizer: the model's tokenizer.
        class_names: ``K`` names; index = global class id.
        templates: a template-set name (``"photo"``, ``"ensemble"``...) or ``{}``-templates.
        eval_classes: ``"seen"`` (mask classes not yet trained) or ``"all"``.
    """

    def __init__(
        self,
        clip: nn.Module,
        tokenizer: Callable[..., torch.Tensor],
        class_names: Sequence[str],
        templates: str | Sequence[str] = "photo",
        *,
        eval_classes: str = "seen",
    ) -> None:
        super().__init__()
        if len(class_names) == 0:
            raise ValueError("class_names must not be empty")
        self.clip = clip
        self.class_names = list(class_names)
        self.templates = resolve_templates(templates)
        self.classes = SeenClassMask(len(self.class_names), eval_classes)
        #: ``class_mapping[original label] = label`` the names follow (``for_benchmark``); None:
        #: the names are indexed by the benchmark's labels as they are.
        self.class_mapping: list[int] | None = None
        #: per task, the class each of its labels names (task-incremental benchmarks); None:
        #: one head over every class (class-incremental).
        self.task_heads: TaskHeads | None = None
        tokens = tokenizer(class_prompts(self.class_names, self.templates))
        self.register_buffer(
            "prompt_tokens",
            tokens.view(len(self.class_names), len(self.templates), -1),
            persistent=False,
        )
        self._prompt_cache: torch.Tensor | None = None
        self._pooled_cache: torch.Tensor | None = None  # [K, T, W] text features before the projection
        # what each cache was computed from (TextPath.key): a cache is used only while unchanged
        self._prompt_key: tuple | None = None
        self._pooled_key: tuple | None = None
        self._text_path = TextPath(clip)
        self._train_flags = TrainFlagPlans()
        # A replacement for clip.visual on the image path (e.g. the trainable tail of the tower
        # when a feature cache feeds precomputed trunk features). Kept out of the module tree:
        # its parameters belong to ``clip`` already and must not appear twice in state_dict.
        self._image_input: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def for_benchmark(
        cls,
        clip: nn.Module,
        tokenizer: Callable[..., torch.Tensor],
        class_names: Sequence[str],
        benchmark: object,
        templates: str | Sequence[str] = "photo",
        *,
        eval_classes: str = "seen",
    ) -> CLIPClassifier:
        """A classifier for ``benchmark`` from ``class_names`` indexed by the data set's original
        labels: reindexed by the benchmark's ``class_mapping`` when it relabels classes (e.g.
        ``nc_benchmark(..., class_ids_from_zero_from_first_exp=True)``), as they are otherwise.
        A benchmark with several task labels gets one head per task (``task_heads``): labels that
        restart in each experience (``class_ids_from_zero_in_each_exp=True``) name, in task ``t``,
        the original class Avalanche relabelled them from.
        """
        classifier = cls(clip, tokenizer, names_for_benchmark(class_names, benchmark), templates,
                         eval_classes=eval_classes)
        classifier.class_mapping = benchmark_class_mapping(benchmark)
        classifier.task_heads = benchmark_task_heads(benchmark)
        return classifier

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def mark_seen(self, class_ids: Iterable[int] | torch.Tensor) -> None:
        """Make ``class_ids`` visible to :meth:`forward` (see :class:`SeenClassMask`)."""
        self.classes.mark_seen(class_ids)

    def set_image_input(self, encoder: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        """Route images (or precomputed features) through ``encoder`` instead of ``clip.visual``."""
        self._image_input = encoder

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, ...]`` inputs → ``[B, D]`` L2-normalised image embeddings."""
        encoder = self._image_input if self._image_input is not None else self.clip.visual
        return F.normalize(encoder(x), dim=-1)

    def text_trainable(self) -> bool:
        """Whether any parameter on the text path requires a gradient."""
        return self._text_path.trainable()

    def text_trunk_frozen(self) -> bool:
        """Whether everything on the text path but the final projection is frozen (and the
        text tower is one whose pooled features we can read, see ``text_tower``)."""
        return self._text_path.trunk_frozen()

    def class_embeddings(self, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised prompt embeddings ``[k, D]`` of ``class_ids`` (all ``K`` when None)."""
        if class_ids is None:
            class_ids = torch.arange(self.num_classes, device=self.prompt_tokens.device)
        if self._use_cache():
            key = self._text_path.key(self._text_path.parameters())
            if self._prompt_cache is None or key != self._prompt_key:
                with torch.no_grad():
                    self._prompt_cache = self._encode_prompts(
                        torch.arange(self.num_classes, device=self.prompt_tokens.device)
                    )
                self._prompt_key = key
            return self._prompt_cache[class_ids]
        return self._encode_prompts(class_ids)

    def logit_scale(self) -> torch.Tensor:
        """CLIP's temperature ``s = exp(logit_scale)``, capped at 100 as in CLIP training."""
        return self.clip.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, x: torch.Tensor, task_labels: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, ...]`` images → ``[B, K]`` logits, −∞ on classes that are not visible; with
        ``task_labels`` ``[B]`` and ``task_heads``: ``[B, L]`` logits over each item's task's labels
        (:func:`~avalanche_clip.models.task_heads.head_logits`)."""
        image = self.encode_images(x)
        if task_labels is None or self.task_heads is None:
            return self.logits_of(image)
        return head_logits(self, image, task_labels, self.task_heads)[0]

    def logits_of(self, image: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, K]`` logits ``s·a·b_k`` of normalised embeddings ``image`` ``[B, D]`` for
        ``classes`` (default: the visible ones), −∞ elsewhere."""
        classes = self.classes.visible() if classes is None else classes
        text = self.class_embeddings(classes).to(image.dtype)
        return self.classes.scatter(self.logit_scale() * image @ text.t(), classes)

    def train(self, mode: bool = True) -> CLIPClassifier:
        # every module's flag, then frozen parts back to eval; replayed from a plan while the
        # module tree and its trainable choice are unchanged (see models.train_flags)
        self._train_flags.set(self, mode, lambda: self._set_train_flags(mode))
        if mode:
            if self.text_trainable():
                self._prompt_cache = None  # free it; it would be recomputed anyway (its key)
            if not self.text_trunk_frozen():
                self._pooled_cache = None
        return self

    def _set_train_flags(self, mode: bool) -> None:
        super().train(mode)
        if mode:
            freeze_frozen_modules(self.clip)

    def _use_cache(self) -> bool:
        return not self.text_trainable() or (not self.training and not torch.is_grad_enabled())

    def _encode_prompts(self, class_ids: torch.Tensor) -> torch.Tensor:
        if self.text_trunk_frozen():
            key = self._text_path.key(self._text_path.trunk())
            if self._pooled_cache is None or key != self._pooled_key:
                with torch.no_grad():
                    self._pooled_cache = self._pooled_text(self.prompt_tokens)
                self._pooled_key = key
            per_template = project_text(self.clip, self._pooled_cache[class_ids])
        else:
            tokens = self.prompt_tokens[class_ids]  # [k, T, L]
            k, n_templates, length = tokens.shape
            per_template = self.clip.encode_text(tokens.reshape(k * n_templates, length))
            per_template = per_template.view(k, n_templates, -1)
        per_template = F.normalize(per_template.float(), dim=-1)
        return F.normalize(per_template.mean(dim=1), dim=-1)

    def _pooled_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[k, T, L]`` prompt tokens → ``[k, T, W]`` text features before the projection."""
        k, n_templates, length = tokens.shape
        return pooled_text(self.clip, tokens.reshape(k * n_templates, length)).view(k, n_templates, -1)

    def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        """``nn.Module.to``, returning at once when it would move nothing: a plain device move
        (no dtype, no memory format) to the exact device every parameter, gradient and buffer is
        on already. Avalanche calls ``model.to(device)`` before every training and evaluation
        experience (20 times in a 5-experience run), and torch's ``_apply`` would visit each of
        effnet-lite0-clip's 326 modules and reassign each tensor to itself (~15 ms a call on one
        CPU thread). ``"cuda"`` without an index never matches a tensor's device, so it takes
        torch's path."""
        device, dtype, _, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and dtype is None and memory_format is None and self._all_on(device):
            return self
        return super().to(*args, **kwargs)

    def _all_on(self, device: torch.device) -> bool:
        # one walk over the modules' own tensors (parameters() and buffers() would walk twice)
        return all(own_tensors_on(module, device) for module in modules_once(self))

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # .to() / .double() / .cuda(): a cached tensor on the old device or dtype is stale; a
        # .to() where everything already is (Avalanche's, at every experience) keeps the caches.
        before = self._text_path.placement()
        module = super()._apply(fn, recurse)
        if not before or self._text_path.placement() != before:
            self._prompt_cache = self._pooled_cache = None
        return module

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._prompt_cache = self._pooled_cache = None
        return super()._load_from_state_dict(*args, **kwargs)
