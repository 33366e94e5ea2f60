"""Bad input fails before any training: exit code 2, a message naming the value and the choices.

"Before any training" is proven twice: building or training a run fails the test
(``forbid_training``), and the output folder is never created.
"""

from __future__ import annotations

import pytest
from cli_fixtures import cli, forbid_training, tiny_config, tiny_sweep_config, write_config

# (overrides, fragments the error message must contain)
BAD_RUNS = {
    "unknown scenario": (
        ["scenario=bogus"],
        ["unknown scenario 'bogus'", "digits", "split-imagefolder", "domain-folder"],
    ),
    "unknown strategy, close match": (
        ["strategy=gcll"],
        ["unknown strategy 'gcll'", "naive", "gdro", "zero-shot", "Did you mean 'gcl'?"],
    ),
    "unknown model": (
        ["model=tiny-clp"],
        ["unknown model 'tiny-clp'", "open_clip.list_models()", "effnet-lite0-clip", "closest: tiny-clip"],
    ),
    "gamma above 1": (["strategy_options.gcl.gamma=1.5"], ["gamma", "(0.0, 1.0]", "1.5"]),
    "gamma 0": (["strategy_options.gcl.gamma=0"], ["gamma", "(0.0, 1.0]", "got 0"]),
    "tau 0": (["strategy_options.gcl.tau=0"], ["tau", "(0.0, inf)", "got 0"]),
    "tau negative (gdro)": (["strategy=gdro", "strategy_options.gdro.tau=-0.1"], ["tau", "(0.0, inf)", "-0.1"]),
    "negative memory": (["mem_size=-1"], ["mem_size", ">= 0", "-1"]),
    "memory required": (["strategy=der", "mem_size=0"], ["'der'", "mem_size must be >= 1", "got 0"]),
    "unknown hyper-parameter": (["strategy_options.gcl.taux=1"], ["'taux'", "'gcl'", "tau=0.05", "gamma=0.9"]),
    "trainable": (["trainable=bogus"], ["trainable='bogus'", "projections", "last:K"]),
    "trainable last:0": (["trainable=last:0"], ["trainable='last:0'", "K an integer >= 1"]),
    "feature cache": (["feature_cache=maybe"], ["feature_cache='maybe'", "'auto', True, False"]),
    # 0 == False in Python, but 0 is not one of the choices (it used to mean "auto")
    "feature cache 0": (["feature_cache=0"], ["feature_cache=0", "'auto', True, False"]),
    "learning rate": (["lr=0"], ["lr must be a number > 0", "got 0"]),
    "pretrained tag": (["pretrained=bogus"], ["unknown pretrained tag 'bogus'", "tiny-clip"]),
    "scenario option": (["scenario_options.max_train_per_klass=3"], ["max_train_per_klass", "max_train_per_class"]),
    "malformed value": (["seed=[0, 1"], ["override 'seed=[0, 1'", "not valid YAML"]),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_input_fails_before_training(case, tmp_path, capsys, monkeypatch):
    overrides, fragments = BAD_RUNS[case]
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    _assert_refused_before_training("run", config, overrides, fragments, tmp_path, capsys, monkeypatch)
    assert not (tmp_path / "cache").exists()


def _assert_refused_before_training(command, config, overrides, fragments, tmp_path, capsys, monkeypatch):
    """``command`` exits 2 with every fragment in its message, no traceback, nothing written."""
    forbid_training(monkeypatch)
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, command, "--config", config, "--out", out, *overrides)
    assert code == 2, stderr
    assert stderr.startswith(f"avalanche-clip {command}: error: ")
    for fragment in fragments:
        assert fragment in stderr, f"{fragment!r} missing from: {stderr}"
    assert "Traceback" not in stderr
    assert not out.exists()


def test_missing_data_root_fails_before_training(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    forbid_training(monkeypatch)
    missing = tmp_path / "no" / "such" / "data"

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out",
                          "scenario=split-imagefolder", f"data_root={missing}")

    assert code == 2
    assert f"data_root '{missing}' does not exist" in stderr
    assert "split-imagefolder" in stderr
    assert not (tmp_path / "out").exists()


def test_relative_missing_data_root_is_named_resolved(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    forbid_training(monkeypatch)
    monkeypatch.chdir(tmp_path)

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out",
                          "scenario=domain-folder", "data_root=data/pacs")

    assert code == 2
    assert f"data_root '{tmp_path.resolve() / 'data' / 'pacs'}' does not exist" in stderr


def test_unknown_config_key_fails(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache", memsize=3))
    forbid_training(monkeypatch)

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out")

    assert code == 2
    assert "unknown config key(s) 'memsize'" in stderr and "mem_size" in stderr


def test_sweep_keys_in_a_run_config_fail_with_a_hint(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(tmp_path / "cache"))
    forbid_training(monkeypatch)

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out")

    assert code == 2
    assert "belong to sweep configs" in stderr


def test_missing_config_file_fails(tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)
    code, _, stderr = cli(capsys, "run", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "out")
    assert code == 2
    assert "nope.yaml does not exist" in stderr


@pytest.mark.parametrize("overrides, fragments", [
    (["strategies=[gcl, naiv]"], ["unknown strategy 'naiv'", "Did you mean 'naive'?"]),
    (["mem_sizes=[10, -5]"], ["mem_size", ">= 0", "-5"]),
    (["seeds=[]"], ["seeds must be a non-empty list"]),
    (["strategy_options.gcl.gamma=2"], ["gamma", "(0.0, 1.0]", "got 2"]),
])
def test_bad_sweep_input_fails_before_any_run(overrides, fragments, tmp_path, capsys, monkeypatch):
    # The whole grid is validated first: a bad entry anywhere means no run starts.
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(tmp_path / "cache"))
    _assert_refused_before_training("sweep", config, overrides, fragments, tmp_path, capsys, monkeypatch)
