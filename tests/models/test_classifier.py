"""CLIPClassifier: logits over global class ids, masking, prompt caching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.models import CLIPClassifier, LinearHeadClassifier, set_trainable
from avalanche_clip.models.prompts import class_prompts

NAMES = ["cat", "dog", "sea_turtle", "car"]


def _reference_logits(clip, tokenizer, names, templates, x):
    """CLIP zero-shot logits written out directly (no caching, no masking)."""
    with torch.no_grad():
        image = F.normalize(clip.encode_image(x), dim=-1)
        prompts = tokenizer(class_prompts(names, templates))
        text = F.normalize(clip.encode_text(prompts), dim=-1).view(len(names), len(templates), -1)
        text = F.normalize(text.mean(1), dim=-1)
        return clip.logit_scale.exp() * image @ text.t()


def test_logits_match_clip_zero_shot_with_template_ensemble(tiny):
    model, _, _, tokenizer = tiny
    templates = ["a photo of a {}.", "a drawing of a {}."]
    clf = CLIPClassifier(model, tokenizer, NAMES, templates).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        logits = clf(x)
    assert logits.shape == (5, 4)
    torch.testing.assert_close(logits, _reference_logits(model, tokenizer, NAMES, templates, x))


def test_prompt_text_uses_readable_class_names():
    assert class_prompts(["sea_turtle"], ["a photo of a {}."]) == ["a photo of a sea turtle."]


def test_unseen_classes_are_masked_and_predictions_stay_among_seen(tiny):
    model, _, _, tokenizer = tiny
    clf = CLIPClassifier(model, tokenizer, NAMES).eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        everything = clf(x)
        assert torch.isfinite(everything).all()  # nothing marked yet: every class visible
        clf.mark_seen([1, 3])
        masked = clf(x)
    assert torch.isinf(masked[:, [0, 2]]).all() and (masked[:, [0, 2]] < 0).all()
    torch.testing.assert_close(masked[:, [1, 3]], everything[:, [1, 3]])
    assert set(masked.argmax(1).tolist()) <= {1, 3}

    all_clf = CLIPClassifier(model, tokenizer, NAMES, eval_classes="all").eval()
    all_clf.mark_seen([1])
    with torch.no_grad():
        torch.testing.assert_close(all_clf(x), everything)


def test_mark_seen_rejects_ids_outside_the_class_range(tiny):
    model, _, _, tokenizer = tiny
    clf = CLIPClassifier(model, tokenizer, NAMES)
    with pytest.raises(ValueError, match=r"class id 4 is outside \[0, 4\)"):
        clf.mark_seen([0, 4])
    with pytest.raises(ValueError, match="eval_classes='some'"):
        CLIPClassifier(model, tokenizer, NAMES, eval_classes="some")


class _CountingText:
    """Wraps clip.encode_text and counts how many prompts it encodes."""

    def __init__(self, clip):
        self.original = clip.encode_text
        self.prompts = 0
        clip.encode_text = self

    def __call__(self, tokens, *args, **kwargs):
        self.prompts += tokens.shape[0]
        return self.original(tokens, *args, **kwargs)


def test_frozen_text_tower_encodes_prompts_once(tiny):
    model, _, _, tokenizer = tiny
    set_trainable(model, "image")
    clf = CLIPClassifier(model, tokenizer, NAMES).train()
    calls = []
    original = clf._encode_prompts
    clf._encode_prompts = lambda ids: calls.append(ids.tolist()) or original(ids)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(3):
        clf(x).sum().backward()
        clf.class_embeddings(torch.tensor([0, 2]))
    assert calls == [list(range(len(NAMES)))]  # one pass over all K prompts, then cached


def test_trainable_text_tower_recomputes_requested_prompts_with_gradient(tiny):
    model, _, _, tokenizer = tiny
    set_trainable(model, "text")
    clf = CLIPClassifier(model, tokenizer, NAMES).train()
    counter = _CountingText(model)
    emb = clf.class_embeddings(torch.tensor([0, 2]))
    clf.class_embeddings(torch.tensor([1]))
    assert counter.prompts == 3
    emb.sum().backward()
    assert model.text_projection.grad is not None and model.text_projection.grad.abs().sum() > 0


def test_eval_cache_is_dropped_when_training_resumes(tiny):
    model, _, _, tokenizer = tiny
    set_trainable(model, "text")
    clf = CLIPClassifier(model, tokenizer, NAMES)
    clf.eval()
    with torch.no_grad():
        before = clf.class_embeddings()
        assert clf.class_embeddings() is not None and clf._prompt_cache is not None
    clf.train()
    optimizer = torch.optim.SGD([model.text_projection], lr=1.0)
    clf.class_embeddings().sum().backward()
    optimizer.step()
    clf.eval()
    with torch.no_grad():
        after = clf.class_embeddings()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _fresh_embeddings(clf))


def test_loading_weights_invalidates_the_prompt_cache(tiny):
    model, _, _, tokenizer = tiny
    set_trainable(model, "image")  # text frozen → cached
    clf = CLIPClassifier(model, tokenizer, NAMES).eval()
    clf.class_embeddings()
    state = {k: v.clone() for k, v in clf.state_dict().items()}
    state["clip.text_projection"] = state["clip.text_projection"] * -1.0
    clf.load_state_dict(state)
    torch.testing.assert_close(clf.class_embeddings(), _fresh_embeddings(clf))


def _fresh_embeddings(clf):
    with torch.no_grad():
        return clf._encode_prompts(torch.arange(clf.num_classes))


def test_linear_head_starts_at_the_zero_shot_point(tiny):
    model, _, _, tokenizer = tiny
    clf = CLIPClassifier(model, tokenizer, NAMES, eval_classes="all").eval()
    head = LinearHeadClassifier.from_clip_classifier(clf).eval()
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(head(x), clf(x))
    assert head.num_classes == 4
    assert not any(name.startswith("text") for name, _ in head.named_parameters())


def test_trainable_projection_only_reuses_pooled_text_features(tiny):
    model, _, _, tokenizer = tiny
    set_trainable(model, "projections")
    templates = ["a photo of a {}.", "a drawing of a {}."]
    clf = CLIPClassifier(model, tokenizer, NAMES, templates).train()
    counter = _CountingText(model)
    emb = clf.class_embeddings(torch.tensor([2, 0]))
    emb.sum().backward()
    assert model.text_projection.grad.abs().sum() > 0
    optimizer = torch.optim.SGD([model.text_projection], lr=0.5)
    optimizer.step()
    clf.class_embeddings(torch.tensor([1]))
    assert counter.prompts == 0  # the transformer never ran through encode_text
    # and the logits are exactly CLIP's, with the updated projection
    clf.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), _reference_logits(model, tokenizer, NAMES, templates, x))
