"""An open_clip text tower as pooled features followed by its projection.

A text embedding is ``proj(pool(transformer(tokens)))``: ``[N, L]`` tokens → ``[N, W]`` pooled
features → ``[N, D]``. While everything before the projection is frozen, the pooled features of
a fixed prompt set can be computed once and only the projection applied at each step
(:class:`~avalanche_clip.models.CLIPClassifier` does so). Two towers are supported:

- open_clip's built-in CLIP text transformer (``CLIP.token_embedding``, ``.transformer``,
  ``.ln_final``, ``.text_projection``: a ``[W, D]`` parameter or a ``Linear``);
- its Hugging Face tower (``CustomTextCLIP.text``, an ``HFTextEncoder``: ``.transformer``,
  ``.pooler``, ``.proj``), e.g. the MiniLM of ``minilm-effnet-conse``.

For both, ``project_text(clip, pooled_text(clip, tokens)) == clip.encode_text(tokens)``.
"""

from __future__ import annotations

import torch
from torch import nn


def _is_hf_tower(clip: nn.Module) -> bool:
    text = getattr(clip, "text", None)
    return text is not None and all(hasattr(text, a) for a in ("transformer", "pooler", "proj", "config"))


def _is_builtin_tower(clip: nn.Module) -> bool:
    return hasattr(clip, "token_embedding") and hasattr(clip, "text_projection")


def text_projection_prefix(clip: nn.Module) -> str | None:
    """Parameter-name prefix of the text projection in ``clip`` (None: unsupported tower).

    A parameter belongs to the projection when its name equals the prefix or starts with
    ``prefix + "."``.
    """
    if _is_builtin_tower(clip):
        return "text_projection"
    if _is_hf_tower(clip):
        return "text.proj"
    return None


def is_projection_parameter(name: str, prefix: str) -> bool:
    """Whether parameter ``name`` lies under the projection ``prefix``."""
    return name == prefix or name.startswith(prefix + ".")


def pooled_text(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``[N, L]`` tokens → ``[N, W]`` pooled text features (``encode_text`` without projection)."""
    if _is_hf_tower(clip):
        text = clip.text
        # as HFTextEncoder.forward: every non-padding token is attended to and pooled
        mask = (tokens != text.config.pad_token_id).long()
        return text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask)
    if _is_builtin_tower(clip):
        from open_clip.transformer import text_global_pool

        cast_dtype = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast_dtype) + clip.positional_embedding.to(cast_dtype)
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
        return text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
    raise TypeError(f"no pooled-text path for a {type(clip).__name__} text tower")


def project_text(clip: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """``[..., W]`` pooled features → ``[..., D]`` text embeddings (not normalised)."""
    projection = clip.text.proj if _is_hf_tower(clip) else clip.text_projection
    if isinstance(projection, nn.Module):
        return projection(pooled)
    return pooled @ projection
