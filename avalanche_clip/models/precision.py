"""Mixed precision for training and evaluation steps.

``amp`` names: ``"fp32"`` (no autocast), ``"bf16"`` and ``"fp16"`` (autocast to that dtype on
CUDA). CPU runs stay fp32 whatever is asked: CPU autocast is slower than fp32 for these models
and changes results, so a CPU device turns the request into a no-op (documented, not hidden:
:func:`effective_amp` says what will happen).
"""

from __future__ import annotations

import contextlib

import torch

from avalanche_clip.common.values import check_choice

AMP_CHOICES = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def effective_amp(amp: str, device: str | torch.device) -> str:
    """The precision a step will really use on ``device`` for the requested ``amp``."""
    check_choice("amp", amp, AMP_CHOICES)
    return amp if torch.device(device).type == "cuda" else "fp32"


def autocast(amp: str, device: str | torch.device) -> contextlib.AbstractContextManager[None]:
    """A context that runs its body under the effective precision."""
    used = effective_amp(amp, device)
    if used == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=_DTYPES[used])


def grad_scaler(amp: str, device: str | torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 on CUDA (bf16 and fp32 need none)."""
    if effective_amp(amp, device) == "fp16":
        return torch.amp.GradScaler("cuda")
    return None
