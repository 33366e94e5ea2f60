"""set_trainable: which parameters train for each choice; frozen BatchNorm stays frozen."""

from __future__ import annotations

import pytest
import torch

from avalanche_clip.models import create_clip, set_trainable


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_choices_on_a_vit_tower(tiny):
    model = tiny[0]
    everything = {n for n, _ in model.named_parameters()}
    set_trainable(model, "all")
    assert _trainable(model) == everything

    set_trainable(model, "image")
    assert _trainable(model) == {n for n in everything if n.startswith("visual.")}

    set_trainable(model, "text")
    assert _trainable(model) == {
        n for n in everything if not n.startswith("visual.") and n != "logit_scale"
    }

    set_trainable(model, "projections")
    assert _trainable(model) == {"visual.proj", "text_projection"}

    summary = set_trainable(model, "none")
    assert _trainable(model) == set() and summary.trainable == 0

    set_trainable(model, "last:1")
    expected = {
        n
        for n in everything
        if n.startswith(("visual.transformer.resblocks.1.", "transformer.resblocks.1."))
        or n in {"visual.proj", "text_projection"}
        or n.startswith(("visual.ln_post.", "ln_final."))
    }
    assert _trainable(model) == expected


def test_last_k_on_a_timm_tower_includes_the_head_convs():
    model = create_clip("effnet-lite0-clip")[0]
    set_trainable(model, "last:1")
    names = _trainable(model)
    assert any(n.startswith("visual.trunk.blocks.6.") for n in names)
    assert not any(n.startswith("visual.trunk.blocks.5.") for n in names)
    assert {"visual.trunk.conv_head.weight", "visual.trunk.bn2.weight", "visual.head.proj.weight"} <= names


@pytest.mark.parametrize(("spec", "message"), [("some", "not one of"), ("last:0", "not one of"), ("last:3", "only 2 blocks")])
def test_bad_choices_are_named(tiny, spec, message):
    with pytest.raises(ValueError, match=message):
        set_trainable(tiny[0], spec)


def test_frozen_batchnorm_keeps_its_statistics_in_train_mode(tiny):
    from avalanche_clip.models import CLIPClassifier

    model, _, _, tokenizer = create_clip("effnet-lite0-clip", image_size=32)
    set_trainable(model, "projections")
    clf = CLIPClassifier(model, tokenizer, ["a", "b"]).train()
    before = model.visual.trunk.bn1.running_mean.clone()
    clf(torch.randn(4, 3, 32, 32)).sum().backward()
    assert torch.equal(model.visual.trunk.bn1.running_mean, before)
    assert model.visual.head.proj.weight.grad is not None

    set_trainable(model, "all")
    clf.train()
    clf(torch.randn(4, 3, 32, 32))
    assert not torch.equal(model.visual.trunk.bn1.running_mean, before)
