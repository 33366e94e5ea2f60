"""The typed run config: one schema for keys, defaults and help; parsed once; written back as it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from avalanche_clip.cli import _config, _parse
from avalanche_clip.pipeline.config import RUN_KEYS, ConfigError, dump_yaml, resolve_config
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.config_schema import WRITTEN_WHEN_SET, RunConfig

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"


def test_the_key_table_and_help_come_from_the_schema(capsys):
    names = [spec.name for spec in dataclasses.fields(RunConfig)]
    assert list(RUN_KEYS) == names and len(names) == 41
    assert RUN_KEYS["lr"] == (1e-3, "learning rate (same for every method)")
    assert RUN_KEYS["loggers"][0] == [] and RUN_KEYS["strategy_options"][0] == {}
    with pytest.raises(SystemExit):
        _parse(["run", "--help"])
    shown = {line.split()[0] for line in capsys.readouterr().out.splitlines()
             if line.startswith("  ") and line.split()}
    assert set(names) <= shown  # every key of the schema, with its default and meaning


def test_parsing_types_the_resolved_mapping_and_gives_it_back_unchanged():
    resolved = resolve_config([{"strategy": "gdro", "mem_size": 20, "seed": 3,
                                "strategy_options": {"gdro": {"margin": 0.2}}}])
    config = parse_run_config(resolved)
    assert isinstance(config, RunConfig) and config.mem_size == 20 and config.seed == 3
    assert config.run_id == "digits__gdro__m20__s3" and config.options == {"margin": 0.2}
    assert config.to_dict() == resolved and list(config.to_dict()) == list(resolved)
    assert parse_run_config(config) is config  # parsed once: a typed config is not checked again
    config.to_dict()["strategy_options"]["gdro"]["margin"] = 5.0  # a copy: the config is unchanged
    assert config.options == {"margin": 0.2}
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 4  # type: ignore[misc]


def test_a_parse_error_names_the_key_the_value_and_what_is_expected():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) 'mem_sise'; known keys: .*mem_size"):
        parse_run_config({"mem_sise": 3})
    with pytest.raises(ConfigError, match=r"memory_share must lie in \(0, 1\), got 1.5"):
        parse_run_config(resolve_config([{"replay_sampling": "share", "memory_share": 1.5}]))
    with pytest.raises(ConfigError, match=r"steps_per_experience must be an integer >= 1 or null.*got 0"):
        parse_run_config(resolve_config([{"steps_per_experience": 0}]))
    with pytest.raises(ConfigError, match=r"head='mlp'; expected one of \('text', 'linear'\)"):
        parse_run_config(resolve_config([{"head": "mlp"}]))
    # the example of the right shape names GCL's current default tau (strategies.defaults)
    with pytest.raises(ConfigError, match=r"e.g. \{gcl: \{tau: 0.1\}\}, got \{'gcl': 0.2\}"):
        parse_run_config(resolve_config([{"strategy_options": {"gcl": 0.2}}]))


def test_every_run_config_is_checked_as_it_is_made():
    """The constructor and ``replace`` run the same check as parsing: no RunConfig is invalid."""
    with pytest.raises(ConfigError, match=r"lr must be a finite number > 0, got 0"):
        RunConfig(lr=0)
    config = RunConfig(strategy="der", mem_size=20)
    assert config.replace(seed=3).seed == 3 and config.seed == 0
    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0, got -1"):
        config.replace(seed=-1)
    with pytest.raises(ValueError, match=r"'der' needs a replay memory: mem_size must be >= 1, got 0"):
        config.replace(mem_size=0)
    with pytest.raises(ValueError, match=r"strategy 'der': alpha must be a number >= 0, got -1"):
        config.replace(strategy_options={"der": {"alpha": -1}})


@pytest.mark.parametrize("results", ["default", "cifar10_proxy_rerun", "pacs_proxy_rerun"])
def test_committed_run_configs_parse_and_are_written_back_byte_for_byte(results):
    """What ``run --config <committed config.yaml>`` resolves, parsed and dumped as ``execute_run``
    writes it, is the committed file (keys added since it was written are left out)."""
    paths = sorted((RESULTS / results / "runs").glob("*/config.yaml"))[:8]
    assert paths
    for path in paths:
        resolved = _config(path, [], sweep=False)
        config = parse_run_config(resolved)
        # the same keys and values; a key written only when set (retention_sets) comes last in
        # the resolved mapping and in schema order in to_dict(), which is what a run writes
        assert config.to_dict() == resolved
        assert [k for k in config.to_dict() if k not in WRITTEN_WHEN_SET] == [
            k for k in resolved if k not in WRITTEN_WHEN_SET]
        committed = path.read_text()
        written = {**config.to_dict(), "world_size": resolved.get("world_size") or 1}
        written = {k: v for k, v in written.items() if f"\n{k}:" in "\n" + committed}
        assert dump_yaml(written) == committed, path


def test_sweep_keys_read_in_one_place_are_checked_there(tmp_path):
    from avalanche_clip.pipeline.sweep import plan_sweep
    from avalanche_clip.pipeline.tuned_values import apply_tuned

    with pytest.raises(ConfigError, match=r"tuned_check must be true or false, got 'no'"):
        apply_tuned({"tuned_check": "no", "strategies": ["gcl"]}, tmp_path / "tuned.yaml")
    with pytest.raises(ConfigError, match=r"mem_sizes must be a non-empty list, got 5"):
        plan_sweep(resolve_config([{"mem_sizes": 5}], sweep=True))
    plan = plan_sweep(resolve_config([{"strategies": ["naive", {"label": "gcl-g1", "strategy": "gcl",
                                                                "options": {"gamma": 1.0}}],
                                       "mem_sizes": [0, 10], "seeds": [0, 1]}], sweep=True))
    assert [run.run_id for run in plan.runs] == [
        "digits__naive__m0__s0", "digits__gcl-g1__m0__s0", "digits__gcl-g1__m10__s0",
        "digits__naive__m0__s1", "digits__gcl-g1__m0__s1", "digits__gcl-g1__m10__s1"]
    assert all(isinstance(run, RunConfig) for run in plan.runs)
    assert plan.runs[1].options == {"gamma": 1.0} and plan.runs[1].strategy_label == "gcl-g1"


@pytest.mark.parametrize("results", ["default", "cifar10_proxy_rerun", "share_cifar10_rerun", "pacs_proxy_rerun",
                                     "ablation_pacs_rerun", "share_pacs_rerun"])
def test_committed_sweeps_parse_write_back_byte_for_byte_and_are_accepted(results, tmp_path):
    """A committed sweep.yaml parses into a SweepConfig that gives back the same mapping, is
    written back byte for byte, and its sweep folder's run folders are accepted as its own."""
    from avalanche_clip.pipeline.config import load_yaml
    from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
    from avalanche_clip.pipeline.sweep_state import check_run_folders, record_sweep_config

    folder = RESULTS / results
    raw = load_yaml(folder / "sweep.yaml")
    sweep = parse_sweep_config(raw)
    assert isinstance(sweep, SweepConfig) and sweep.to_dict() == raw
    assert "strategies" not in sweep.shared and sweep.shared["strategy"] == raw["strategy"]
    assert [label for label, _, _ in sweep.entries] == [
        entry if isinstance(entry, str) else entry.get("label") or entry["strategy"] for entry in raw["strategies"]]
    assert record_sweep_config(sweep, tmp_path) is None
    assert (tmp_path / "sweep.yaml").read_bytes() == (folder / "sweep.yaml").read_bytes()
    check_run_folders(sweep, folder)  # every committed run folder: made with these settings
    changed = sweep.replace(shared={**sweep.shared, "weight_decay": 0.5})
    with pytest.raises(ConfigError, match=r"made with other settings .*weight_decay"):
        check_run_folders(changed, folder)


def test_a_sweep_config_checks_its_sweep_keys_as_it_is_made():
    from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config

    with pytest.raises(ConfigError, match=r"seeds must be a non-empty list, got \[\]"):
        SweepConfig(seeds=[])
    with pytest.raises(ConfigError, match=r"scenarios entries take .*got unknown \['model'\]"):
        parse_sweep_config({"scenarios": [{"label": "a", "model": "tiny-clip"}]})
    with pytest.raises(ConfigError, match=r"two strategies entries are labelled 'gcl'"):
        SweepConfig().replace(strategies=["gcl", "gcl"])
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) 'mem_sise'"):
        parse_sweep_config({"mem_sise": 3})
    sweep = parse_sweep_config({"mem_sizes": [0, 20], "seeds": [1]})  # keys it lacks are not written back
    assert sweep.to_dict() == {"mem_sizes": [0, 20], "seeds": [1]} and sweep.strategies == ["zero-shot", "ce", "gcl", "gdro"]
