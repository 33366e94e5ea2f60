"""Augmented views in the feature cache (``feature_views`` V): V > 1 stores V different views of
every training image made by the model's train transform, the same in every build and process;
V = 1 is the cache as it was (same key, same features); evaluation reads un-augmented features."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avalanche_clip.features import apply_feature_cache, clear_memory, split_image_tower
from avalanche_clip.features.fingerprint import combine
from avalanche_clip.features.views import DrawViews, view_seed
from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
from avalanche_clip.scenarios import TensorInputs, build_scenario

OPTIONS = {"max_train_per_class": 4, "max_test_per_class": 2}


@pytest.fixture(autouse=True)
def _fresh_memory():
    clear_memory()
    yield
    clear_memory()


def build(cache_dir: Path, *, views: int = 1, views_per_item: int = 1, batch_size: int = 64,
          augment: bool = True, num_workers: int = 0):
    """The tiny CLIP (seed 0) on a digits subset through the cache, with its train transform
    (RandomResizedCrop) unless ``augment`` is False. Returns (cached, benchmark, classifier)."""
    torch.manual_seed(0)
    model, train_tf, eval_tf, tokenizer = create_clip("tiny-clip")
    set_trainable(model, "projections")
    benchmark = build_scenario("digits", n_experiences=2, seed=0, train_transform=train_tf if augment else eval_tf,
                               eval_transform=eval_tf, **OPTIONS)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names)
    frozen = split_image_tower(model.visual, "projections").frozen  # before the tail is swapped in
    cached = apply_feature_cache(benchmark, classifier, mode=True, trainable="projections", cache_dir=cache_dir,
                                 batch_size=batch_size, num_workers=num_workers, progress=False, views=views,
                                 views_per_item=views_per_item)
    return cached, benchmark, frozen, train_tf


def stored_views(cached) -> torch.Tensor:
    return cached.source.train.dataset.views


def test_two_views_are_the_train_transform_of_each_image_seeded_by_view_and_index(tmp_path):
    cached, benchmark, frozen, train_tf = build(tmp_path, views=2)
    views = stored_views(cached)
    unaugmented = cached.source.train.dataset.unaugmented
    n = benchmark.num_train_samples
    assert views.shape == (2, n, unaugmented.shape[1])
    # an independent reference: the raw image through the train transform, torch seeded by (v, i)
    frozen.eval()
    with torch.no_grad():
        for v in range(2):
            for i in (0, 7, n - 1):
                image = benchmark.source.train.dataset[i][0]
                torch.manual_seed(view_seed(v, i))
                expected = frozen(train_tf(image).unsqueeze(0))[0]
                torch.testing.assert_close(views[v, i], expected, rtol=1e-5, atol=1e-6)
    # the augmentation is applied: the views differ from each other and from the un-augmented image
    # (RandomResizedCrop with scale (0.9, 1) can round to the whole image: 1 of these 40 twins match)
    assert ((views[0] - views[1]).norm(dim=1) > 0).float().mean() >= 0.9
    assert ((views[0] - unaugmented).norm(dim=1) > 0).float().mean() >= 0.9


def test_views_are_identical_across_builds_batch_sizes_workers_and_processes(tmp_path):
    first = stored_views(build(tmp_path / "a", views=2)[0]).clone()
    clear_memory()
    again = stored_views(build(tmp_path / "b", views=2, batch_size=5)[0])  # other batches, fresh folder
    assert torch.equal(first, again)
    clear_memory()
    assert torch.equal(first, stored_views(build(tmp_path / "w", views=2, batch_size=7, num_workers=2)[0]))
    script = (  # another process, with this one's thread count (float sums depend on it)
        "import sys, torch\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_features_views import build, stored_views\n"
        f"torch.save(stored_views(build(__import__('pathlib').Path({str(tmp_path / 'c')!r}), views=2)[0]), "
        f"{str(tmp_path / 'views.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert torch.equal(first, torch.load(tmp_path / "views.pt"))


def test_one_view_is_the_cache_as_before_and_more_views_reuse_its_entry(tmp_path):
    one, *_ = build(tmp_path, views=1)
    key = one.feature_cache["key"]
    meta = json.loads((tmp_path / "features" / key / "meta.json").read_text())
    # the un-augmented entry's key is made of the parts it always had, none about views
    assert sorted(meta) == ["checksums", "data", "format", "kernels", "model", "point", "transform", "weights"]
    assert combine({k: v for k, v in meta.items() if k != "checksums"}) == key
    assert isinstance(one.source.train.dataset, TensorInputs)  # today's training data: one feature per image
    assert one.stream_options.train_transform is None and one.stream_options.eval_transform is None
    assert one.feature_cache["views"] == 1
    x, *_ = one.train_stream[0].dataset[0]
    assert isinstance(x, torch.Tensor) and x.dim() == 1

    two, *_ = build(tmp_path, views=2, views_per_item=2)
    assert two.feature_cache["key"] == key  # the same un-augmented entry, its views in their own
    assert two.feature_cache["views_key"] != key
    assert torch.equal(two.source.train.dataset.unaugmented, one.source.train.dataset.inputs)
    entry = tmp_path / "features" / two.feature_cache["views_key"]
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "views.pt"]
    assert json.loads((entry / "meta.json").read_text())["views"] == 2


def test_evaluation_reads_un_augmented_features_and_training_draws_views(tmp_path):
    cached, *_ = build(tmp_path, views=2, views_per_item=2)
    data = cached.source.train.dataset
    test_features = cached.source.test.dataset.inputs[:, 0]
    for experience in cached.test_stream:
        for j in range(len(experience.dataset)):
            x, _, index, *_ = experience.dataset[j]
            assert torch.equal(x, test_features[int(index)])
    train = cached.train_stream[0].dataset
    for j in range(len(train)):
        x, _, index, *_ = train.eval()[j]  # the training data in the eval group: un-augmented
        assert torch.equal(x, data.unaugmented[int(index)])
        torch.manual_seed(j)
        first, second = train[j][0]  # both views of image `index`, in a drawn order
        ours = data.views[:, int(index)]
        assert (torch.equal(first, ours[0]) and torch.equal(second, ours[1])) or \
            (torch.equal(first, ours[1]) and torch.equal(second, ours[0]))


def test_the_first_view_drawn_does_not_depend_on_how_many_views_an_item_takes():
    stack = torch.arange(5 * 3, dtype=torch.float32).view(5, 3)  # slot 0 un-augmented, 4 views
    for seed in range(20):
        torch.manual_seed(seed)
        one = DrawViews(4, 1)(stack)
        torch.manual_seed(seed)
        two = DrawViews(4, 2)(stack)
        assert torch.equal(one, two[0]) and not torch.equal(two[0], two[1])
        assert not torch.equal(one, stack[0])
    assert DrawViews(2, 3).views_per_item == 2  # never more views than are stored


def test_views_need_a_random_train_transform_and_valid_counts(tmp_path):
    with pytest.raises(ValueError, match="feature_views=2 needs a random training transform"):
        build(tmp_path, views=2, augment=False)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match=r"feature_views must be an integer >= 1, got"):
            build(tmp_path, views=bad)


def test_views_without_the_cache_say_they_are_not_used(tmp_path):
    torch.manual_seed(0)
    model, train_tf, eval_tf, tokenizer = create_clip("tiny-clip")
    set_trainable(model, "all")  # the whole tower trains: nothing to cache
    benchmark = build_scenario("digits", n_experiences=2, seed=0, train_transform=train_tf,
                               eval_transform=eval_tf, **OPTIONS)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names)
    with pytest.warns(UserWarning, match=r"feature_views=2 is not used: the feature cache is off \(trainable='all'"):
        same = apply_feature_cache(benchmark, classifier, mode="auto", trainable="all", cache_dir=tmp_path,
                                   progress=False, views=2, views_per_item=2)
    assert same is benchmark
