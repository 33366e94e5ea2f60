"""Create an open_clip CLIP model with its transforms and tokenizer.

``create_clip`` accepts any open_clip architecture name (``ViT-B-16``, ``RN50``, ...) plus the
package's offline configs (``tiny-clip``, ``effnet-lite0-clip``, ``minilm-effnet-conse``), and a
``pretrained`` source:

- ``None``: random initialisation;
- ``"default"``: the model's own default tag (:func:`default_pretrained`);
- an open_clip tag (``laion2b_s34b_b88k``, ``openai``, ...): loaded from open_clip's cache with no
  network call when it is there (:mod:`avalanche_clip.models.hub`), else downloaded by open_clip;
- ``"imagenet"`` for ``effnet-lite0-clip``: the offline ImageNet image trunk;
- ``"imagenet-minilm"`` for ``minilm-effnet-conse``: the offline ConSE dual encoder (not CLIP;
  see :mod:`avalanche_clip.models.conse`);
- a local checkpoint file (a CLIP ``state_dict``, as open_clip saves it), loaded with
  ``weights_only=True``.

Example::

    model, train_tf, eval_tf, tokenizer = create_clip("effnet-lite0-clip", "imagenet",
                                                       image_size=96)
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from avalanche_clip.common.registry import UnknownNameError
from avalanche_clip.models.conse import attach_conse_head
from avalanche_clip.models.conse_offline import (
    CONSE_MODEL,
    CONSE_TAG,
    conse_text_cfg,
    conse_tokenizer,
    init_conse_from_packages,
    quiet_transformers,
)
from avalanche_clip.models.hub import locate_pretrained, tag_preprocess
from avalanche_clip.models.offline import (
    OFFLINE_MODELS,
    OFFLINE_PREPROCESS,
    load_efficientnet_lite0_trunk,
    register_offline_configs,
)

#: The ``pretrained`` value that means "the model's own default" (:func:`default_pretrained`).
DEFAULT_PRETRAINED = "default"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16", "amp", "amp_bf16", "amp_fp16")


@dataclass(frozen=True)
class ModelSpec:
    """What a model was built from; stored on the model as ``model.clip_spec``."""

    name: str
    pretrained: str | None
    image_size: int | None = None


class CLIPBundle(NamedTuple):
    """The result of :func:`create_clip`; unpacks as ``model, train_tf, eval_tf, tokenizer``."""

    model: nn.Module
    train_transform: Callable[[Any], torch.Tensor]
    eval_transform: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]


def list_models() -> list[str]:
    """Every architecture name :func:`create_clip` accepts (open_clip's plus ours)."""
    import open_clip

    register_offline_configs()
    return sorted(open_clip.list_models())


def list_pretrained_tags(name: str) -> list[str]:
    """Pretrained tags known for ``name`` (ours for the offline configs, else open_clip's)."""
    import open_clip

    if name in OFFLINE_MODELS:
        return sorted(OFFLINE_MODELS[name])
    return list(open_clip.list_pretrained_tags_by_model(name))


def default_pretrained(name: str) -> str | None:
    """The tag ``name`` loads when a config gives no ``pretrained``.

    - an offline config: the first tag its :data:`OFFLINE_MODELS` entry declares (None if it
      declares none: random initialisation);
    - an open_clip architecture: the first tag open_clip lists for it whose activation matches
      the architecture (open_clip lists ``openai`` first, but OpenAI's weights use QuickGELU and
      belong to the ``-quickgelu`` names: ``ViT-B-16`` → ``laion400m_e31``,
      ``ViT-B-16-quickgelu`` → ``openai``); None for an architecture without tags.
    """
    import open_clip

    if name in OFFLINE_MODELS:
        return next(iter(OFFLINE_MODELS[name]), None)
    tags = list(open_clip.list_pretrained_tags_by_model(name))
    if not tags:
        return None
    quick_gelu = bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))
    matching = [t for t in tags if bool(open_clip.get_pretrained_cfg(name, t).get("quick_gelu", False)) == quick_gelu]
    return (matching or tags)[0]


def create_clip(
    name: str,
    pretrained: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    image_size: int | None = None,
    cache_dir: str | None = None,
) -> CLIPBundle:
    """Build a CLIP model, its train / eval image transforms and its tokenizer.

    Args:
        name: open_clip architecture (``open_clip.list_models()``) or an offline config.
        pretrained: ``None``, ``"default"`` (:func:`default_pretrained`), an open_clip /
            offline tag, or a local checkpoint path.
        device: where the model lives (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...).
        precision: open_clip precision of the weights; ``"fp32"`` keeps fp32 weights (use
            autocast in training for mixed precision).
        image_size: override the config's input resolution (transforms follow).
        cache_dir: open_clip's download cache for tagged weights (default: its own, the
            Hugging Face Hub cache).

    Raises:
        UnknownNameError: ``name`` is not a known architecture.
        FileNotFoundError: ``pretrained`` names a checkpoint file that does not exist.
        ValueError: unknown tag, bad precision or image size, or a checkpoint that does not
            fit the architecture.
    """
    import open_clip

    known = list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise UnknownNameError(
            f"unknown CLIP model {name!r}: expected an open_clip architecture "
            f"(open_clip.list_models()) or one of {sorted(OFFLINE_MODELS)}.{hint}"
        )
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise ValueError(f"image_size must be an int >= 8 or None, got {image_size!r}")

    if pretrained == DEFAULT_PRETRAINED:
        pretrained = default_pretrained(name)
    source, offline_tag = _resolve_pretrained(name, pretrained)
    preprocess = OFFLINE_PREPROCESS.get((name, offline_tag)) or OFFLINE_PREPROCESS.get((name, None), {})
    if source is not None and not Path(source).is_file():
        # an open_clip tag found in the cache loads as a local file: no network call at all
        # (open_clip's own path asks the Hub first and retries for a minute without network)
        cached = locate_pretrained(name, source, cache_dir)
        if cached is not None:
            source, preprocess = str(cached), tag_preprocess(name, source)
    conse = name == CONSE_MODEL
    # ConSE's head is set after open_clip builds the model, so its checkpoints load after that
    extra = {"text_cfg": conse_text_cfg(pretrained_text=offline_tag == CONSE_TAG)} if conse else {}
    quiet = quiet_transformers() if conse else contextlib.nullcontext()
    with _quiet_open_clip(), quiet, _checkpoint_errors(name, source):
        model, train_tf, eval_tf = open_clip.create_model_and_transforms(
            name,
            pretrained=None if conse else source,
            device=device,
            precision=precision,
            force_image_size=image_size,
            image_mean=preprocess.get("mean"),
            image_std=preprocess.get("std"),
            image_interpolation=preprocess.get("interpolation"),
            image_resize_mode=preprocess.get("resize_mode"),
            cache_dir=cache_dir,
            weights_only=True,
            **extra,
        )
        if conse:
            attach_conse_head(model)
            if source is not None:
                _load_state_file(model, source)
    if offline_tag in ("imagenet", CONSE_TAG):
        load_efficientnet_lite0_trunk(model.visual.trunk)
    model.clip_spec = ModelSpec(
        name=name, pretrained=None if pretrained is None else str(pretrained), image_size=image_size
    )
    if conse:
        tokenizer = conse_tokenizer(extra["text_cfg"]["context_length"])
    else:
        config = json.dumps(open_clip.get_model_config(name), sort_keys=True)
        tokenizer = _open_clip_tokenizer(name, config)
    if offline_tag == CONSE_TAG:
        init_conse_from_packages(model, tokenizer)
    return CLIPBundle(model, train_tf, eval_tf, tokenizer)


@functools.lru_cache(maxsize=8)
def _open_clip_tokenizer(name: str, config: str) -> Callable[..., torch.Tensor]:
    """open_clip's tokenizer of model ``name`` with model config ``config`` (JSON), built once per
    process: reading its BPE vocabulary takes ~0.3 s, on every run of a sweep otherwise. A
    tokenizer keeps no state a run could change (only a memo of the words it has split)."""
    import open_clip

    del config  # part of the cache key only: a re-registered config gets its own tokenizer
    return open_clip.get_tokenizer(name)


def _resolve_pretrained(name: str, pretrained: str | Path | None) -> tuple[str | None, str | None]:
    """Map ``pretrained`` to (what open_clip should load, our offline tag or None)."""
    import open_clip

    if pretrained == DEFAULT_PRETRAINED:
        pretrained = default_pretrained(name)
    if pretrained is None or pretrained == "":
        return None, None
    text = str(pretrained)
    path = Path(text).expanduser()
    if path.is_file():
        return str(path), None
    if name in OFFLINE_MODELS and text in OFFLINE_MODELS[name]:
        return None, text
    if isinstance(pretrained, Path) or "/" in text or text.endswith(CHECKPOINT_SUFFIXES):
        raise FileNotFoundError(
            f"no checkpoint file at {str(path)!r} (pretrained for {name!r}); expected an existing "
            f"CLIP state_dict file or one of the tags {list_pretrained_tags(name)}"
        )
    if name not in OFFLINE_MODELS and open_clip.get_pretrained_cfg(name, text):
        return text, None
    raise ValueError(
        f"unknown pretrained tag {text!r} for {name!r}; expected one of "
        f"{list_pretrained_tags(name)} or a local checkpoint path"
    )


def _load_state_file(model: nn.Module, path: str) -> None:
    """Load a ``state_dict`` file (or ``{"state_dict": ...}``) into ``model``, strictly.

    For models whose head is set after open_clip builds them, so open_clip's own loader (and
    its conversions of other CLIP formats, which do not apply) cannot be used.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"expected a state_dict (a dict of tensors), got a {type(state).__name__}")
    model.load_state_dict(state, strict=True)


@contextlib.contextmanager
def _checkpoint_errors(name: str, source: str | None) -> Iterator[None]:
    """Turn open_clip's load failures into a ValueError naming the checkpoint.

    open_clip reports a mismatch as a strict ``load_state_dict`` RuntimeError, a KeyError, or an
    assertion while resizing position embeddings; ``weights_only`` refusals are unpickling
    errors. For a local file, all of these mean the file does not fit the architecture.
    """
    try:
        yield
    except (RuntimeError, KeyError, AssertionError, ValueError, pickle.UnpicklingError) as err:
        if source is None or not Path(source).is_file():
            raise
        first_lines = "\n".join(str(err).splitlines()[:4])
        raise ValueError(
            f"checkpoint {source!r} does not fit model {name!r} (was it saved from another "
            f"architecture or config?): {first_lines}"
        ) from err


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "initialized randomly" not in message and "initialized partially" not in message


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip warns on the root logger whenever no CLIP checkpoint is loaded; for tiny
    configs and offline trunks that is the expected case, so drop just that message."""
    root = logging.getLogger()
    quiet = _DropRandomInitWarning()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)
