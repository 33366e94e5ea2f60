"""``split_image_tower``: ``visual(x) == tail(frozen(x))``, the frozen part holds only frozen
parameters, and towers that cannot be split say why."""

from __future__ import annotations

import pytest
import torch

from avalanche_clip.features import TowerSplitError, split_image_tower
from avalanche_clip.models import create_clip, set_trainable

# (model, image size, trainable, expected split point)
CASES = [
    ("tiny-clip", 32, "projections", "pooled"),  # ViT
    ("tiny-clip", 32, "none", "pooled"),
    ("tiny-clip", 32, "last:1", "last:1"),
    ("effnet-lite0-clip", 64, "projections", "pooled"),  # timm EfficientNet
    ("effnet-lite0-clip", 64, "text", "pooled"),
    ("effnet-lite0-clip", 64, "last:1", "last:1"),
    ("effnet-lite0-clip", 64, "last:2", "last:2"),
    ("minilm-effnet-conse", 64, "projections", "pooled"),  # timm trunk + ConSE head
    ("minilm-effnet-conse", 64, "last:1", "last:1"),
]


@pytest.fixture(scope="module")
def towers():
    """One model per (name, size), built once: (visual tower, image size)."""
    built = {}

    def get(name: str, size: int):
        if (name, size) not in built:
            torch.manual_seed(0)
            model, *_ = create_clip(name, image_size=size)
            built[name, size] = model
        return built[name, size]

    return get


@pytest.mark.parametrize("name, size, trainable, point", CASES)
def test_tail_of_frozen_equals_the_tower(towers, name, size, trainable, point):
    model = towers(name, size)
    set_trainable(model, trainable)
    visual = model.visual.eval()
    split = split_image_tower(visual, trainable)
    assert split.point == point

    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = visual(x)
        cached = split.frozen(x)
        actual = split.tail(cached)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    if point == "pooled":
        assert cached.dim() == 2  # one vector per image
    else:
        assert cached.dim() in (3, 4)  # ViT tokens [B, T, W] or a timm feature map [B, C, H, W]


@pytest.mark.parametrize("name, size, trainable, point", CASES)
def test_frozen_part_holds_only_frozen_parameters(towers, name, size, trainable, point):
    """What is cached must not train, and (when something in the tower trains) every frozen
    parameter of the tower is in the cached part, so the cache key covers exactly those."""
    model = towers(name, size)
    set_trainable(model, trainable)
    visual = model.visual
    split = split_image_tower(visual, trainable)
    cached = {id(p) for p in split.frozen.parameters()}
    frozen = {id(p) for p in visual.parameters() if not p.requires_grad}
    assert cached, "the cached part has parameters"
    assert cached <= frozen
    if any(p.requires_grad for p in visual.parameters()):
        assert cached == frozen
    assert not set(split.frozen.state_dict()) & {
        n for n, p in visual.named_parameters() if p.requires_grad
    }


@pytest.mark.parametrize("name, size", [("tiny-clip", 32), ("effnet-lite0-clip", 64)])
@pytest.mark.parametrize("trainable", ["all", "image"])
def test_a_tower_that_trains_whole_cannot_be_split(towers, name, size, trainable):
    with pytest.raises(TowerSplitError, match=rf"trainable='{trainable}' trains the whole image tower"):
        split_image_tower(towers(name, size).visual, trainable)


@pytest.mark.parametrize("name, size, trainable, message", [
    ("tiny-clip", 32, "last:2", r"trainable='last:2' but the tower has 2 blocks"),
    ("tiny-clip", 32, "last:5", r"trainable='last:5' but the tower has 2 blocks"),
    ("effnet-lite0-clip", 64, "last:7", r"trainable='last:7' but the trunk has 7 stages"),
])
def test_k_too_large_cannot_be_split(towers, name, size, trainable, message):
    with pytest.raises(TowerSplitError, match=message):
        split_image_tower(towers(name, size).visual, trainable)
