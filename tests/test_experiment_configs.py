"""The committed experiment configs resolve and validate (names, tags, hyper-parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from avalanche_clip.config import load_config, load_yaml, resolve_config
from avalanche_clip.sweep import plan_sweep

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "paper").glob("*.yaml")), ids=lambda p: p.stem)
def test_paper_protocol_configs_plan_their_sweeps(path, tmp_path):
    config = resolve_config([load_yaml(path), {"data_root": str(tmp_path)}], sweep=True)
    plan = plan_sweep(config)
    assert config["model"] == "ViT-B-16" and config["device"] == "cuda"
    assert {r["strategy"] for r in plan.runs} >= {"gcl", "gdro", "zero-shot", "ce", "ewc", "der"}
    assert len({r["seed"] for r in plan.runs}) == 3


@pytest.mark.parametrize("name", ["cifar10_proxy", "pacs_proxy"])
def test_offline_proxy_configs_plan_their_sweeps(name, data_root):
    raw = load_yaml(EXPERIMENTS / f"{name}.yaml")
    assert raw["data_root"] == f"../shared/data/{name.split('_')[0]}"  # relative to the repo root
    config = resolve_config([raw, {"data_root": str(data_root / name.split("_")[0])}], sweep=True)
    plan = plan_sweep(config)
    ours = [r for r in plan.runs if r["strategy"] == "gcl"]
    assert len({r["mem_size"] for r in ours}) >= 4 and len({r["seed"] for r in ours}) == 3


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "ablation").glob("*.yaml")), ids=lambda p: p.stem)
def test_ablation_configs_extend_a_proxy_and_plan_their_sweeps(path, data_root):
    raw = load_config(path)
    proxy = raw["label"]
    config = resolve_config([raw, {"data_root": str(data_root / proxy)}], sweep=True)
    plan = plan_sweep(config)
    assert plan.runs and len({r["seed"] for r in plan.runs}) == 3
    assert raw["model"] == load_yaml(EXPERIMENTS / f"{proxy}_proxy.yaml")["model"]  # inherited
