"""Avalanche's iCaRL on the current benchmark API.

Avalanche 0.6's iCaRL plugin reads ``experience.benchmark.n_classes_per_exp`` and
``.classes_order``, which streams built with ``class_incremental_benchmark`` do not have. The
shim attaches exactly those two fields to every train experience.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from avalanche_clip.plugins.seen_classes import experience_classes


def attach_icarl_benchmark_info(train_stream: Any) -> None:
    """Give each train experience the ``benchmark`` fields iCaRL reads."""
    per_experience = [experience_classes(e) for e in train_stream]
    info = SimpleNamespace(
        n_classes_per_exp=[len(c) for c in per_experience],
        classes_order=[c for classes in per_experience for c in classes],
    )
    for experience in train_stream:
        experience.benchmark = info
