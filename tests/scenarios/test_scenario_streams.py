"""Stream building: class order, experience splits, DIL evaluation, subsampling, rebuild."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import TensorDataset

from avalanche_clip.scenarios import (
    SAMPLE_INDEX_ATTR,
    SCENARIOS,
    build_scenario,
    rebuild_scenario,
    seeded_class_order,
    seen_test_experiences,
    unaugmented_dataset,
)


def ids_of(dataset) -> list[int]:
    return list(getattr(dataset, SAMPLE_INDEX_ATTR))


def test_registry_metadata():
    assert set(SCENARIOS.list()) >= {
        "split-cifar100",
        "split-imagenet",
        "domainnet",
        "split-imagefolder",
        "domain-folder",
        "digits",
    }
    for name in SCENARIOS:
        info = SCENARIOS.info(name)
        assert info["kind"] in ("class-incremental", "domain-incremental") and info["description"]
    assert SCENARIOS.info("domainnet")["kind"] == "domain-incremental"


def test_class_order_from_private_generator():
    state = torch.random.get_rng_state()
    a = build_scenario("digits", seed=3)
    assert torch.equal(state, torch.random.get_rng_state()), "the global torch RNG was touched"
    b = build_scenario("digits", seed=3)
    c = build_scenario("digits", seed=4)
    assert a.class_order == b.class_order == seeded_class_order(10, 3)
    assert a.class_order != c.class_order
    assert sorted(a.class_order) == list(range(10))
    assert a.classes_per_experience == [a.class_order[i : i + 2] for i in range(0, 10, 2)]
    for exp, classes in zip(a.train_stream, a.classes_per_experience, strict=True):
        assert set(exp.classes_in_this_experience) == set(classes)
    for exp, classes in zip(a.test_stream, a.classes_per_experience, strict=True):
        assert set(exp.classes_in_this_experience) == set(classes)


def test_explicit_class_order_and_experiences():
    bm = build_scenario("digits", n_experiences=2, class_order=list(range(10)))
    assert bm.classes_per_experience == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert bm.n_classes_per_exp == [5, 5] and len(bm.train_stream) == 2 == bm.n_experiences
    with pytest.raises(ValueError, match="permutation"):
        build_scenario("digits", class_order=[0, 1, 2])


def test_digits_defaults():
    bm = build_scenario("digits")
    assert bm.scenario_kind == "class-incremental"
    assert bm.class_names[:3] == ["zero", "one", "two"] and bm.num_classes == 10
    assert len(bm.train_stream) == len(bm.test_stream) == 5
    assert bm.num_train_samples + bm.num_test_samples == 1797
    assert bm.num_train_samples == sum(len(e.dataset) for e in bm.train_stream)
    x, y, idx, t = bm.train_stream[0].dataset[0]
    assert x.shape == (3, 32, 32) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # stratified: every class in both splits
    assert set(bm.source.test.targets) == set(range(10))


@pytest.mark.parametrize("n", [3, 4, 7])
def test_n_experiences_must_divide_classes(n):
    with pytest.raises(ValueError, match=f"n_experiences={n} does not divide the 10 classes"):
        build_scenario("digits", n_experiences=n)


def test_unknown_option_names_option_and_accepted():
    with pytest.raises(
        TypeError, match=r"unknown option\(s\) \['colour'\].*max_train_per_class.*image_size"
    ):
        build_scenario("digits", colour="red")
    with pytest.raises(TypeError, match="download"):
        build_scenario("split-cifar100", root="/nonexistent", image_size=3)


def test_domains_rejected_for_class_incremental():
    with pytest.raises(ValueError, match="class-incremental"):
        build_scenario("digits", domains=["a"])


def test_subsampling_is_deterministic_and_balanced():
    a = build_scenario("digits", max_train_per_class=7, max_test_per_class=3, seed=1)
    b = build_scenario("digits", max_train_per_class=7, max_test_per_class=3, seed=2)
    assert Counter(a.source.train.targets) == {c: 7 for c in range(10)}
    assert Counter(a.source.test.targets) == {c: 3 for c in range(10)}
    assert a.num_train_samples == 70
    # the subset does not depend on the class-order seed, only on subsample_seed
    pix_a = [a.source.train.dataset[i][0].tobytes() for i in range(70)]
    pix_b = [b.source.train.dataset[i][0].tobytes() for i in range(70)]
    assert pix_a == pix_b
    c = build_scenario("digits", max_train_per_class=7, subsample_seed=5)
    assert [c.source.train.dataset[i][0].tobytes() for i in range(70)] != pix_a


def test_dil_stream_per_domain_and_evaluation_covers_seen(fake_domainnet):
    bm = build_scenario("domainnet", root=fake_domainnet)
    assert bm.scenario_kind == "domain-incremental"
    assert bm.domain_names == ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]
    assert bm.class_names == ["aircraft carrier", "The Eiffel Tower", "zebra"]
    assert bm.num_classes == 3 and len(bm.train_stream) == 6
    for t, exp in enumerate(bm.train_stream):
        assert exp.domain == bm.domain_names[t] and exp.domain_id == t
        assert set(exp.classes_in_this_experience) == {0, 1, 2}
        doms = {bm.source.train.domains[i] for i in ids_of(exp.dataset)}
        assert doms == {t}
        seen = seen_test_experiences(bm, t)
        assert [e.domain for e in seen] == bm.domain_names[: t + 1]
        test_doms = {bm.source.test.domains[i] for e in seen for i in ids_of(e.dataset)}
        assert test_doms == set(range(t + 1))
    with pytest.raises(IndexError):
        seen_test_experiences(bm, 6)


def test_dil_domain_order_and_selection(fake_domainnet):
    bm = build_scenario("domainnet", root=fake_domainnet, domains=["sketch", "real"])
    assert bm.domain_names == ["sketch", "real"]
    assert [e.domain for e in bm.train_stream] == ["sketch", "real"]
    assert [e.domain for e in bm.test_stream] == ["sketch", "real"]
    assert bm.num_train_samples == 2 * 3 * 2
    # global ids follow the chosen order: experience 0 holds ids 0..5
    assert ids_of(bm.train_stream[0].dataset) == list(range(6))
    with pytest.raises(ValueError, match=r"unknown domain\(s\) \['photo'\].*available"):
        build_scenario("domainnet", root=fake_domainnet, domains=["photo"])
    with pytest.raises(ValueError, match="one experience per domain"):
        build_scenario("domainnet", root=fake_domainnet, n_experiences=3)
    with pytest.raises(ValueError, match="class_order applies to class-incremental"):
        build_scenario("domainnet", root=fake_domainnet, class_order=[0, 1, 2])


def test_seen_test_experiences_cil():
    bm = build_scenario("digits")
    for t in range(5):
        seen = seen_test_experiences(bm, t)
        classes = set().union(*(e.classes_in_this_experience for e in seen))
        assert classes == set(bm.class_order[: 2 * (t + 1)])


def test_rebuild_over_feature_tensors_keeps_streams():
    bm = build_scenario("digits", max_train_per_class=5, max_test_per_class=2)
    full = unaugmented_dataset(bm, "train")
    assert len(full) == bm.num_train_samples
    assert [full[i][2] for i in range(len(full))] == list(range(len(full)))
    feats = torch.stack([full[i][0].flatten()[:16] for i in range(len(full))])  # "features"
    test_full = unaugmented_dataset(bm, "test")
    test_feats = torch.stack([test_full[i][0].flatten()[:16] for i in range(len(test_full))])

    fbm = rebuild_scenario(bm, train_data=feats, test_data=test_feats)
    assert fbm.class_order == bm.class_order and fbm.class_names == bm.class_names
    for name in ("train_stream", "test_stream"):
        for e_img, e_feat in zip(getattr(bm, name), getattr(fbm, name), strict=True):
            assert ids_of(e_img.dataset) == ids_of(e_feat.dataset)
            for (_, y, idx, t), (f, y2, idx2, t2) in zip(
                e_img.dataset, e_feat.dataset, strict=True
            ):
                src = feats if name == "train_stream" else test_feats
                assert (y, idx, t) == (y2, idx2, t2) and torch.equal(f, src[idx])
    plain = rebuild_scenario(fbm, with_index=False)
    assert len(plain.train_stream[0].dataset[0]) == 3
    # a dataset of (input, label) works too; its labels are checked
    ds = TensorDataset(feats, torch.tensor(bm.source.train.targets))
    with pytest.raises(ValueError, match="pass both train_transform and eval_transform"):
        rebuild_scenario(bm, train_data=ds)
    one = rebuild_scenario(bm, train_data=ds, train_transform=None, eval_transform=None)
    assert len(one.train_stream[0].dataset) == len(bm.train_stream[0].dataset)


def test_rebuild_rejects_different_samples():
    bm = build_scenario("digits", max_train_per_class=5)
    with pytest.raises(ValueError, match="same samples in the same order"):
        rebuild_scenario(bm, train_data=torch.zeros(bm.num_train_samples - 1, 4))

    class Shuffled(torch.utils.data.Dataset):
        targets = list(reversed(bm.source.train.targets))

        def __len__(self):
            return len(self.targets)

        def __getitem__(self, i):
            return torch.zeros(2), self.targets[i]

    with pytest.raises(ValueError, match="targets differ"):
        rebuild_scenario(bm, train_data=Shuffled())


def test_rebuild_without_new_data_keeps_transforms():
    bm = build_scenario("digits", max_train_per_class=3)
    same = rebuild_scenario(bm)
    x1, x2 = bm.train_stream[0].dataset[0][0], same.train_stream[0].dataset[0][0]
    assert torch.equal(x1, x2)
    assert same.stream_options == bm.stream_options
