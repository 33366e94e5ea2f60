"""ZSCL's reference set from the run config (``strategy_options.zscl.reference``, issue 26).

Checked: one ConfigError per bad entry, naming it; a reference that is also a retention set is
refused naming both; a real run on real CIFAR-10 images (skipped without them) whose reference
batches are rows of the feature cache's entry of that folder (the frozen trunk of its image files,
checked against the model's own encoder), whose texts are the initial model's prompt embeddings
of its class names (computed here with the model's encoders), which trains differently from the
held-out default; raw eval-transformed images without the cache; checkpoint and resume.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from PIL import Image

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.features import apply_feature_cache
from avalanche_clip.features.cache import load_or_build
from avalanche_clip.models import CLIPClassifier, create_clip
from avalanche_clip.pipeline.config import resolve_config
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.run import prepare_run
from avalanche_clip.pipeline.run_loop import ContinualRun, read_records
from avalanche_clip.pipeline.zscl_reference_checks import reference_spec
from avalanche_clip.scenarios.heldout import heldout_benchmark, heldout_source
from avalanche_clip.strategies.zscl import ZSCLCheckpointError
from avalanche_clip.training.batching import derived_seed
from avalanche_clip.training.seeding import seed_everything

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_fixtures import tiny_config  # noqa: E402

CLASSES = ["cat", "dog", "frog"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}."]  # two: the mean over templates is exercised
COMPARED = ("experience", "stream_accuracy", "accuracy_per_experience", "forgetting", "final")


@pytest.fixture
def reference_folder(data_root, tmp_path) -> Path:
    """Three CIFAR-10 test classes, four images each, copied into an ImageFolder of its own."""
    folder = tmp_path / "reference"
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
        for path in sorted((data_root / "cifar10" / "test" / name).iterdir())[:4]:
            shutil.copy(path, folder / name / path.name)
    return folder


def _config(tmp_path: Path, reference: dict | None = None, retention: list | None = None, **overrides):
    raw = tiny_config(tmp_path / "cache", **{"strategy": "zscl", "templates": TEMPLATES, **overrides})
    if reference is not None:
        raw["strategy_options"] = {"zscl": {"reference": reference}}
    if retention is not None:
        raw["retention_sets"] = retention
    return parse_run_config(resolve_config([raw]))


def _folder(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (len(name) * 20, 0, 0)).save(root / name / "0.png")
    return root


@pytest.mark.parametrize(("reference", "message"), [
    ("FOLDER", "reference must be a mapping"),
    ({"folder": "/no/such/folder"}, "/no/such/folder is not a folder"),
    ({"folder": "FOLDER", "classes": []}, "classes is empty"),
    ({"folder": "FOLDER", "max_per_class": 0}, "max_per_class must be an integer >= 1"),
    ({"folder": "FOLDER", "colour": 1}, "unknown key(s) ['colour']"),
    ({"classes": ["cube"]}, "exactly one of folder"),
    ({"folder": "FOLDER", "split": "train"}, "split applies to scenario sets"),
])
def test_a_bad_reference_is_one_config_error_naming_it(tmp_path, reference, message):
    folder = str(_folder(tmp_path / "set", ["cube"]))
    reference = folder if reference == "FOLDER" else {k: (folder if v == "FOLDER" else v) for k, v in reference.items()}
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, reference)
    assert message in str(err.value) and "zscl" in str(err.value) and "reference" in str(err.value)


def test_a_class_the_folder_lacks_is_refused_when_the_run_is_built(tmp_path):
    config = _config(tmp_path, {"folder": str(_folder(tmp_path / "set", ["cube"])), "classes": ["cone"]})
    with pytest.raises(ConfigError, match=r"'zscl-reference': classes \['cone'\] are not among its classes"):
        prepare_run(config)


def test_a_reference_that_is_also_a_retention_set_is_refused_naming_both(tmp_path):
    folder = _folder(tmp_path / "set", ["cube", "cone"])
    other_spelling = str(folder / "cube" / "..")  # the same folder once resolved
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, {"folder": other_spelling, "classes": ["cone"]},
                retention=[{"name": "shapes", "folder": str(folder)}])
    message = str(err.value)
    assert "strategy_options.zscl.reference" in message and "retention set 'shapes'" in message
    assert str(folder.resolve()) in message and "classes ['cone']" in message
    # other classes of the same folder, or another folder: accepted
    accepted = _config(tmp_path, {"folder": str(folder), "classes": ["cone"]},
                       retention=[{"name": "shapes", "folder": str(folder), "classes": ["cube"]}])
    assert reference_spec(accepted).classes == ("cone",)
    elsewhere = _folder(tmp_path / "other", ["cube"])
    _config(tmp_path, {"folder": str(elsewhere)}, retention=[{"name": "shapes", "folder": str(folder)}])
    # a set of another strategy's options, or another strategy, is not ZSCL's reference
    assert reference_spec(_config(tmp_path, {"folder": str(folder)}, strategy="gcl")) is None


def _initial_clip():
    """The tiny CLIP every run here starts from (random weights of seed 0, as ``prepare_run`` builds it)."""
    seed_everything(0)
    return create_clip("tiny-clip", None).model


def test_a_reference_sharing_image_files_with_a_retention_set_is_refused_when_the_run_is_built(tmp_path):
    shapes = _folder(tmp_path / "shapes", ["cube", "cone"])
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "cone").symlink_to(shapes / "cone")  # another folder, the same files
    _folder(linked, ["ball"])
    config = _config(tmp_path, {"folder": str(linked)}, retention=[{"name": "shapes", "folder": str(shapes)}])
    with pytest.raises(ConfigError) as err:
        prepare_run(config)
    message = str(err.value)
    assert "holds 1 image file(s) of retention set 'shapes'" in message and str(shapes / "cone" / "0.png") in message
    # without the link: built
    (linked / "cone").unlink()
    assert prepare_run(config).strategy.reference.text_features.shape[0] == 1


def _encoded(clip, eval_tf, paths) -> torch.Tensor:
    """``[N, D]`` the model's own normalised image embeddings of image files."""
    images = torch.stack([eval_tf(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return F.normalize(clip.encode_image(images), dim=-1)


def _prompt_embeddings(clip, names) -> torch.Tensor:
    """``[C, D]``: per class, the normalised mean of the normalised text embeddings of its prompts."""
    _, _, _, tokenizer = create_clip("tiny-clip", None)
    with torch.no_grad():
        rows = [F.normalize(F.normalize(clip.encode_text(tokenizer([t.format(n) for t in TEMPLATES])), dim=-1)
                            .mean(0), dim=0) for n in names]
    return torch.stack(rows)


def test_a_folder_reference_reads_its_cached_features_and_the_initial_models_texts(tmp_path, reference_folder):
    config = _config(tmp_path, {"folder": str(reference_folder), "max_per_class": 3})
    initial = _initial_clip()  # the teacher
    prepared = prepare_run(config)
    strategy, clip = prepared.strategy, prepared.classifier.clip
    reference = strategy.reference
    assert prepared.benchmark.feature_cache  # frozen trunk: the run trains on cached features
    # the cache entry of the folder's 9 images (3 a class), as a retention set of them reads it
    spec = reference_spec(config)
    _, _, eval_tf, tokenizer = create_clip("tiny-clip", None)
    head = CLIPClassifier(clip, tokenizer, CLASSES, TEMPLATES)
    cached = apply_feature_cache(heldout_benchmark(spec, eval_tf), head, mode=True, trainable=config.trainable,
                                 cache_dir=config.cache_dir, progress=False)
    entry, built = load_or_build(config.cache_dir, cached.feature_cache["key"], {}, build=None)
    assert not built
    rows = entry["test"]
    assert len(reference.images) == len(rows) == 9
    for i in range(9):
        assert torch.equal(reference.images[i][0], rows[i])
    # ... which are the frozen trunk of that folder's files: through the tail, the model's own embeddings
    paths = heldout_source(spec).test.dataset.paths
    assert {Path(p).parent.name for p in paths} == set(CLASSES)
    with torch.no_grad():
        torch.testing.assert_close(head.encode_images(rows), _encoded(clip, eval_tf, paths), rtol=0, atol=1e-5)
    # the batches: drawn from those rows by the strategy's seeded generator
    generator = torch.Generator().manual_seed(derived_seed(config.seed, "zscl-reference-batches"))
    draws = torch.randint(9, (config.train_mb_size,), generator=generator)
    x, text = strategy.reference_batch()
    assert torch.equal(x, rows[draws])
    # the texts: the initial model's prompt embeddings of the class names, over the run's templates
    expected = _prompt_embeddings(initial, CLASSES)
    torch.testing.assert_close(text, expected, rtol=0, atol=1e-5)
    for experience in prepared.benchmark.train_stream:
        strategy.train(experience)
    assert not len(strategy.held_out) and not strategy.pool  # nothing of the stream held out
    torch.testing.assert_close(strategy.teacher_text, expected, rtol=0, atol=1e-5)  # still the teacher's
    assert not torch.allclose(_prompt_embeddings(clip, CLASSES), expected, atol=1e-3)  # the student moved


def _trained(config):
    prepared = prepare_run(config)
    run = ContinualRun(prepared.strategy, prepared.benchmark, identity=prepared.identity, progress=False)
    return run.run(), prepared.strategy


def test_the_folder_reference_trains_otherwise_than_the_held_out_default(tmp_path, reference_folder):
    default_records, default = _trained(_config(tmp_path))
    folder_records, folder = _trained(_config(tmp_path, {"folder": str(reference_folder)}))
    assert len(default.held_out) > 0 and not len(folder.held_out)
    weights = [(n, p) for n, p in folder.model.named_parameters() if p.requires_grad]
    assert any(not torch.equal(p, dict(default.model.named_parameters())[n]) for n, p in weights)
    assert folder_records[-1]["hyperparameters"]["reference"] == {"folder": str(reference_folder)}
    assert "reference" not in default_records[-1]["hyperparameters"]


def test_without_the_cache_the_reference_holds_the_eval_transformed_images(tmp_path, reference_folder):
    config = _config(tmp_path, {"folder": str(reference_folder), "classes": ["frog", "cat"], "max_per_class": 2},
                     feature_cache=False)
    reference = prepare_run(config).strategy.reference
    _, _, eval_tf, _ = create_clip("tiny-clip", None)
    paths = heldout_source(reference_spec(config)).test.dataset.paths
    assert sorted(Path(p).parent.name for p in paths) == ["cat", "cat", "frog", "frog"]
    assert len(reference.images) == 4
    for i, path in enumerate(paths):
        x, label, *_ = reference.images[i]
        assert torch.equal(x, eval_tf(Image.open(path).convert("RGB")))
        assert ["frog", "cat"][label] == Path(path).parent.name  # labels in the classes' order, as the texts
    torch.testing.assert_close(reference.text_features, _prompt_embeddings(_initial_clip(), ["frog", "cat"]), rtol=0, atol=1e-5)


class _Crash(Exception):
    pass


class _CrashBefore(SupervisedPlugin):
    def __init__(self, experience: int):
        super().__init__()
        self.experience = experience

    def before_training_exp(self, strategy, **kwargs):
        if strategy.experience.current_experience == self.experience:
            raise _Crash


def _checkpointed(config, out: Path, *, plugins=(), resume=False):
    prepared = prepare_run(config, plugins=plugins)
    run = ContinualRun(prepared.strategy, prepared.benchmark, identity=prepared.identity, progress=False,
                       records_path=out / "results.jsonl", checkpoint_path=out / "checkpoint.pt",
                       config=config.to_dict())
    return run.run(resume=resume), prepared.strategy


@pytest.mark.filterwarnings("ignore:plugin _CrashBefore has no state_dict")
def test_a_run_with_a_folder_reference_resumes_to_the_uninterrupted_one(tmp_path, reference_folder):
    config = _config(tmp_path, {"folder": str(reference_folder)}, n_experiences=5)
    reference, whole = _checkpointed(config, tmp_path / "whole")
    with pytest.raises(_Crash):
        _checkpointed(config, tmp_path / "resumed", plugins=(_CrashBefore(2),))
    assert [r["experience"] for r in read_records(tmp_path / "resumed" / "results.jsonl")] == [0, 1]
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    extra = _find(saved, "extra")
    assert set(extra) == {"teacher_fingerprint", "held_out", "reference_generator", "reference_fingerprint"}
    assert not len(extra["held_out"])  # the reference set itself is rebuilt from the config, not saved
    resumed, strategy = _checkpointed(config, tmp_path / "resumed", resume=True)
    assert [{k: r[k] for k in COMPARED} for r in resumed] == [{k: r[k] for k in COMPARED} for r in reference]
    for (key, a), (_, b) in zip(whole.model.state_dict().items(), strategy.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    # a strategy built with another reference refuses that checkpoint's state
    other = prepare_run(_config(tmp_path, {"folder": str(reference_folder), "max_per_class": 2},
                                n_experiences=5)).strategy
    with pytest.raises(ZSCLCheckpointError, match="reference set this strategy was built with differs"):
        other.load_checkpoint_state(extra)


def _find(state, key):
    """The first value under ``key`` in nested mappings (the checkpoint's layout is the trainer's)."""
    if isinstance(state, dict):
        if key in state:
            return state[key]
        for value in state.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None
