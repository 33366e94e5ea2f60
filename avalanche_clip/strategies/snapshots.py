"""The trainable image path of a classifier, its head as logits of an embedding, and frozen
copies of both (the "previous model" of distillation methods, FOSTER's old and expanded
models).

Both protocol heads are linear in the normalised image embedding ``a`` (``[B, D]``):

- ``CLIPClassifier``: ``logits = s · a · Bᵀ`` with ``B`` the prompt embeddings (``[K, D]``);
- ``LinearHeadClassifier``: ``logits = W · a + c``;

so a head is ``(W, c)`` with ``W = s·B, c = 0`` for the prompt head, and both classifiers'
``logits_of`` apply the live one to any embedding (``m.logits_of(m.encode_images(x)) == m(x)``).

The image path is what maps the classifier's inputs to ``a`` before normalisation: the whole
image tower, or — with the frozen-trunk feature cache (``classifier.set_image_input``) — only its
trainable tail (for ``trainable: projections`` on a timm tower, the image projection). Copying
the path copies what training can change, not the cached trunk.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avalanche_clip.models.linear_head import LinearHeadClassifier


def image_path(model: nn.Module) -> nn.Module:
    """The live module computing ``model``'s unnormalised image embedding from its inputs."""
    owner = model.features if isinstance(model, LinearHeadClassifier) else model
    tower = owner.image_encoder if isinstance(model, LinearHeadClassifier) else model.clip.visual
    route = owner._image_input  # the feature cache's trainable tail, when one is set
    path = tower if route is None else route
    if not isinstance(path, nn.Module):
        raise TypeError(f"the image input of {type(model).__name__} is a {type(path).__name__}, "
                        "not an nn.Module: it cannot be copied or distilled")
    return path


class FrozenImageEncoder(nn.Module):
    """A frozen copy of a classifier's image path: ``x → E(x)/‖E(x)‖`` (``[B, D]``), always in
    eval mode, never trained (``requires_grad=False``), on the classifier's device."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.path = copy.deepcopy(image_path(model))
        self.path.requires_grad_(False)
        self.path.eval()

    def train(self, mode: bool = True) -> FrozenImageEncoder:
        return super().train(False)  # a frozen copy never updates BatchNorm statistics

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.path(x), dim=-1)


class FrozenHead:
    """The head's ``(W, c)`` at the time of the copy: ``a → a·Wᵀ + c`` over all ``K`` classes.

    Attributes:
        weight: ``[K, D]`` float32; bias: ``[K]`` float32 (0 for the prompt head).
    """

    def __init__(self, model: nn.Module) -> None:
        with torch.no_grad():
            if isinstance(model, LinearHeadClassifier):
                weight, bias = model.head.weight, model.head.bias
            else:
                weight = model.logit_scale() * model.class_embeddings()
                bias = torch.zeros(weight.shape[0], device=weight.device)
            self.weight = weight.detach().float().clone()
            self.bias = bias.detach().float().clone()

    def __call__(self, image: Tensor) -> Tensor:
        return image.float() @ self.weight.t() + self.bias

    def linear(self) -> nn.Linear:
        """A new trainable ``nn.Linear(D, K)`` starting from this head (FOSTER's auxiliary head)."""
        layer = nn.Linear(self.weight.shape[1], self.weight.shape[0], device=self.weight.device)
        with torch.no_grad():
            layer.weight.copy_(self.weight)
            layer.bias.copy_(self.bias)
        return layer


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int, *, batch_norm: bool = False) -> nn.Sequential:
    """``Linear → [BatchNorm1d] → ReLU → Linear``: the projectors and predictors of the
    contrastive methods."""
    for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers += [nn.ReLU(), nn.Linear(hidden_dim, out_dim)]
    return nn.Sequential(*layers)


def embedding_dim(model: nn.Module) -> int:
    """``D``, the size of the classifier's image embedding (the width of its head)."""
    if isinstance(model, LinearHeadClassifier):
        return int(model.head.in_features)
    with torch.no_grad():
        return int(model.class_embeddings(torch.zeros(1, dtype=torch.long,
                                                      device=model.prompt_tokens.device)).shape[1])


def head_is_trainable(model: nn.Module) -> bool:
    """Whether the head has a parameter that trains (text path / logit scale, or the linear head)."""
    if isinstance(model, LinearHeadClassifier):
        return any(p.requires_grad for p in model.head.parameters())
    return model.text_trainable() or bool(model.clip.logit_scale.requires_grad)
