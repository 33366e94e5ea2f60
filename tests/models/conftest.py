from __future__ import annotations

import pytest

from avalanche_clip.models import create_clip


@pytest.fixture
def tiny():
    """A fresh tiny-clip bundle (model, train_tf, eval_tf, tokenizer)."""
    return create_clip("tiny-clip")
