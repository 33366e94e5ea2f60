from __future__ import annotations

import pytest

from avalanche_clip.models import create_clip


@pytest.fixture
def tiny():
    """A fresh tiny-clip bundle (model, train_tf, eval_tf, tokenizer)."""
    return create_clip("tiny-clip")


@pytest.fixture(scope="session")
def conse():
    """One pretrained minilm-effnet-conse bundle (128 px transforms) for the whole session: its
    build costs seconds. In eval mode, so that no forward pass moves its BatchNorm statistics;
    tests that change weights, flags or modes work on ``copy.deepcopy(conse.model)``."""
    bundle = create_clip("minilm-effnet-conse", "imagenet-minilm", image_size=128)
    bundle.model.eval()
    return bundle
