"""The committed experiment configs resolve and validate (names, tags, hyper-parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from avalanche_clip.pipeline.config import load_config, load_yaml, resolve_config
from avalanche_clip.pipeline.sweep import plan_sweep

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "paper").glob("*.yaml")), ids=lambda p: p.stem)
def test_paper_protocol_configs_plan_their_sweeps(path, tmp_path):
    config = resolve_config([load_yaml(path), {"data_root": str(tmp_path)}], sweep=True)
    plan = plan_sweep(config)
    assert config["model"] == "ViT-B-16" and config["device"] == "cuda"
    assert {r.strategy for r in plan.runs} >= {"gcl", "gdro", "zero-shot", "ce", "ewc", "der"}
    assert len({r.seed for r in plan.runs}) == 3


@pytest.mark.parametrize("name", ["cifar10_proxy", "pacs_proxy"])
def test_offline_proxy_configs_plan_their_sweeps(name, data_root):
    raw = load_yaml(EXPERIMENTS / f"{name}.yaml")
    assert raw["data_root"] == f"../shared/data/{name.split('_')[0]}"  # relative to the repo root
    config = resolve_config([raw, {"data_root": str(data_root / name.split("_")[0])}], sweep=True)
    plan = plan_sweep(config)
    ours = [r for r in plan.runs if r.strategy == "gcl"]
    assert len({r.mem_size for r in ours}) >= 4 and len({r.seed for r in ours}) == 3


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "ablation").glob("*.yaml")), ids=lambda p: p.stem)
def test_ablation_configs_extend_a_proxy_and_plan_their_sweeps(path, data_root):
    raw = load_config(path)
    proxy = raw["label"]
    config = resolve_config([raw, {"data_root": str(data_root / proxy)}], sweep=True)
    plan = plan_sweep(config)
    assert plan.runs and len({r.seed for r in plan.runs}) == 3
    assert raw["model"] == load_yaml(EXPERIMENTS / f"{proxy}_proxy.yaml")["model"]  # inherited


RESULTS = EXPERIMENTS / "results"


@pytest.mark.parametrize("name", ["cifar10_proxy", "pacs_proxy"])
def test_committed_tuned_values_apply_to_their_proxy(name, data_root):
    """The committed tuned.yaml was tuned under its proxy's protocol, and every value is in its
    strategy's search space (apply_tuned checks both, as sweep --tuned does)."""
    from avalanche_clip.pipeline.tuned_values import apply_tuned

    raw = load_yaml(EXPERIMENTS / f"{name}.yaml")
    config = resolve_config([raw, {"data_root": str(data_root / name.split("_")[0])}], sweep=True)
    tuned = {label: options for label, _, options in
             apply_tuned(config, RESULTS / f"{name}_tune" / "tuned.yaml").entries}
    assert "lr" in tuned["gcl"] and "tau" in tuned["gcl"] and "dro_lambda" in tuned["gdro"]
    assert not tuned["zero-shot"]  # never trains: nothing to tune


def test_the_embedded_comparison_applies_its_packaged_tuned_values():
    from avalanche_clip.cli import DEFAULT_CONFIG, _config
    from avalanche_clip.pipeline.tuned_values import apply_tuned, read_tuned

    sweep = _config(None, [], sweep=True)
    assert Path(sweep["tuned"]) == DEFAULT_CONFIG.parent / "comparison.tuned.yaml"
    entries = {label: options for label, _, options in apply_tuned(sweep, sweep["tuned"]).entries}
    trained = set(entries) - {"zero-shot"}
    assert trained == set(read_tuned(sweep["tuned"])["strategies"])  # every trained method was tuned
    assert all("lr" in entries[label] for label in trained)
    run = _config(None, [], sweep=False)  # `avalanche-clip run`: GCL at memory 100, GCL's values
    assert run["strategy"] == "gcl" and run["strategy_options"]["gcl"] == entries["gcl"]
    ewc = _config(None, ["strategy=ewc"], sweep=False)  # any of its methods, as its sweep runs it
    assert ewc["mem_size"] == 100 and ewc["strategy_options"]["ewc"] == entries["ewc"]
    assert not _config(None, ["strategy=naive"], sweep=False)["strategy_options"]  # not swept: defaults
