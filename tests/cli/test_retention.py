"""``retention_sets``: held-out sets scored zero-shot after every experience (issue 26).

Checked: the key's validation (one ConfigError per mistake, naming it); the held-out source
(class subset relabelled, cap per class, the same images); a real run whose recorded retention
equals an independent computation with the model's own encoders over the set's files; every
other record field identical with and without sets; configs without the key unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from cli_fixtures import main, sweep_records, tiny_config, tiny_sweep_config, write_config
from PIL import Image

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.models import create_clip
from avalanche_clip.pipeline.config import resolve_config
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.run import execute_run, prepare_run
from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.scenarios import build_source
from avalanche_clip.scenarios.heldout import heldout_source

CLASSES = ["airplane", "cat", "truck"]


def _image_folder(root: Path, names: list[str], per_class: int = 3) -> Path:
    """An ImageFolder of small distinct RGB images (a different colour per class and image)."""
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((8, 8, 3), (40 * c + 10 * i) % 256, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def cifar_subset(data_root, tmp_path) -> Path:
    """Three CIFAR-10 test classes, four images each, copied into an ImageFolder of its own."""
    folder = tmp_path / "heldout"
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
        for path in sorted((data_root / "cifar10" / "test" / name).iterdir())[:4]:
            shutil.copy(path, folder / name / path.name)
    return folder


def _config(tmp_path: Path, sets: list[dict] | None = None, **overrides):
    raw = tiny_config(tmp_path / "cache", **overrides)
    if sets is not None:
        raw["retention_sets"] = sets
    return parse_run_config(resolve_config([raw]))


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "a", "folder": "/no/such/folder"}, "/no/such/folder is not a folder"),
    ({"name": "a", "folder": "FOLDER", "classes": []}, "classes is empty"),
    ({"name": "a", "folder": "FOLDER", "classes": ["x", "x"]}, "lists ['x'] more than once"),
    ({"folder": "FOLDER"}, "needs a name"),
    ({"name": "a/b", "folder": "FOLDER"}, "path separator"),
    ({"name": "a"}, "exactly one of folder"),
    ({"name": "a", "folder": "FOLDER", "scenario": "digits"}, "exactly one of folder"),
    ({"name": "a", "scenario": "nope"}, "'nope' is not a registered scenario"),
    ({"name": "a", "scenario": "digits", "split": "val"}, "split='val'; expected one of ('test', 'train')"),
    ({"name": "a", "folder": "FOLDER", "split": "train"}, "split applies to scenario sets"),
    ({"name": "a", "folder": "FOLDER", "max_per_class": 0}, "max_per_class must be an integer >= 1"),
    ({"name": "a", "scenario": "digits", "domains": ["x"]}, "domains applies to domain-incremental"),
    ({"name": "a", "folder": "FOLDER", "colour": 1}, "unknown key(s) ['colour']"),
])
def test_a_bad_entry_is_one_config_error_naming_it(tmp_path, entry, message):
    folder = _image_folder(tmp_path / "set", ["cube"])
    entry = {k: (str(folder) if v == "FOLDER" else v) for k, v in entry.items()}
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, [entry])
    assert message in str(err.value) and "retention_sets[0]" in str(err.value)


def test_two_sets_of_one_name_and_a_non_list_are_refused(tmp_path):
    folder = str(_image_folder(tmp_path / "set", ["cube"]))
    with pytest.raises(ConfigError, match="names 'a' more than once"):
        _config(tmp_path, [{"name": "a", "folder": folder}, {"name": "a", "folder": folder}])
    with pytest.raises(ConfigError, match="must be a list of mappings"):
        _config(tmp_path, {"name": "a", "folder": folder})


def test_a_set_sharing_a_class_with_the_stream_is_refused_when_the_run_is_built(tmp_path):
    # digits' classes are zero..nine; "Two" is "two" as a prompt
    folder = str(_image_folder(tmp_path / "set", ["cube", "Two"]))
    config = _config(tmp_path, [{"name": "shapes", "folder": folder}])
    with pytest.raises(ConfigError, match=r"'shapes' shares classes \['Two'\] with the stream"):
        prepare_run(config)


def test_a_class_subset_is_relabelled_in_its_order_and_capped_per_class(tmp_path):
    digits = build_source("digits")
    spec = _config(tmp_path, [{"name": "d", "scenario": "digits", "classes": ["seven", "two"],
                               "max_per_class": 5}]).retention[0]
    source = heldout_source(spec)
    assert source.class_names == ["seven", "two"]
    assert sorted(source.test.targets) == [0] * 5 + [1] * 5
    full = digits.test
    for i in range(len(source.test)):  # each kept image is a test image of the class it is labelled
        image, label = source.test.dataset[i]
        matches = [j for j in range(len(full)) if full.targets[j] == [7, 2][label]
                   and np.array_equal(np.asarray(full.dataset[j][0]), np.asarray(image))]
        assert matches, f"image {i} (label {label}) is not a test image of {source.class_names[label]}"
    assert sorted(source.train.targets) == [0, 1]  # one image per class: what the stream builder needs


def test_configs_without_sets_do_not_write_the_key(tmp_path):
    config = _config(tmp_path)
    assert "retention_sets" not in config.to_dict() and config.retention == ()
    folder = str(_image_folder(tmp_path / "set", ["cube"]))
    with_sets = _config(tmp_path, [{"name": "s", "folder": folder}])
    assert with_sets.to_dict()["retention_sets"] == [{"name": "s", "folder": folder}]
    assert with_sets.replace(seed=1).retention == with_sets.retention


def _independent_accuracy(model, folder: Path, classes: list[str]) -> float:
    """Accuracy of ``model``'s own encoders over the image files in ``folder``: prompts "a photo
    of a <class>." per class, cosine similarity, argmax over the set's classes."""
    _, _, eval_tf, tokenizer = create_clip("tiny-clip", None)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer([f"a photo of a {c}." for c in classes])), dim=-1)
        for label, name in enumerate(classes):
            for path in sorted((folder / name).iterdir()):
                image = eval_tf(Image.open(path).convert("RGB")).unsqueeze(0)
                image = F.normalize(model.encode_image(image), dim=-1)
                correct += int((image @ text.t()).argmax(1).item() == label)
                total += 1
    return correct / total


def test_recorded_retention_is_the_trained_models_accuracy_on_the_set(tmp_path, cifar_subset):
    config = _config(tmp_path, [{"name": "cifar", "folder": str(cifar_subset)}], train_epochs=3,
                     lr=0.05)
    untrained = _independent_accuracy(create_clip("tiny-clip", None).model, cifar_subset, CLASSES)
    prepared = prepare_run(config)
    assert getattr(prepared.retention.heads[0].benchmark, "feature_cache", None)  # frozen trunk: cached
    run = ContinualRun(prepared.strategy, prepared.benchmark, identity=prepared.identity,
                       progress=False, retention=prepared.retention.record_fields)
    records = run.run()
    final = records[-1]
    expected = _independent_accuracy(prepared.classifier.clip, cifar_subset, CLASSES)
    assert final["retention"] == {"cifar": pytest.approx(expected, abs=1e-12)}
    assert final["retention_zero_shot"] == {"cifar": pytest.approx(untrained, abs=1e-12)}
    assert final["retention_drop"]["cifar"] == pytest.approx(untrained - expected, abs=1e-12)
    assert all(r["retention_zero_shot"] == final["retention_zero_shot"] for r in records)


@pytest.mark.parametrize("trainable", ["projections", "all"])  # features cached / images through the tower
def test_other_record_fields_are_the_same_with_and_without_sets(tmp_path, trainable):
    folder = str(_image_folder(tmp_path / "set", ["cube", "sphere", "cone"], per_class=4))
    plain = execute_run(_config(tmp_path, trainable=trainable), tmp_path / "plain")
    config = _config(tmp_path, [{"name": "shapes", "folder": folder}], trainable=trainable)
    scored = execute_run(config, tmp_path / "scored")
    assert len(plain) == len(scored) == 2
    for without, with_sets in zip(plain, scored, strict=True):
        assert set(with_sets) - set(without) == {"retention", "retention_drop", "retention_zero_shot"}
        assert {k: v for k, v in with_sets.items() if k in without and k != "wall_time_s"} == \
            {k: v for k, v in without.items() if k != "wall_time_s"}
    written = yaml.safe_load((tmp_path / "scored" / "config.yaml").read_text())
    assert written["retention_sets"] == [{"name": "shapes", "folder": folder}]
    assert "retention_sets" not in yaml.safe_load((tmp_path / "plain" / "config.yaml").read_text())


def test_every_record_of_a_sweep_with_sets_carries_each_sets_accuracy_and_the_report_shows_it(tmp_path):
    shapes = str(_image_folder(tmp_path / "shapes", ["cube", "sphere", "cone"], per_class=3))
    tools = str(_image_folder(tmp_path / "tools", ["hammer", "saw"], per_class=4))
    sets = [{"name": "shapes", "folder": shapes}, {"name": "tools", "folder": tools, "max_per_class": 2}]
    config = tiny_sweep_config(tmp_path / "cache", strategies=["zero-shot", "gcl"], mem_sizes=[0, 10],
                               seeds=[0, 1], retention_sets=sets)
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(write_config(tmp_path / "sweep.yaml", config)), "--out", str(out)]) == 0
    runs = sweep_records(out)
    assert len(runs) == 6
    for run_id, records in runs.items():
        for record in records:
            assert set(record["retention"]) == set(record["retention_drop"]) == {"shapes", "tools"}, run_id
            for name, value in record["retention"].items():
                assert 0 <= value <= 1
                assert record["retention_drop"][name] == pytest.approx(
                    record["retention_zero_shot"][name] - value, abs=1e-15)
        if run_id.split("__")[1] == "zero-shot":  # never trains: it keeps the untrained level
            assert records[-1]["retention"] == records[-1]["retention_zero_shot"]
    report = (out / "report" / "report.md").read_text()
    assert "## Retention on held-out sets" in report
    for name in ("shapes", "tools"):
        assert f"| digits   | {name}" in report and f"retention_vs_memory__digits__{name}.png" in report
