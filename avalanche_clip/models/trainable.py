"""Choose which parts of a CLIP model train.

Choices (``trainable=``):

==============  ==========================================================================
``all``         every parameter, the logit scale included
``image``       the image tower and its projection
``text``        the text tower and its projection
``projections`` only the two projections into the joint embedding space
``last:K``      the last K blocks of each tower, what follows them (final norms, timm
                head convs) and both projections
``none``        nothing (zero-shot evaluation)
==============  ==========================================================================

Freezing is done with ``requires_grad=False`` (Avalanche puts *every* parameter into the
optimizer on the first experience, so leaving parameters out of it does not freeze them).
Frozen BatchNorm layers must also stop updating their running statistics; see
:func:`freeze_frozen_modules` (which also stops dropout in frozen parts), which the classifiers
call from ``train()``.

Each tower's parameters are split into groups — ``stem`` (embeddings and everything before the
blocks), ``block:i``, ``tail`` (after the blocks) and ``proj`` — for open_clip's
``VisionTransformer`` and ``TimmModel`` image towers (whatever module is set as a ``TimmModel``'s
``head``, e.g. the ConSE head of ``minilm-effnet-conse``, is its ``proj``), its built-in text
transformer and its Hugging Face text tower (``text.transformer.encoder.layer.i`` are the blocks,
``text.proj`` the projection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

TRAINABLE_CHOICES = ("all", "image", "text", "projections", "last:K", "none")

_BLOCK = re.compile(
    r"^(?:transformer\.resblocks|trunk\.blocks|trunk\.stages|transformer\.encoder\.layer)\.(\d+)\."
)


@dataclass(frozen=True)
class TrainableSummary:
    """How many parameters (elements) train after :func:`set_trainable`."""

    spec: str
    trainable: int
    total: int


def parse_trainable(spec: str) -> tuple[str, int | None]:
    """``"last:2"`` → ``("last", 2)``; other choices → ``(choice, None)``."""
    if spec in ("all", "image", "text", "projections", "none"):
        return spec, None
    match = re.fullmatch(r"last:(\d+)", str(spec))
    if match and int(match.group(1)) >= 1:
        return "last", int(match.group(1))
    raise ValueError(f"trainable={spec!r} is not one of {TRAINABLE_CHOICES} (K an integer >= 1)")


def image_parameter_groups(visual: nn.Module) -> dict[str, str]:
    """Parameter name (relative to ``visual``) → group for an open_clip image tower."""
    tail_children = _timm_tail_children(visual)
    groups = {}
    for name, _ in visual.named_parameters():
        block = _BLOCK.match(name)
        if block:
            groups[name] = f"block:{block.group(1)}"
        elif name == "proj" or name.startswith("head."):
            groups[name] = "proj"
        elif name.startswith(("ln_post", "attn_pool")) or name.split(".")[:2] in tail_children:
            groups[name] = "tail"
        else:
            groups[name] = "stem"
    return groups


def text_parameter_groups(clip: nn.Module) -> dict[str, str]:
    """Parameter name (relative to ``clip``) → group for open_clip's built-in or Hugging Face
    text tower."""
    groups = {}
    text_root = "text." if hasattr(clip, "text") else ""
    for name, _ in clip.named_parameters():
        if name.startswith("visual.") or name in ("logit_scale", "logit_bias"):
            continue
        if text_root and not name.startswith(text_root):
            continue
        local = name[len(text_root) :]
        block = _BLOCK.match(local)
        if block:
            groups[name] = f"block:{block.group(1)}"
        elif local.startswith(("text_projection", "proj.")):
            groups[name] = "proj"
        elif local.startswith(("ln_final", "transformer.pooler.")):
            groups[name] = "tail"
        else:
            groups[name] = "stem"
    return groups


def set_trainable(clip: nn.Module, spec: str) -> TrainableSummary:
    """Set ``requires_grad`` on ``clip``'s parameters according to ``spec``."""
    wanted = trainable_parameter_names(clip, spec)
    for name, param in clip.named_parameters():
        param.requires_grad_(name in wanted)
    total = sum(p.numel() for p in clip.parameters())
    trainable = sum(p.numel() for p in clip.parameters() if p.requires_grad)
    return TrainableSummary(spec=spec, trainable=trainable, total=total)


def trainable_parameter_names(clip: nn.Module, spec: str) -> set[str]:
    """The names (as ``clip.named_parameters()`` gives them) of the parameters that ``spec``
    trains; :func:`set_trainable` freezes every other one."""
    choice, last_k = parse_trainable(spec)
    image = {f"visual.{n}": g for n, g in image_parameter_groups(clip.visual).items()}
    text = text_parameter_groups(clip)
    wanted = set()
    if choice == "all":
        wanted = {n for n, _ in clip.named_parameters()}
    elif choice == "image":
        wanted = set(image)
    elif choice == "text":
        wanted = set(text)
    elif choice == "projections":
        wanted = {n for n, g in {**image, **text}.items() if g == "proj"}
    elif choice == "last":
        assert last_k is not None
        wanted = _last_blocks(image, last_k, "image") | _last_blocks(text, last_k, "text")
    return wanted


def freeze_frozen_modules(module: nn.Module) -> None:
    """Put every submodule whose parameters are all frozen into eval mode.

    A frozen part left in train mode would still change what it computes: BatchNorm would
    update its running mean / variance (features drift, and a feature cache of that tower would
    be wrong), and dropout (MiniLM's 0.1 in ``minilm-effnet-conse``) would make its outputs
    random, so a cached prompt embedding would keep one random draw. Modules without parameters
    of their own (a bare dropout) follow their parent.
    """
    _freeze_frozen(module, {})


def _freeze_frozen(module: nn.Module, summary: dict[int, tuple[bool, bool]]) -> None:
    """:func:`freeze_frozen_modules` with each module's (has parameters, all frozen) computed once
    (``summary``, by ``id``) instead of once per ancestor."""
    has_params, all_frozen = _frozen_summary(module, summary)
    if has_params and all_frozen:
        module.eval()
        return
    for child in module.children():
        _freeze_frozen(child, summary)


def _frozen_summary(module: nn.Module, summary: dict[int, tuple[bool, bool]]) -> tuple[bool, bool]:
    """(whether ``module`` or a descendant has a parameter, whether all of them are frozen)."""
    key = id(module)
    if key not in summary:
        own = [p for p in module._parameters.values() if p is not None]
        has_params, all_frozen = bool(own), not any(p.requires_grad for p in own)
        for child in module.children():
            child_has, child_frozen = _frozen_summary(child, summary)
            has_params, all_frozen = has_params or child_has, all_frozen and child_frozen
        summary[key] = (has_params, all_frozen)
    return summary[key]


def _last_blocks(groups: dict[str, str], k: int, tower: str) -> set[str]:
    block_ids = sorted({int(g.split(":")[1]) for g in groups.values() if g.startswith("block:")})
    if not block_ids:
        raise ValueError(f"trainable='last:{k}' needs a {tower} tower with blocks; none found")
    if k > len(block_ids):
        raise ValueError(
            f"trainable='last:{k}' but the {tower} tower has only {len(block_ids)} blocks"
        )
    kept = {f"block:{i}" for i in block_ids[-k:]} | {"tail", "proj"}
    return {name for name, group in groups.items() if group in kept}


def _timm_tail_children(visual: nn.Module) -> list[list[str]]:
    """For a timm trunk, the ``["trunk", child]`` prefixes of modules after its blocks."""
    trunk = getattr(visual, "trunk", None)
    if trunk is None:
        return []
    names = [name for name, _ in trunk.named_children()]
    for block_name in ("blocks", "stages"):
        if block_name in names:
            return [["trunk", n] for n in names[names.index(block_name) + 1 :]]
    return []
