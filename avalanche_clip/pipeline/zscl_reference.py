"""ZSCL's reference set from the run config, built with the run:
``strategy_options: {zscl: {reference: {folder: ..., classes: [...], max_per_class: N}}}``.

The entry has a ``retention_sets`` entry's keys (``folder`` | ``scenario`` (+ ``data_root``,
``domains``, ``split``), ``classes``, ``max_per_class``; ``name`` optional), checked with the
config (:mod:`avalanche_clip.pipeline.zscl_reference_checks`: also that it is none of the run's
retention sets, and here that it shares no image file with one). :func:`build_zscl_reference` makes it a
:class:`~avalanche_clip.strategies.zscl.ReferenceSet` the way a retention set is made
(:func:`~avalanche_clip.pipeline.retention.cached_heldout`), before training:

- ``images``: the set's images in the form of the run's training inputs — their cached trunk
  features ``[N, ...]`` when the feature cache is on (the cache entry a retention set of the same
  images reads), the eval-transformed images ``[N, 3, H, W]`` otherwise (ZSCL reads its reference
  un-augmented, like the official ``test_preprocess``);
- ``text_features`` ``[C, D]``: the *initial* model's prompt embeddings of the set's class names
  over the run's templates, ``t_c = normalize(mean_T normalize(E_T(template(c))))`` — the
  teacher's, as ZSCL freezes the model it is given.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.retention import cached_heldout
from avalanche_clip.pipeline.zscl_reference_checks import (
    check_reference_files_apart,
    reference_spec,
)
from avalanche_clip.scenarios.heldout import heldout_benchmark
from avalanche_clip.strategies.zscl import ReferenceSet
from avalanche_clip.training.seeding import rng_state_kept


def build_zscl_reference(config: RunConfig, clip: nn.Module, tokenizer: Any,
                         eval_transform: Any) -> ReferenceSet | None:
    """The :class:`ReferenceSet` of the run's configured reference (module docstring), or None
    for any other run. Call it before training; every RNG is left as it was, so the run draws
    what it draws without the reference."""
    spec = reference_spec(config)
    if spec is None:
        return None
    check_reference_files_apart(spec, config.retention)
    with rng_state_kept():  # the feature cache's loaders draw from the global generator
        benchmark, head = cached_heldout(config, heldout_benchmark(spec, eval_transform), clip, tokenizer)
        with torch.no_grad():
            text = head.class_embeddings().detach().float().clone()
    return ReferenceSet(images=benchmark.test_stream[0].dataset.eval(), text_features=text)


__all__ = ["build_zscl_reference"]
