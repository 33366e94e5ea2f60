"""ConSE: a zero-shot image–text dual encoder built from an ImageNet classifier and a sentence
encoder, with no image–text training (Norouzi et al., "Zero-Shot Learning by Convex Combination
of Semantic Embeddings", ICLR 2014).

``minilm-effnet-conse`` is such a model, *not* CLIP: its image embedding is the
class-probability-weighted mean of the text embeddings of ImageNet's 1,000 class names. For
trunk features ``f(x)`` (``[B, 1280]``, EfficientNet-Lite0) and MiniLM's mean-pooled text
features ``u(t)`` (``[N, 384]``)::

    p(x) = softmax((W f(x) + c) / T)       [B, 1000]   W, c: the trunk's ImageNet classifier
    a(x) = p(x) · E P                      [B, D]      image embedding (D = 384)
    b(t) = u(t) P                          [N, D]      text embedding

``E`` (``[1000, D]``) holds the unit-normalised MiniLM embeddings of "a photo of a {name}." for
open_clip's curated ImageNet class names, computed once when the model is built, and
``P = I − m mᵀ`` (``m`` the unit mean of ``E``'s rows) removes the one direction every ImageNet
name shares (the largest single gain measured in issue 12). ``P`` is symmetric, so both maps are
plain linear layers: they *are* the model's projections. The image head is
:class:`ConSEHead` (the classifier, then ``embed`` with weight ``(E P)ᵀ``); the text projection
is open_clip's bias-free ``text.proj`` with weight ``P``. ``trainable="projections"`` trains
``W``, ``c``, ``embed`` and ``text.proj``; ``T`` is fixed (a buffer).

Dropping the softmax (a purely linear image head) costs 4–6 points of zero-shot accuracy (issue
12), which is why the head is a module of its own rather than open_clip's ``timm_proj``.

Measured choices (zero-shot top-1, "a photo of a {}."):

- ``T = 3``: CIFAR-10 test (10,000) at 128 px: T=2 35.2 %, T=3 37.4 %, T=4 37.9 %; PACS test
  (1,998) at 128 px: 34.0 / 35.3 / 36.5 %; at 224 px T=2…4 lie within a point of each other
  (CIFAR-10 1,000 images 45.6 / 44.9 / 45.0 %, PACS 39.4 / 39.6 / 39.0 %).
- ``logit_scale = ln 5`` (``init_logit_scale`` in the JSON config), i.e. logits ``5 · cos``:
  the zero-shot cross-entropy (1,000 CIFAR-10 / all PACS test images) is lowest at ``s`` = 6.3
  (CIFAR-10, 128 px), 7.0 (224 px) and 1.75 (PACS, whose errors are confident); 5 lies
  between. CLIP's initial 1/0.07 = 14.3 would give cross-entropies of 2.09 and 4.19 instead of
  1.73 and 2.16 (128 px): ConSE's cosines spread wider (class-to-class std ≈ 0.2, top-1 − top-2
  gap ≈ 0.11–0.17) than CLIP's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from avalanche_clip.models.text_tower import pooled_text

#: The prompt each ImageNet concept is embedded with.
CONCEPT_TEMPLATE = "a photo of a {}."
#: Softmax temperature of the concept probabilities (measured; see the module doc).
TEMPERATURE = 3.0
_CONCEPT_BATCH = 100  # prompts per text-encoder pass while building E (bounds peak memory)

_concepts: dict[tuple, torch.Tensor] = {}
_concepts_lock = threading.Lock()


class ConSEHead(nn.Module):
    """Trunk features ``[B, F]`` → ``softmax((W f + c)/T) · embed`` ``[B, D]`` (not normalised).

    Args:
        in_features: ``F``, the trunk's pooled feature width.
        n_concepts: number of classifier classes (ImageNet: 1,000).
        embed_dim: ``D``, the joint embedding width.
        temperature: ``T``, the softmax temperature.
    """

    def __init__(self, in_features: int, n_concepts: int, embed_dim: int, temperature: float) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.classifier = nn.Linear(in_features, n_concepts)
        self.embed = nn.Linear(n_concepts, embed_dim, bias=False)
        # a buffer, so a checkpoint carries the temperature it was trained with
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(self.classifier(features) / self.temperature, dim=-1)
        return self.embed(probabilities)


def imagenet_concepts() -> tuple[str, ...]:
    """open_clip's curated names of the 1,000 ImageNet-1k classes, in class-index order.

    998 are distinct: as in OpenAI's list, "missile" (657, 744) and "sunglasses" (836, 837)
    name two classes each, whose probability mass then goes to one embedding.
    """
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return tuple(IMAGENET_CLASSNAMES)


def concept_embeddings(clip: nn.Module, tokenizer: Callable[..., torch.Tensor], *,
                       cache_key: tuple | None = None) -> torch.Tensor:
    """Unit-normalised pooled text features of :data:`CONCEPT_TEMPLATE` for every ImageNet
    concept: ``E`` ``[1000, W]``, float32 on CPU.

    Computed with ``clip``'s text tower before its projection (about 2–4 s of a 6-layer MiniLM
    on CPU), once per process and ``cache_key`` (which must identify the text weights and
    tokenizer; None: never remembered).
    """
    with _concepts_lock:
        if cache_key is not None and cache_key in _concepts:
            return _concepts[cache_key]
        prompts = [CONCEPT_TEMPLATE.format(name) for name in imagenet_concepts()]
        device = next(clip.parameters()).device
        chunks = []
        pad = clip.text.config.pad_token_id
        with torch.no_grad():
            for start in range(0, len(prompts), _CONCEPT_BATCH):
                tokens = tokenizer(prompts[start : start + _CONCEPT_BATCH])
                # mean pooling ignores padding, so trailing all-padding columns can go: about
                # 20 tokens instead of the context's 32, 40 % less compute, same E to ~1e-6
                tokens = tokens[:, : int((tokens != pad).sum(dim=1).max())]
                chunks.append(pooled_text(clip, tokens.to(device)).float().cpu())
        concepts = F.normalize(torch.cat(chunks), dim=-1)
        if cache_key is not None:
            _concepts[cache_key] = concepts
        return concepts


def centring_projection(concepts: torch.Tensor) -> torch.Tensor:
    """``P = I − m mᵀ`` ``[W, W]``, ``m`` the unit mean of the rows of ``concepts`` ``[K, W]``."""
    mean = F.normalize(concepts.mean(dim=0), dim=0)
    return torch.eye(concepts.shape[1], dtype=concepts.dtype) - torch.outer(mean, mean)


def attach_conse_head(clip: nn.Module, *, temperature: float = TEMPERATURE) -> ConSEHead:
    """Set ``clip.visual.head`` to a randomly initialised :class:`ConSEHead` of the right shape
    (on the device and in the dtype of the model's linear layers) and return it."""
    visual = clip.visual
    projection = clip.text.proj
    head = ConSEHead(visual.trunk.num_features, len(imagenet_concepts()), projection.out_features,
                     temperature)
    visual.head = head.to(device=projection.weight.device, dtype=projection.weight.dtype)
    return visual.head


def load_conse_weights(clip: nn.Module, classifier_weight: torch.Tensor, classifier_bias: torch.Tensor,
                       concepts: torch.Tensor) -> None:
    """Initialise ``clip`` as ConSE (see the module doc): the head's classifier from the ImageNet
    classifier (``[1000, F]``, ``[1000]``), its ``embed`` from ``E P`` and ``text.proj`` from
    ``P``, with ``E`` = ``concepts`` ``[1000, D]`` (unit rows)."""
    head = clip.visual.head
    if not isinstance(head, ConSEHead):
        raise TypeError(f"clip.visual.head is a {type(head).__name__}; call attach_conse_head first")
    centring = centring_projection(concepts)
    with torch.no_grad():
        head.classifier.weight.copy_(classifier_weight)
        head.classifier.bias.copy_(classifier_bias)
        head.embed.weight.copy_((concepts @ centring).t())
        clip.text.proj.weight.copy_(centring)
