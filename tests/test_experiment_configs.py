"""The committed experiment configs resolve and validate (names, tags, hyper-parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from avalanche_clip.pipeline.config import load_config, load_yaml, resolve_config
from avalanche_clip.pipeline.sweep import plan_sweep

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _on_data(raw: dict, data_root: Path, proxy: str) -> dict:
    """The overrides that point a proxy config at ``data_root`` (``AVALANCHE_CLIP_DATA``): its
    stream's root and its held-out retention folders, which the committed configs give relative
    to the repository (``../shared/data/...``)."""
    shared = "../shared/data/"
    sets = [{**item, "folder": str(data_root / item["folder"][len(shared):])}
            if item.get("folder", "").startswith(shared) else item for item in raw.get("retention_sets") or []]
    return {"data_root": str(data_root / proxy), **({"retention_sets": sets} if sets else {})}


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
    config = resolve_config([raw, _on_data(raw, data_root, name.split("_")[0])], sweep=True)
    plan = plan_sweep(config)
    ours = [r for r in plan.runs if r.strategy == "gcl"]
    assert len({r.mem_size for r in ours}) >= 4 and len({r.seed for r in ours}) == 3


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "ablation").glob("*.yaml")), ids=lambda p: p.stem)
def test_ablation_configs_extend_a_proxy_or_the_default_and_plan_their_sweeps(path, data_root):
    from avalanche_clip.cli import DEFAULT_CONFIG

    raw = load_config(path)
    proxy = raw["label"]
    if proxy == "digits":  # an ablation of the embedded default (no data root)
        config = resolve_config([raw], sweep=True)
        base = load_yaml(DEFAULT_CONFIG)
    else:
        config = resolve_config([raw, _on_data(raw, data_root, proxy)], sweep=True)
        base = load_yaml(EXPERIMENTS / f"{proxy}_proxy.yaml")
    plan = plan_sweep(config)
    # 3 seeds (the estimator and composition ablations) or the default's 5 (the negatives ones)
    assert plan.runs and len({r.seed for r in plan.runs}) in (3, 5)
    assert raw["model"] == base["model"]  # inherited


RESULTS = EXPERIMENTS / "results"


@pytest.mark.parametrize("name", ["cifar10_proxy", "pacs_proxy"])
def test_tuned_values_of_the_earlier_protocol_are_refused_under_the_proxys_current_one(name, data_root, tmp_path):
    """A tuned.yaml of the proxy's earlier protocol (written before ``train_logits`` and
    ``feature_views`` were recorded: the CE family over every seen class's logits, one view; here
    the committed re-tune with those two keys taken out of ``tuned_for``) is refused by a sweep of
    the proxy config as it now reads (batch negatives, two views), naming both keys; with
    ``tuned_check: false`` (an ablation) every value applies, each in its strategy's search space."""
    from avalanche_clip.common.errors import ConfigError
    from avalanche_clip.common.yaml_io import read_yaml
    from avalanche_clip.pipeline.tuned_values import apply_tuned

    raw = load_yaml(EXPERIMENTS / f"{name}.yaml")
    config = resolve_config([raw, _on_data(raw, data_root, name.split("_")[0])], sweep=True)
    document = read_yaml((RESULTS / f"{name}_rerun_tune" / "tuned.yaml").read_text(encoding="utf-8"))
    for key in ("train_logits", "feature_views"):
        del document["tuned_for"][key]
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tuned under another protocol \(train_logits: .*; feature_views: tuned 1 vs now 2\)"):
        apply_tuned(config, path, mem_size=20)
    with pytest.warns(UserWarning, match="applying values tuned under another protocol"):
        applied = apply_tuned({**config, "tuned_check": False}, path, mem_size=20)
    tuned = {label: options for label, _, options in applied.entries}
    assert "lr" in tuned["gcl"] and "tau" in tuned["gcl"] and "dro_lambda" in tuned["gdro"]
    assert not tuned["zero-shot"]  # never trains: nothing to tune


def test_the_embedded_comparison_applies_its_packaged_tuned_values():
    from avalanche_clip.cli import DEFAULT_CONFIG, _config
    from avalanche_clip.pipeline.tuned_values import apply_tuned, read_tuned

    sweep = _config(None, [], sweep=True)
    assert Path(sweep["tuned"]) == DEFAULT_CONFIG.parent / "comparison.tuned.yaml"
    document = read_tuned(sweep["tuned"])
    for mem_size in sweep["mem_sizes"]:  # every method tuned at every memory size of the grid
        entries = {label: options for label, _, options in
                   apply_tuned(sweep, sweep["tuned"], mem_size=mem_size).entries}
        trained = set(entries) - {"zero-shot"}
        assert trained == set(document["strategies"])  # every trained method was tuned
        assert all("lr" in entries[label] for label in trained)
        memoryless = {label for label, e in document["strategies"].items() if set(e["by_mem_size"]) == {0}}
        assert all(mem_size in e["by_mem_size"] for label, e in document["strategies"].items()
                   if label not in memoryless and mem_size > 0), mem_size
    entries = {label: options for label, _, options in apply_tuned(sweep, sweep["tuned"], mem_size=100).entries}
    run = _config(None, [], sweep=False)  # `avalanche-clip run`: GCL at memory 100, GCL's values
    assert run["strategy"] == "gcl" and run["strategy_options"]["gcl"] == entries["gcl"]
    ewc = _config(None, ["strategy=ewc"], sweep=False)  # any of its methods, as its sweep runs it
    assert ewc["mem_size"] == 100 and ewc["strategy_options"]["ewc"] == entries["ewc"]
    assert not _config(None, ["strategy=naive"], sweep=False)["strategy_options"]  # not swept: defaults


@pytest.mark.parametrize("name", ["cifar10_proxy", "pacs_proxy"])
def test_rerun_tuned_values_apply_and_each_bound_walk_is_reported(name, data_root):
    """The re-run proxy's tuned.yaml is of the proxy's current protocol (a sweep applies it, each run
    the values of its nearest tuned memory size); no value is left at a bound, and every parameter
    a bound walk ran on is named in experiments/README.md's section on the walks, with its outcome."""
    from avalanche_clip.common.yaml_io import read_yaml
    from avalanche_clip.pipeline.tuned_values import load_tuned

    raw = load_yaml(EXPERIMENTS / f"{name}.yaml")
    config = resolve_config([raw, _on_data(raw, data_root, name.split("_")[0])], sweep=True)
    path = RESULTS / f"{name}_rerun_tune" / "tuned.yaml"
    plan = plan_sweep(config, load_tuned(config, path))
    at = {(r.strategy, r.mem_size): r.tuned_at_mem_size for r in plan.runs if r.strategy != "zero-shot"}
    assert at[("gcl", 50)] == 20 and at[("gcl", 500)] == 200 and at[("gdro", 0)] == 0
    tuned = read_yaml(path.read_text(encoding="utf-8"))
    readme = (EXPERIMENTS / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Values at a bound of their space, walked past it.**"):
                     readme.index("## CIFAR-10, class-incremental")]
    studies = [(strategy, memory, study) for strategy, entry in tuned["strategies"].items()
               for memory, study in entry["by_mem_size"].items()]
    assert all(study["at_bound"] == [] for _, _, study in studies)
    walked = [(strategy, memory, walk["param"]) for strategy, memory, study in studies
              for walk in study["bound_walks"]]
    assert walked, f"the committed {name} re-tune's line search left values at a bound (walk.log)"
    for strategy, memory, param in walked:
        assert f"`{param}`" in section, f"{strategy} at {memory}: the walk of {param} is not reported"
