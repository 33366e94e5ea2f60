"""minilm-effnet-conse trains like the other models: every ``trainable`` choice selects the right
parameters, with ``projections`` the classifier reuses MiniLM's pooled prompt features, and the
frozen-trunk feature cache feeds the ConSE head the same logits as the images do."""

from __future__ import annotations

import copy

import pytest
import torch

from avalanche_clip.features import apply_feature_cache
from avalanche_clip.models import CLIPClassifier, set_trainable
from avalanche_clip.models.prompts import class_prompts
from avalanche_clip.scenarios import build_scenario

NAMES = ["dog", "elephant", "sea_turtle", "guitar"]
TEMPLATES = ["a photo of a {}.", "a sketch of a {}."]


@pytest.fixture
def model(conse):
    return copy.deepcopy(conse.model)


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_every_trainable_choice(model):
    everything = {n for n, _ in model.named_parameters()}
    image = {n for n in everything if n.startswith("visual.")}
    text = {n for n in everything if n.startswith("text.")}
    assert everything == image | text | {"logit_scale"}
    head = {"visual.head.classifier.weight", "visual.head.classifier.bias", "visual.head.embed.weight"}

    assert set_trainable(model, "projections").trainable == 1_665_000 + 384 * 384
    assert _trainable(model) == head | {"text.proj.weight"}
    set_trainable(model, "image")
    assert _trainable(model) == image
    set_trainable(model, "text")
    assert _trainable(model) == text
    set_trainable(model, "all")
    assert _trainable(model) == everything
    set_trainable(model, "none")
    assert _trainable(model) == set()

    set_trainable(model, "last:1")
    names = _trainable(model)
    assert head | {"text.proj.weight", "visual.trunk.conv_head.weight", "visual.trunk.bn2.weight"} <= names
    assert any(n.startswith("visual.trunk.blocks.6.") for n in names)
    assert not any(n.startswith("visual.trunk.blocks.5.") for n in names)
    assert any(n.startswith("text.transformer.encoder.layer.5.") for n in names)
    assert not any(n.startswith(("text.transformer.encoder.layer.4.", "text.transformer.embeddings.")) for n in names)
    with pytest.raises(ValueError, match="only 6 blocks"):
        set_trainable(model, "last:7")


class _CountingCalls:
    """Counts the sequences that pass through a module's forward."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.sequences = 0
        module.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):  # type: ignore[no-untyped-def]
        tokens = kwargs.get("input_ids", args[0] if args else None)
        self.sequences += tokens.shape[0]


def _reference_logits(model, tokenizer, x):
    """The model's own encode_image / encode_text path, written out (no caching)."""
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        text = model.encode_text(tokenizer(class_prompts(NAMES, TEMPLATES)))
        text = torch.nn.functional.normalize(text, dim=-1).view(len(NAMES), len(TEMPLATES), -1)
        text = torch.nn.functional.normalize(text.mean(1), dim=-1)
        return model.logit_scale.exp() * image @ text.t()


def test_projection_training_reuses_pooled_minilm_features(conse, model):
    tokenizer = conse.tokenizer
    set_trainable(model, "projections")
    clf = CLIPClassifier(model, tokenizer, NAMES, TEMPLATES).train()
    assert clf.text_trunk_frozen()
    counter = _CountingCalls(model.text.transformer)
    x = torch.randn(2, 3, 64, 64)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        optimizer.zero_grad()
        clf(x)[:, 0].sum().backward()
        assert model.text.proj.weight.grad.abs().sum() > 0
        assert model.visual.head.embed.weight.grad.abs().sum() > 0
        optimizer.step()
    assert counter.sequences == len(NAMES) * len(TEMPLATES)  # MiniLM ran once, for the cache
    clf.eval()
    with torch.no_grad():
        torch.testing.assert_close(clf(x), _reference_logits(model, tokenizer, x), rtol=0, atol=1e-5)


def test_text_training_reruns_minilm_with_gradient(conse, model):
    set_trainable(model, "text")
    clf = CLIPClassifier(model, conse.tokenizer, NAMES, TEMPLATES).train()
    assert not clf.text_trunk_frozen()
    counter = _CountingCalls(model.text.transformer)
    clf.class_embeddings(torch.tensor([0, 2])).sum().backward()
    assert counter.sequences == 2 * len(TEMPLATES)
    assert model.text.transformer.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_feature_cache_gives_the_same_logits_as_images(conse, model, tmp_path):
    set_trainable(model, "projections")
    eval_tf = conse.eval_transform
    benchmark = build_scenario("digits", n_experiences=2, seed=0, train_transform=eval_tf,
                               eval_transform=eval_tf, max_train_per_class=2, max_test_per_class=2)
    classifier = CLIPClassifier(model, conse.tokenizer, benchmark.class_names, "digit").eval()
    images = torch.stack([benchmark.test_stream[0].dataset.eval()[i][0] for i in range(4)])
    with torch.no_grad():
        expected = classifier(images)
    cached = apply_feature_cache(benchmark, classifier, mode=True, trainable="projections",
                                 cache_dir=tmp_path, batch_size=16, progress=False)
    assert cached.feature_cache["point"] == "pooled"
    features = torch.stack([cached.test_stream[0].dataset.eval()[i][0] for i in range(4)])
    assert features.shape == (4, 1280)
    with torch.no_grad():
        torch.testing.assert_close(classifier(features), expected, rtol=0, atol=1e-5)
