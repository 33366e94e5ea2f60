"""A process builds each model's tokenizer once: every run of a sweep creates its CLIP anew,
and reading the BPE vocabulary again cost ~0.3 s a run."""

from __future__ import annotations

import torch

from avalanche_clip.models import create_clip


def test_runs_in_one_process_share_the_tokenizer_and_tokenize_alike():
    first = create_clip("tiny-clip").tokenizer
    second = create_clip("tiny-clip").tokenizer
    assert second is first
    torch.testing.assert_close(second(["a photo of a cat."]), first(["a photo of a cat."]))
