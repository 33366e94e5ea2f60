"""Upfront check of the ``device`` setting: a run on a device that is not there fails before
anything is built, with the value and what is available, instead of deep inside torch."""

from __future__ import annotations

from typing import Any

import torch

from avalanche_clip.common.errors import ConfigError


def check_device(value: Any) -> torch.device:
    """``value`` as a ``torch.device`` this machine has; ``ConfigError`` naming it otherwise.

    Accepted: ``cpu``, ``cuda`` and ``cuda:N`` with ``N`` below the number of visible GPUs.
    """
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device={value!r} is not a device; expected cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device={value!r}: only cpu and cuda devices are supported")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(
            f"device={value!r} but no CUDA GPU is available here (torch.cuda.is_available() is "
            "False); use device=cpu"
        )
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"device={value!r} but this machine has {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})"
        )
    return device


__all__ = ["check_device"]
