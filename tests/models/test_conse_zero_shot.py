"""minilm-effnet-conse classifies real CIFAR-10 and PACS images zero-shot well above chance,
through the library path (build_scenario + CLIPClassifier + experiment.zero_shot_accuracy), at
the proxies' 128 px. Subsampled to stay fast (about 8 s per data set on one core); on the full
test sets it scores CIFAR-10 37.4 % (10,000 images) and PACS 35.3 % (1,998, most of them
sketches; art 49.5, cartoon 29.2, photo 76.0, sketch 14.4)."""

from __future__ import annotations

import pytest

from avalanche_clip.models import CLIPClassifier
from avalanche_clip.pipeline.run import zero_shot_accuracy
from avalanche_clip.scenarios import build_scenario

pytestmark = pytest.mark.data


def _zero_shot(conse, scenario: str, root, per_class: int) -> float:
    model, _, eval_tf, tokenizer = conse
    benchmark = build_scenario(scenario, root=root, eval_transform=eval_tf, with_index=False,
                               max_train_per_class=1, max_test_per_class=per_class)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names, "photo")
    return zero_shot_accuracy(classifier, benchmark, device="cpu", batch_size=100)


@pytest.mark.parametrize(
    ("scenario", "folder", "per_class", "chance", "minimum"),
    [
        # measured on these subsamples: CIFAR-10 (300 images) 0.413, PACS (280, 70 per domain)
        # 0.486; minimums about 3 standard errors below
        ("split-imagefolder", "cifar10", 30, 0.10, 0.33),
        ("domain-folder", "pacs", 10, 1 / 7, 0.38),
    ],
)
def test_zero_shot_accuracy_is_well_above_chance(conse, data_root, scenario, folder, per_class, chance, minimum):
    accuracy = _zero_shot(conse, scenario, data_root / folder, per_class)
    print(f"{folder}: zero-shot {accuracy:.3f} (chance {chance:.3f})")
    assert accuracy >= minimum, f"{folder}: zero-shot {accuracy:.3f}, expected >= {minimum}"
    assert accuracy >= 2 * chance
