"""Accuracy of a CLIP classifier's prompt head over every class of a benchmark's test stream.

For test images ``x_i`` with labels ``y_i`` (``N`` in all, over every test experience) and the
classifier's logits ``l(x_i) [K]`` with every class visible (``eval_classes="all"``):

    accuracy = (1/N) · Σ_i [ argmax_k l(x_i)_k = y_i ]

This is the zero-shot floor of a run (the untrained classifier over the stream's classes) and the
retention of a held-out set (the current model under a prompt head over the set's own classes,
:mod:`avalanche_clip.pipeline.retention`).
"""

from __future__ import annotations

from typing import Any

import torch


def prompt_head_accuracy(classifier: Any, benchmark: Any, *, device: str, batch_size: int,
                         num_workers: int = 0, generator: torch.Generator | None = None) -> float:
    """The module docstring's accuracy of ``classifier`` (a ``CLIPClassifier``, left in eval mode
    with its seen-class mask as it was) on ``benchmark.test_stream``. ``generator``: what the data
    loaders draw their worker seeds from (None: torch's global generator, which they then advance)."""
    mask = classifier.classes
    saved = mask.eval_classes
    mask.eval_classes = "all"
    correct = total = 0
    classifier.eval()
    try:
        with torch.no_grad():
            for experience in benchmark.test_stream:
                loader = torch.utils.data.DataLoader(experience.dataset.eval(), batch_size=batch_size,
                                                     num_workers=num_workers, generator=generator)
                for x, y, *_ in loader:
                    predictions = classifier(x.to(device)).argmax(1).cpu()
                    correct += int((predictions == y).sum())
                    total += len(y)
    finally:
        mask.eval_classes = saved
    return correct / total


__all__ = ["prompt_head_accuracy"]
