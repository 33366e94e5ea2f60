"""create_clip: the three kinds of model, local checkpoints, and clear errors."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from avalanche_clip.common.registry import UnknownNameError
from avalanche_clip.models import create_clip, list_models
from avalanche_clip.models.offline import efficientnet_lite0_weights_path


def test_tiny_clip_is_small_and_consistent():
    model, train_tf, eval_tf, tokenizer = create_clip("tiny-clip")
    n_params = sum(p.numel() for p in model.parameters())
    assert 1e6 < n_params < 5e6
    image = Image.new("RGB", (50, 40), color=(10, 200, 30))
    assert train_tf(image).shape == eval_tf(image).shape == (3, 32, 32)
    tokens = tokenizer(["a photo of a cat."])
    assert tokens.shape == (1, 16)
    with torch.no_grad():
        assert model.encode_image(eval_tf(image)[None]).shape == (1, 64)
        assert model.encode_text(tokens).shape == (1, 64)
    assert model.clip_spec.name == "tiny-clip" and model.clip_spec.pretrained is None


def test_offline_configs_are_listed_with_open_clip_names():
    names = list_models()
    assert {"tiny-clip", "effnet-lite0-clip", "ViT-B-16"} <= set(names)


def test_open_clip_architecture_loads_a_local_checkpoint(tmp_path):
    source, _, _, _ = create_clip("ViT-S-32")
    with torch.no_grad():
        source.logit_scale.fill_(1.234)
        source.visual.proj.mul_(2.0)
    path = tmp_path / "vit_s_32.pt"
    torch.save(source.state_dict(), path)

    loaded, _, eval_tf, _ = create_clip("ViT-S-32", str(path))
    for (name, a), (_, b) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert loaded.clip_spec.pretrained == str(path)
    assert eval_tf.transforms[0].size == 224


def test_effnet_lite0_imagenet_trunk_holds_the_shipped_tensors():
    model, _, eval_tf, _ = create_clip("effnet-lite0-clip", "imagenet", image_size=96)
    source = torch.load(efficientnet_lite0_weights_path(), weights_only=True)
    trunk = model.visual.trunk.state_dict()
    assert torch.equal(trunk["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(trunk["bn2.running_var"], source["_bn1.running_var"])
    assert torch.equal(trunk["blocks.6.0.conv_pwl.weight"], source["_blocks.15._project_conv.weight"])
    assert eval_tf.transforms[0].size == 96
    random_model, _, _, _ = create_clip("effnet-lite0-clip")
    assert not torch.equal(random_model.visual.trunk.conv_stem.weight, trunk["conv_stem.weight"])


def test_unknown_model_name_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"unknown CLIP model 'tiny_clip'.*tiny-clip"):
        create_clip("tiny_clip")


def test_missing_checkpoint_file_is_named(tmp_path):
    missing = tmp_path / "nope" / "weights.pt"
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*weights.pt"):
        create_clip("tiny-clip", str(missing))


def test_unknown_tag_lists_known_tags():
    with pytest.raises(ValueError, match=r"unknown pretrained tag 'laion' for 'effnet-lite0-clip'.*imagenet"):
        create_clip("effnet-lite0-clip", "laion")
    with pytest.raises(ValueError, match=r"unknown pretrained tag 'nope' for 'ViT-B-16'.*laion2b_s34b_b88k"):
        create_clip("ViT-B-16", "nope")


def test_checkpoint_from_another_architecture_is_a_clear_error(tmp_path):
    tiny, _, _, _ = create_clip("tiny-clip")
    path = tmp_path / "tiny.pt"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(ValueError, match=r"checkpoint .*tiny.pt.* does not fit model 'effnet-lite0-clip'"):
        create_clip("effnet-lite0-clip", str(path))


class _NotATensor:
    pass


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    tiny, _, _, _ = create_clip("tiny-clip")
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": tiny.state_dict(), "extra": _NotATensor()}, path)
    with pytest.raises(ValueError, match="does not fit model 'tiny-clip'"):
        create_clip("tiny-clip", str(path))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"precision": "fp8"}, "precision 'fp8'"), ({"image_size": 3}, "image_size must be")],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_clip("tiny-clip", **kwargs)
