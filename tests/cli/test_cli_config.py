"""Configs: ``key=value`` overrides, defaults and merge order, unknown keys, relative paths."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from cli_fixtures import billion_laughs

from avalanche_clip.pipeline.config import (
    RUN_KEYS,
    SWEEP_KEYS,
    ConfigError,
    default_run_config,
    load_config,
    load_yaml,
    parse_overrides,
    resolve_config,
)
from avalanche_clip.pipeline.config_schema import WRITTEN_WHEN_SET
from avalanche_clip.pipeline.tuned_values import read_tuned


def test_overrides_use_dotted_keys_and_yaml_values():
    parsed = parse_overrides([
        "mem_size=200", "strategy_options.gcl.tau=0.1", "strategy_options.gcl.gamma=0.9",
        "strategy_options.gdro.margin=0.5", "seeds=[0, 1, 2]", "pretrained=null", "label=",
        "feature_cache=false", "trainable=last:2", "templates=['a {}', 'the {}']",
        "scenario_options={max_train_per_class: 5}", "note=a=b",
    ])
    assert parsed == {
        "mem_size": 200,
        "strategy_options": {"gcl": {"tau": 0.1, "gamma": 0.9}, "gdro": {"margin": 0.5}},
        "seeds": [0, 1, 2],
        "pretrained": None,
        "label": None,  # an empty value is null
        "feature_cache": False,
        "trainable": "last:2",
        "templates": ["a {}", "the {}"],
        "scenario_options": {"max_train_per_class": 5},
        "note": "a=b",  # only the first '=' separates key and value
    }


def test_scientific_notation_is_a_number():
    # PyYAML's YAML 1.1 rules read 1e-3 as the string '1e-3'; lr=1e-3 must be the float 0.001.
    parsed = parse_overrides(["lr=1e-3", "weight_decay=5E-4", "strategy_options.gcl.tau=2e-2",
                              "n=1e3", "name=1e"])
    assert parsed == {"lr": 1e-3, "weight_decay": 5e-4, "strategy_options": {"gcl": {"tau": 2e-2}},
                      "n": 1000.0, "name": "1e"}
    assert all(isinstance(v, float) for v in (parsed["lr"], parsed["weight_decay"], parsed["n"]))


def test_yaml_files_read_scientific_notation_too(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nweight_decay: 1.0e-2\n")
    assert load_yaml(path) == {"lr": 1e-4, "weight_decay": 1e-2}


@pytest.mark.parametrize("bad", ["mem_size", "=3", "mem_size:3"])
def test_override_without_key_and_value_is_an_error(bad):
    with pytest.raises(ConfigError, match=r"not of the form key=value"):
        parse_overrides([bad])


@pytest.mark.parametrize("bad", ["templates=[a {}, b {}]", "seeds=[0, 1"])
def test_override_with_malformed_yaml_is_a_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match=r"override .*not valid YAML"):
        parse_overrides([bad])


def test_malformed_yaml_file_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("strategies: [gcl, naive\n")
    with pytest.raises(ConfigError, match=r"broken.yaml is not valid YAML"):
        load_yaml(path)


def test_override_of_a_value_and_of_its_subkey_conflict():
    with pytest.raises(ConfigError, match=r"conflicts with another override of 'seed'"):
        parse_overrides(["seed=1", "seed.x=2"])


def test_defaults_fill_every_run_key():
    config = resolve_config([])
    assert config == {**default_run_config(), "pretrained": "imagenet"}  # the default model's own tag
    assert set(config) == set(RUN_KEYS) - set(WRITTEN_WHEN_SET)  # those appear only when set
    assert config["strategy"] == "gcl" and config["mem_size"] == 0 and config["feature_cache"] == "auto"


def test_sources_merge_in_order_and_mappings_merge_deeply():
    file_config = {"mem_size": 100, "seed": 3,
                   "strategy_options": {"gcl": {"tau": 0.05, "gamma": 0.9}, "gdro": {"margin": 0.5}}}
    overrides = parse_overrides(["mem_size=200", "strategy_options.gcl.tau=0.1"])
    config = resolve_config([file_config, overrides])
    assert config["mem_size"] == 200  # the later source wins
    assert config["seed"] == 3  # kept from the file
    assert config["strategy_options"] == {"gcl": {"tau": 0.1, "gamma": 0.9}, "gdro": {"margin": 0.5}}
    assert config["train_epochs"] == RUN_KEYS["train_epochs"][0]  # default
    assert file_config["mem_size"] == 100  # sources are not modified


def test_unknown_key_is_an_error_listing_the_known_keys():
    with pytest.raises(ConfigError) as info:
        resolve_config([{"mem_sise": 10}])
    message = str(info.value)
    assert "'mem_sise'" in message
    assert "known keys:" in message
    for key in RUN_KEYS:
        assert key in message


def test_sweep_keys_in_a_run_config_are_rejected_with_a_hint():
    with pytest.raises(ConfigError, match=r"'mem_sizes', 'strategies'.*belong to sweep configs"):
        resolve_config([{"strategies": ["gcl"], "mem_sizes": [0]}])


def test_sweep_configs_accept_and_default_the_grid_keys():
    config = resolve_config([{"strategies": ["gcl", "naive"]}], sweep=True)
    assert config["strategies"] == ["gcl", "naive"]
    assert config["mem_sizes"] == SWEEP_KEYS["mem_sizes"][0]
    assert config["seeds"] == SWEEP_KEYS["seeds"][0]
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) 'strategys'"):
        resolve_config([{"strategys": ["gcl"]}], sweep=True)


def test_relative_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = resolve_config([{"data_root": "data/cifar10", "cache_dir": "../cache"}])
    assert config["data_root"] == str((tmp_path / "data" / "cifar10").resolve())
    assert config["cache_dir"] == str((tmp_path.parent / "cache").resolve())
    assert Path(config["data_root"]).is_absolute()


def test_absolute_and_home_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = resolve_config([{"data_root": "~/data", "cache_dir": str(tmp_path / "c")}])
    assert config["data_root"] == str((tmp_path / "data").resolve())
    assert config["cache_dir"] == str((tmp_path / "c").resolve())


def test_moved_data_and_cache_folders_do_not_make_another_run():
    from avalanche_clip.training.checkpoint import config_differences

    saved = {"data_root": "/old/place/cifar10", "cache_dir": "/old/cache", "lr": 0.001}
    assert config_differences(saved, {**saved, "data_root": "/new/cifar10", "cache_dir": None}) == []
    assert config_differences(saved, {**saved, "lr": 0.01}) == ["lr: checkpoint 0.001 vs now 0.01"]


def test_a_config_extends_another_and_only_names_what_it_changes(tmp_path):
    from avalanche_clip.pipeline.config import ConfigError, load_config

    (tmp_path / "base.yaml").write_text("lr: 0.01\ntune: {trials: 4, mem_size: 20}\nstrategies: [ce, gcl]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ablation.yaml").write_text(
        "extends: ../base.yaml\ntune: {trials: 8}\nstrategies: [gcl]\n")
    assert load_config(tmp_path / "sub" / "ablation.yaml") == {
        "lr": 0.01, "tune": {"trials": 8, "mem_size": 20}, "strategies": ["gcl"]}
    (tmp_path / "base.yaml").write_text("extends: sub/ablation.yaml\n")
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_config(tmp_path / "sub" / "ablation.yaml")


def test_aliases_beyond_the_bound_are_refused_by_every_yaml_reader(tmp_path):
    # issue 27: nested anchors ("billion laughs") are small text and 9**9 values once printed
    laughs = billion_laughs(9)
    (tmp_path / "base.yaml").write_text(f"strategy_options: {{gcl: {{tau: {laughs}}}}}\n")
    (tmp_path / "run.yaml").write_text("extends: base.yaml\nmem_size: 20\n")
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(f"strategies: {{gcl: {{strategy: gcl, params: {{tau: {billion_laughs(5)}}}}}}}\n")
    began = time.monotonic()
    with pytest.raises(ConfigError, match=r"base.yaml is refused: its aliases \(\*name\) expand to more than 10000"):
        load_config(tmp_path / "run.yaml")
    with pytest.raises(ConfigError, match=r"override 'label=\[&a .*' is refused: its aliases"):
        parse_overrides([f"label={laughs}"])
    with pytest.raises(ConfigError, match=r"tuned file .*tuned.yaml is not valid YAML: its aliases"):
        read_tuned(tuned)
    assert time.monotonic() - began < 5.0  # milliseconds of work; slack for a busy machine


def test_aliases_within_the_bound_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &base {lr: 0.01, seed: 1}\nrun:\n  <<: *base\n  seed: 2\nseeds: &s [0, 1]\nsame: *s\n")
    assert load_yaml(path) == {"base": {"lr": 0.01, "seed": 1}, "run": {"lr": 0.01, "seed": 2},
                               "seeds": [0, 1], "same": [0, 1]}
    shared = [0, 1]
    path.write_text(yaml.safe_dump({"a": shared, "b": shared}))  # how PyYAML writes a shared value
    assert "*id001" in path.read_text() and load_yaml(path) == {"a": [0, 1], "b": [0, 1]}
    # 4 levels of 9 add 8289 values (accepted), 5 levels 74,700 (refused)
    assert len(parse_overrides([f"x={billion_laughs(4)}"])["x"][3]) == 9
    with pytest.raises(ConfigError, match="expand to more than 10000"):
        parse_overrides([f"x={billion_laughs(5)}"])


def test_a_megabyte_value_is_refused_before_it_is_parsed():
    # issue 27: a 10 MB label took PyYAML ~13 s to read, then went into every record
    began = time.monotonic()
    with pytest.raises(ConfigError, match=r"override 'label=xxx.* is refused: it is longer than 1000000 characters"):
        parse_overrides(["label=" + "x" * 10_000_000])
    assert time.monotonic() - began < 2.0  # a slice and a comparison (PyYAML: ~13 s)


@pytest.mark.parametrize("text, problem", [("mem_size: &a [*a]\n", "refers to a value that contains it"),
                                           ("mem_size: " + "[" * 101 + "]" * 101 + "\n", "nested more than 100 levels deep")])
def test_recursive_or_too_deeply_nested_yaml_is_a_config_error(text, problem, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"c.yaml is refused: .*{problem}"):
        load_yaml(path)
