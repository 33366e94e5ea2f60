"""The offline effnet-lite0-clip image trunk carries real ImageNet weights.

Proof: the ImageNet classifier shipped with the weights, applied to our trunk's pooled features,
puts the matching ImageNet categories in its top 5 for real photos far more often than chance,
and a randomly initialised trunk does not.
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import pytest
import torch
from PIL import Image

from avalanche_clip.models import create_clip
from avalanche_clip.models.offline import efficientnet_lite0_weights_path

pytestmark = pytest.mark.data


def _ids(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


# Data-set class → ImageNet-1k indices that depict it.
PACS_TO_IMAGENET = {
    "dog": _ids(151, 268),
    "elephant": [101, 385, 386],
    "guitar": [402, 546],
    "horse": [339, 603],
}
CIFAR_TO_IMAGENET = {
    "cat": _ids(281, 285),
    "airplane": [404, 895, 908],
    "ship": [484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 913],
    "truck": [555, 569, 675, 717, 864, 867],
    "automobile": [436, 468, 511, 581, 609, 627, 656, 661, 717, 751, 817],
    "frog": [30, 31, 32],
    "horse": [339, 603],
}
PER_CLASS = 16


def _top5_hit_rate(trunk: torch.nn.Module, transform, folder: Path, classes: dict) -> tuple[float, float]:
    """(fraction of images whose top-5 hits their class's ImageNet ids, chance of that)."""
    source = torch.load(efficientnet_lite0_weights_path(), weights_only=True)
    weight, bias = source["_fc.weight"], source["_fc.bias"]
    hits, chance, total = 0, 0.0, 0
    for name, imagenet_ids in classes.items():
        files = sorted((folder / name).glob("*.jpg"))[:PER_CLASS]
        x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
        with torch.no_grad():
            top5 = (trunk(x) @ weight.t() + bias).topk(5, dim=-1).indices
        hits += sum(bool(set(row.tolist()) & set(imagenet_ids)) for row in top5)
        chance += len(files) * (1 - comb(1000 - len(imagenet_ids), 5) / comb(1000, 5))
        total += len(files)
    return hits / total, chance / total


@pytest.mark.parametrize(
    ("subdir", "classes", "minimum"),
    [("pacs/photo", PACS_TO_IMAGENET, 0.6), ("cifar10/test", CIFAR_TO_IMAGENET, 0.15)],
)
def test_pretrained_trunk_recognises_imagenet_categories(data_root, subdir, classes, minimum):
    model, _, eval_tf, _ = create_clip("effnet-lite0-clip", "imagenet", image_size=128)
    model.eval()
    rate, chance = _top5_hit_rate(model.visual.trunk, eval_tf, data_root / subdir, classes)
    assert rate >= minimum, f"top-5 hit rate {rate:.2f} on {subdir} (chance {chance:.3f})"
    assert rate >= 2.5 * chance, f"top-5 hit rate {rate:.2f} vs chance {chance:.2f}"

    random_model, _, _, _ = create_clip("effnet-lite0-clip", None, image_size=128)
    random_model.eval()
    random_rate, _ = _top5_hit_rate(random_model.visual.trunk, eval_tf, data_root / subdir, classes)
    assert rate >= max(3 * random_rate, random_rate + 0.1), f"pretrained {rate:.2f} vs random {random_rate:.2f}"


def test_imagenet_tag_uses_imagenet_normalisation():
    _, _, eval_tf, _ = create_clip("effnet-lite0-clip", "imagenet", image_size=64)
    normalize = eval_tf.transforms[-1]
    assert tuple(normalize.mean) == pytest.approx((0.485, 0.456, 0.406))
    assert tuple(normalize.std) == pytest.approx((0.229, 0.224, 0.225))
