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
    build costs seconds. Tests that change weights or flags work on ``copy.deepcopy(conse.model)``."""
    return create_clip("minilm-effnet-conse", "imagenet-minilm", image_size=128)
