"""Two augmented views per image on the feature cache (``feature_views: 2``): every method draws
the same view of each item at each step, Co2L and CaSSLe take both views of each image (their
losses checked against loop references with the twin included), and the records say so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from avalanche.core import SupervisedPlugin
from contrastive_references import relation_distillation, supcon, twin_contrast
from strategy_fixtures import pretrained_run

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.losses.supcon import predictive_contrastive_distillation
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.run_loop import ContinualRun, read_records
from avalanche_clip.training.checkpoint import config_differences

ROOT = Path(__file__).resolve().parents[2]
RUN = {"feature_views": 2, "n_experiences": 2, "steps_per_experience": 4,
       "scenario_options": {"max_train_per_class": 12, "max_test_per_class": 4}}


class Inputs(SupervisedPlugin):
    """Each training step's sample ids, ``mb_x`` and views."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def before_forward(self, strategy, **_):
        if strategy.is_training:
            views = None if strategy.mb_views is None else [v.clone() for v in strategy.mb_views]
            self.steps.append((strategy.mb_index.clone(), strategy.mb_x.clone(), views))


def run(strategy, cache_dir, *, plugins=(), **overrides):
    prepared = pretrained_run(strategy, cache_dir, plugins=plugins, **{**RUN, **overrides})
    records = ContinualRun(prepared.strategy, prepared.benchmark, identity=prepared.identity,
                           progress=False).run()
    return prepared, records


def capture_losses(strategy):
    """Wrap ``representation_loss``: each call's inputs (detached) and value."""
    calls = []
    original = strategy.representation_loss

    def spy(projection):
        value = original(projection)
        past = strategy.previous_projection()
        calls.append({"z": projection.detach().double(), "labels": strategy.view_labels().clone(),
                      "memory": strategy.memory_rows().clone(), "past": None if past is None else past.double(),
                      "views": strategy.mb_views, "index": strategy.mb_index.clone(), "value": value.detach()})
        return value

    strategy.representation_loss = spy
    return calls


def test_every_method_draws_the_same_augmented_view_of_each_item_at_each_step(tmp_path):
    seen = {}
    for name, memory in (("gcl", 20), ("co2l", 20), ("ce", 0), ("cassle", 0)):
        seen[name] = Inputs()
        prepared, _ = run(name, tmp_path, plugins=[seen[name]], mem_size=memory)
    views = prepared.benchmark.source.train.dataset.views  # [2, N, D]
    for one, other in (("gcl", "co2l"), ("ce", "cassle")):
        assert len(seen[one].steps) == len(seen[other].steps) == 8
        for (ids, x, one_views), (ids2, x2, two_views) in zip(seen[one].steps, seen[other].steps, strict=True):
            assert torch.equal(ids, ids2) and torch.equal(x, x2)  # same items, same first view
            assert one_views is None and len(two_views) == 2 and torch.equal(two_views[0], x)
            for row, i in enumerate(ids.tolist()):  # an augmented view of that image, the twin the other
                stored = views[:, i]
                first = 0 if torch.equal(x[row], stored[0]) else 1
                assert torch.equal(x[row], stored[first]) and torch.equal(two_views[1][row], stored[1 - first])
    second = [torch.equal(x[row], views[1, i]) and not torch.equal(views[0, i], views[1, i])
              for ids, x, _ in seen["gcl"].steps for row, i in enumerate(ids.tolist())]
    assert 0.3 < sum(second) / len(second) < 0.7  # each view drawn about half the time


def test_co2l_supcon_and_ird_run_over_both_views_with_each_image_twin_a_positive(tmp_path):
    prepared = pretrained_run("co2l", tmp_path, **RUN)
    calls = capture_losses(prepared.strategy)
    records = ContinualRun(prepared.strategy, prepared.benchmark, identity=prepared.identity, progress=False).run()
    assert records[-1]["feature_views"] == 2 and records[-1]["views_per_item"] == 2
    strategy = prepared.strategy
    scale = strategy.tau / strategy.base_temperature
    steps = len(calls) // 2  # the representation steps of each experience; the second distils
    assert steps >= 1 and [call["past"] is None for call in calls] == [True] * steps + [False] * steps
    for call in calls:
        z, labels, memory = call["z"], call["labels"], call["memory"]
        b = len(call["index"])
        assert z.shape[0] == 2 * b and torch.equal(labels[:b], labels[b:]) and torch.equal(memory[:b], memory[b:])
        assert not torch.equal(call["views"][0], call["views"][1])  # two different inputs per image
        expected = supcon(z, labels, strategy.tau, ~memory, scale=scale)  # the loop: twin j = i ± B counts
        if call["past"] is not None:
            expected = expected + strategy.ird_lambda * relation_distillation(
                z, call["past"], strategy.kappa, strategy.kappa_past)
            assert torch.isin(call["index"], strategy.memory_ids).any()  # memory rows are in IRD
        torch.testing.assert_close(call["value"].double(), expected, rtol=2e-5, atol=1e-6)
    # with its twin, an anchor always has a positive: the one-view loss would leave out lone rows
    one_view = supcon(calls[0]["z"][:b], calls[0]["labels"][:b], strategy.tau, ~calls[0]["memory"][:b], scale=scale)
    assert not torch.isclose(one_view, calls[0]["value"].double(), rtol=1e-3)


def test_cassle_distils_each_view_to_the_frozen_model_twin(tmp_path):
    prepared = pretrained_run("cassle", tmp_path, mem_size=0, **RUN)
    strategy = prepared.strategy
    calls = capture_losses(strategy)
    predicted = []  # the predictor's outputs h(z), one per distilling step
    strategy.method_modules["predictor"].register_forward_hook(lambda m, i, out: predicted.append(out.detach()))
    records = ContinualRun(strategy, prepared.benchmark, identity=prepared.identity, progress=False).run()
    assert records[-1]["views_per_item"] == 2
    steps = len(calls) // 2  # the representation steps of each experience; the second distils
    assert steps >= 1 and [call["past"] is None for call in calls] == [True] * steps + [False] * steps
    for call in calls:
        supervised = supcon(call["z"], call["labels"], strategy.tau, reduction="anchors")
        if call["past"] is None:
            torch.testing.assert_close(call["value"].double(), supervised, rtol=2e-5, atol=1e-6)
            continue
        p, past, t = predicted.pop(0).double(), call["past"], strategy.distill_temperature
        assert p.shape == past.shape == call["z"].shape  # both views of every image
        expected = supervised + strategy.distill_lambda * 0.5 * (twin_contrast(p, past, t, 2) + twin_contrast(past, p, t, 2))
        torch.testing.assert_close(call["value"].double(), expected, rtol=2e-5, atol=1e-6)
    assert predicted == []
    # the two-view distillation against the loop reference, values and gradients
    g = torch.Generator().manual_seed(0)
    predicted = torch.randn(8, 5, generator=g, dtype=torch.float64, requires_grad=True)  # 2 views of 4
    frozen = torch.randn(8, 5, generator=g, dtype=torch.float64)
    ours = predictive_contrastive_distillation(predicted, frozen, temperature=0.2, views=2)
    reference = 0.5 * (twin_contrast(predicted, frozen, 0.2, 2) + twin_contrast(frozen, predicted, 0.2, 2))
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    (grad,) = torch.autograd.grad(ours, predicted)
    (expected_grad,) = torch.autograd.grad(reference, predicted)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="7 rows cannot hold views=2"):
        predictive_contrastive_distillation(predicted[:7], frozen[:7], temperature=0.2, views=2)


def test_records_name_the_views_only_when_there_are_several(tmp_path):
    _, gcl = run("gcl", tmp_path)
    assert gcl[-1]["feature_views"] == 2 and gcl[-1]["views_per_item"] == 1
    _, one = run("co2l", tmp_path, feature_views=1)
    assert "feature_views" not in one[-1] and "views_per_item" not in one[-1]  # as records before the key


def test_feature_views_config_values():
    for bad in (0, -2, 1.5, "2", True, None):
        with pytest.raises(ConfigError, match=r"feature_views must be an integer >= 1"):
            parse_run_config({"feature_views": bad})
    with pytest.raises(ConfigError, match="feature_views=2 are views stored in the feature cache, but feature_cache is false"):
        parse_run_config({"feature_views": 2, "feature_cache": False})
    assert parse_run_config({"feature_views": 3}).feature_views == 3
    # a run folder written before the key ran with one view: it compares equal to feature_views 1 only
    saved = {k: v for k, v in parse_run_config({}).to_dict().items() if k != "feature_views"}
    assert config_differences(saved, parse_run_config({}).to_dict()) == []
    assert config_differences(saved, parse_run_config({"feature_views": 2}).to_dict()) == [
        "feature_views: checkpoint 1 vs now 2"]


def test_two_view_runs_give_identical_records_in_two_processes_each_building_its_own_views(tmp_path):
    """End to end: the views (built anew in each process's own cache) and their draws do not
    depend on the process, its hash seed or the order of the runs."""
    def sweep(name, strategies, hash_seed):
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({
            "scenario": "digits", "n_experiences": 2, "feature_views": 2,
            "scenario_options": {"max_train_per_class": 12, "max_test_per_class": 6},
            "model": "tiny-clip", "pretrained": None, "trainable": "projections", "strategies": strategies,
            "mem_sizes": [0, 10], "seeds": [3], "train_epochs": 1, "train_mb_size": 16, "eval_mb_size": 64,
            "threads": 1, "cache_dir": str(tmp_path / f"cache-{name}"), "progress": False}))
        subprocess.run([sys.executable, "-m", "avalanche_clip", "sweep", "--config", str(config), "--out",
                        str(tmp_path / name)], check=True, timeout=600, capture_output=True, cwd=ROOT,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed})
        return {folder.name: [{k: v for k, v in r.items() if k != "wall_time_s"}
                              for r in read_records(folder / "results.jsonl")]
                for folder in sorted((tmp_path / name / "runs").iterdir())}

    first = sweep("first", ["co2l", "cassle", "gcl"], "1")
    second = sweep("second", ["gcl", "cassle", "co2l"], "2")
    assert sorted(first) == sorted(second) == [
        "digits__cassle__m0__s3", "digits__co2l__m0__s3", "digits__co2l__m10__s3",
        "digits__gcl__m0__s3", "digits__gcl__m10__s3"]
    for run_id, records in first.items():
        assert records == second[run_id], run_id
        views_per_item = 1 if "gcl" in run_id else 2
        assert all(r["feature_views"] == 2 and r["views_per_item"] == views_per_item for r in records)
