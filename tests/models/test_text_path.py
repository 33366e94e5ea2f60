"""Prompt caches keyed on the text path's state: kept across moves to where the model already
is, refreshed by any change of the weights they were computed from."""

from __future__ import annotations

import torch
from torch import nn

from avalanche_clip.models import CLIPClassifier, set_trainable
from avalanche_clip.models.text_path import TextPath

NAMES = ["cat", "dog", "sea_turtle", "car"]


def _fresh_embeddings(clf):
    with torch.no_grad():
        return clf._encode_prompts(torch.arange(clf.num_classes))


def test_pooled_text_features_survive_experience_boundaries(tiny):
    """Avalanche moves the model to its device at every experience: with the text trunk frozen
    the transformer runs once for the whole run, not once per move."""
    model, _, _, tokenizer = tiny
    set_trainable(model, "projections")
    clf = CLIPClassifier(model, tokenizer, NAMES)
    passes = []
    model.transformer.register_forward_hook(lambda *_: passes.append(1))
    optimizer = torch.optim.SGD([model.text_projection], lr=0.1)
    for _ in range(3):  # three "experiences": move, train a step, evaluate
        clf.to("cpu").train()
        clf.class_embeddings(torch.tensor([0, 1])).sum().backward()
        optimizer.step()
        clf.eval()
        with torch.no_grad():
            torch.testing.assert_close(clf.class_embeddings(), _fresh_embeddings(clf))
    assert len(passes) == 1


def test_frozen_text_weights_changed_in_place_refresh_the_caches(tiny):
    model, _, _, tokenizer = tiny
    for trainable in ("image", "projections"):  # prompt cache; pooled-feature cache
        set_trainable(model, trainable)
        clf = CLIPClassifier(model, tokenizer, NAMES).eval()
        with torch.no_grad():
            before = clf.class_embeddings().clone()
            model.token_embedding.weight.add_(torch.randn_like(model.token_embedding.weight))
            after = clf.class_embeddings()
        assert not torch.allclose(before, after), trainable
        clf._prompt_cache = clf._pooled_cache = None
        torch.testing.assert_close(after, _fresh_embeddings(clf))


def test_unfreezing_or_replacing_text_parameters_is_seen(tiny):
    model, _, _, tokenizer = tiny
    set_trainable(model, "image")
    clf = CLIPClassifier(model, tokenizer, NAMES).train()
    assert not clf.text_trainable()
    clf.class_embeddings()  # cached: nothing on the text path trains
    model.text_projection.requires_grad_(True)
    assert clf.text_trainable() and clf.text_trunk_frozen()
    assert clf.class_embeddings(torch.tensor([1])).requires_grad
    model.text_projection = nn.Parameter(torch.randn_like(model.text_projection), requires_grad=False)
    assert not clf.text_trainable()  # the new parameter object, not the old one, is read
    with torch.no_grad():
        expected = _fresh_embeddings(clf)
    torch.testing.assert_close(clf.class_embeddings(), expected)
    assert any(p is model.text_projection for p in TextPath(model).parameters())
