"""Split an open_clip image tower into a frozen part and a trainable tail.

``visual(x) == tail(frozen(x))`` (in eval mode), where ``frozen`` holds only parameters that do
not train under the chosen ``trainable`` setting, so its outputs can be computed once and
cached. Where the split falls:

=======================  ==========================================  ==========================
``trainable``            timm tower (e.g. ``effnet-lite0-clip``)      ViT tower (``ViT-B-16``)
=======================  ==========================================  ==========================
projections, text, none  pooled trunk features ``[B, C]``            pooled token ``[B, W]``
``last:K``               feature map before the last K stages         tokens before the last K
                         ``[B, C, H, W]``                             blocks ``[B, T, W]``
all, image               no split: the whole tower trains             no split
=======================  ==========================================  ==========================

Both parts are thin wrappers around the tower's own submodules (no copies): the tail's
parameters are the CLIP model's, so the optimizer, ``requires_grad`` flags and ``.to()`` apply.
A timm tower's tail ends in whatever module is its ``head`` (a linear projection, or the ConSE
head of ``minilm-effnet-conse``: the pooled features ``[B, 1280]`` are what is cached).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from avalanche_clip.models.trainable import parse_trainable


class TowerSplitError(ValueError):
    """The tower cannot be split for this ``trainable`` setting."""


@dataclass
class TowerSplit:
    """``frozen`` computes what is cached; ``tail`` maps it to the tower's output."""

    frozen: nn.Module
    tail: nn.Module
    point: str  # "pooled" or "last:K": where the split falls (part of the cache key)


class _TimmPooled(nn.Module):
    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.trunk = visual.trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class _TimmHead(nn.Module):
    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.head = visual.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class _TimmStem(nn.Module):
    """EfficientNet-style trunk up to (not including) its last ``k`` stages."""

    def __init__(self, visual: nn.Module, k: int) -> None:
        super().__init__()
        trunk = visual.trunk
        self.stem = nn.Sequential(trunk.conv_stem, trunk.bn1)
        self.stages = nn.Sequential(*list(trunk.blocks)[:-k])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class _TimmTail(nn.Module):
    """The last ``k`` stages, the head convolution, pooling and the projection."""

    def __init__(self, visual: nn.Module, k: int) -> None:
        super().__init__()
        trunk = visual.trunk
        self.stages = nn.Sequential(*list(trunk.blocks)[-k:])
        self.trunk = trunk
        self.head = visual.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk.bn2(self.trunk.conv_head(self.stages(x)))
        return self.head(self.trunk.forward_head(x))


class _ViTFrozen(nn.Module):
    """Embeddings and the first ``n_blocks`` blocks (None: all blocks, then pooling).

    Only those parts are registered (the tower itself is kept out of the module tree), so the
    parameters and ``state_dict`` of this module are exactly the frozen, cached part: the
    trainable projection / last blocks must not fail the frozen check nor enter the cache key.
    """

    def __init__(self, visual: nn.Module, n_blocks: int | None) -> None:
        super().__init__()
        self._tower = (visual,)  # a tuple: not a submodule
        self.n_blocks = n_blocks  # None: all blocks, then pool
        for name in ("conv1", "class_embedding", "positional_embedding", "patch_dropout", "ln_pre"):
            setattr(self, name, getattr(visual, name))
        blocks = visual.transformer.resblocks
        self.blocks = blocks if n_blocks is None else blocks[:n_blocks]
        if n_blocks is None:
            self.ln_post = visual.ln_post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        visual = self._tower[0]
        x = visual._embeds(x)
        if self.n_blocks is None:
            return visual._pool(visual.transformer(x))[0]
        for block in self.blocks:
            x = block(x)
        return x


class _ViTTail(nn.Module):
    def __init__(self, visual: nn.Module, first_block: int | None) -> None:
        super().__init__()
        self.visual = visual
        self.first_block = first_block  # None: only the projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first_block is not None:
            for block in self.visual.transformer.resblocks[self.first_block :]:
                x = block(x)
            x = self.visual._pool(x)[0]
        return x @ self.visual.proj if self.visual.proj is not None else x


def split_image_tower(visual: nn.Module, trainable: str) -> TowerSplit:
    """The frozen / trainable split of ``visual`` for ``trainable`` (see the module table)."""
    choice, k = parse_trainable(trainable)
    if choice in ("all", "image"):
        raise TowerSplitError(
            f"trainable={trainable!r} trains the whole image tower, so nothing can be cached; "
            "choose projections, text, none or last:K"
        )
    is_timm = hasattr(visual, "trunk") and hasattr(visual, "head")
    is_vit = hasattr(visual, "transformer") and hasattr(visual, "_embeds") and hasattr(visual, "_pool")
    if getattr(visual, "attn_pool", None) is not None:
        raise TowerSplitError("image towers with attentional pooling are not supported by the feature cache")
    if choice != "last":
        if is_timm:
            return TowerSplit(_TimmPooled(visual), _TimmHead(visual), "pooled")
        if is_vit:
            return TowerSplit(_ViTFrozen(visual, None), _ViTTail(visual, None), "pooled")
    else:
        assert k is not None
        if is_timm and all(hasattr(visual.trunk, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
            if k >= len(visual.trunk.blocks):
                raise TowerSplitError(f"trainable={trainable!r} but the trunk has {len(visual.trunk.blocks)} stages")
            return TowerSplit(_TimmStem(visual, k), _TimmTail(visual, k), f"last:{k}")
        if is_vit:
            n = len(visual.transformer.resblocks)
            if k >= n:
                raise TowerSplitError(f"trainable={trainable!r} but the tower has {n} blocks")
            return TowerSplit(_ViTFrozen(visual, n - k), _ViTTail(visual, n - k), f"last:{k}")
    raise TowerSplitError(f"no feature-cache split for a {type(visual).__name__} tower with trainable={trainable!r}")
