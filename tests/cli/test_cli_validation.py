"""Bad input fails before any training: exit code 2, a message naming the value and the choices.

"Before any training" is proven twice: building or training a run fails the test
(``forbid_training``), and the output folder is never created.
"""

from __future__ import annotations

import time

import pytest
from cli_fixtures import (
    billion_laughs,
    cli,
    forbid_training,
    tiny_config,
    tiny_sweep_config,
    write_config,
)

from avalanche_clip.strategies import strategy_hparams

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
    # the accepted list names GCL's own defaults (strategies/defaults.py), whatever they are now
    "unknown hyper-parameter": (["strategy_options.gcl.taux=1"], ["'taux'", "'gcl'", *(
        f"{key}={strategy_hparams('gcl')[key]!r}" for key in ("tau", "gamma"))]),
    "trainable": (["trainable=bogus"], ["trainable='bogus'", "projections", "last:K"]),
    "trainable last:0": (["trainable=last:0"], ["trainable='last:0'", "K an integer >= 1"]),
    "feature cache": (["feature_cache=maybe"], ["feature_cache='maybe'", "'auto', True, False"]),
    # 0 == False in Python, but 0 is not one of the choices (it used to mean "auto")
    "feature cache 0": (["feature_cache=0"], ["feature_cache=0", "'auto', True, False"]),
    "learning rate": (["lr=0"], ["lr must be a finite number > 0", "got 0"]),
    "pretrained tag": (["pretrained=bogus"], ["unknown pretrained tag 'bogus'", "tiny-clip"]),
    "scenario option": (["scenario_options.max_train_per_klass=3"], ["max_train_per_klass", "max_train_per_class"]),
    "malformed value": (["seed=[0, 1"], ["override 'seed=[0, 1'", "not valid YAML"]),
    # issue 14: values Python used to accept silently or fail on with its own message
    "no training epochs": (["train_epochs=0"], ["train_epochs=0", "'gcl'", "untrained", "'zero-shot'"]),
    "boolean maybe": (["checkpoint=maybe"], ["checkpoint must be true or false", "got 'maybe'"]),
    "boolean sometimes": (["zero_shot_floor=sometimes"], ["zero_shot_floor must be true or false", "'sometimes'"]),
    "boolean 1": (["progress=1"], ["progress must be true or false", "got 1"]),
    "seed null": (["seed=null"], ["seed must be an integer >= 0", "got None"]),
    "n_experiences word": (["n_experiences=two"], ["n_experiences must be an integer >= 1 or null", "got 'two'"]),
    "image size 0": (["image_size=0"], ["image_size must be an integer >= 1 or null", "got 0"]),
    "infinite lr": (["lr=.inf"], ["lr must be a finite number > 0", "got inf"]),
    "nan lr": (["lr=.nan"], ["lr must be a finite number > 0", "got nan"]),
    "template placeholder": (["templates=['a {} {kind}']"],
                             ["template 'a {} {kind}'", "placeholder other than one '{}'", "KeyError: 'kind'"]),
    "template two slots": (["templates=['{} and {}']"], ["template '{} and {}'", "IndexError"]),
    "label escapes": (["label=../../escaped"], ["label='../../escaped'", "path separator"]),
    "label dots": (["label=.."], ["label='..'", "contains '..'"]),
    "label newline": (['label="a\\nb"'], ["label='a\\nb'", "control character"]),
    "label empty": (["label=''"], ["label=''", "it is empty"]),
    "device name": (["device=gpu0"], ["device='gpu0' is not a device", "cpu, cuda or cuda:N"]),
    # issue 27: labels become folder names and record fields, so they are bounded (128 bytes)
    "label of 300 characters": ([f"label={'x' * 300}"],
                                [f"label='{'x' * 300}'", "300 bytes long in UTF-8", "at most 128 bytes"]),
    "label of 130 bytes": (["label=" + "é" * 65], ["label='" + "é" * 65, "130 bytes long in UTF-8"]),
    # issue 27: aliases bounded (6 levels of 9: 531441 values, refused before any is built)
    "billion laughs in a label": ([f"label={billion_laughs(6)}"],
                                  ["override 'label=[&a [lol", "expand to more than 10000 values", "billion laughs"]),
    "recursive alias": (["mem_size=&a [*a]"], ["override 'mem_size=&a [*a]'", "recursive value"]),
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
    return stderr


def test_an_absent_gpu_fails_before_training(tmp_path, capsys, monkeypatch):
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device, fragment = (f"cuda:{count}", f"has {count} CUDA GPU(s)") if count else (
        "cuda", "no CUDA GPU is available here")
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    _assert_refused_before_training("run", config, [f"device={device}"],
                                    [f"device={device!r}", fragment], tmp_path, capsys, monkeypatch)
    sweep = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(tmp_path / "cache"))
    _assert_refused_before_training("sweep", sweep, [f"device={device}"],
                                    [f"device={device!r}", fragment], tmp_path, capsys, monkeypatch)


def test_duplicate_yaml_key_fails_naming_the_key_and_both_lines(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    config.write_text(config.read_text() + "mem_size: 20\n")  # tiny_config already sets it
    lines = config.read_text().splitlines()
    first, second = 1 + lines.index("mem_size: 10"), len(lines)
    _assert_refused_before_training("run", config, [], [
        f"config file {config} is not valid YAML", "found duplicate key 'mem_size'",
        f"first at line {first}", f"line {second}, column 1"], tmp_path, capsys, monkeypatch)


def test_config_path_that_is_a_folder(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    _assert_refused_before_training("run", folder, [], [f"config file {folder} is a folder; expected a YAML file"],
                                    tmp_path, capsys, monkeypatch)


def test_data_root_that_is_a_file(tmp_path, capsys, monkeypatch):
    not_a_folder = tmp_path / "data.zip"
    not_a_folder.write_bytes(b"PK")
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    _assert_refused_before_training(
        "run", config, ["scenario=split-imagefolder", f"data_root={not_a_folder}"],
        [f"data_root '{not_a_folder}' is a file; expected the folder holding the data"],
        tmp_path, capsys, monkeypatch)


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
    assert "belong to sweep configs" in stderr and "strategy=NAME mem_size=M seed=S" in stderr


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
    (["scenarios=[{label: ../escaped}]"], ["label='../escaped'", "path separator"]),
    (["scenarios=[{label: 'ok'}, {label: 'a/b'}]"], ["label='a/b'", "path separator"]),
    # issue 27: a run folder <label>__<variant>__m<M>__s<S> past 255 bytes ("File name too long")
    ([f"scenarios=[{{label: {'x' * 300}}}]"], ["label='xxx", "300 bytes long in UTF-8"]),
    ([f"scenarios=[{{label: {'s' * 126}}}]", f"strategies=[{{label: {'v' * 126}, strategy: naive}}]"],
     ["the run folder name '" + "s" * 126 + "__" + "v" * 126 + "__m0__s0'", "262 bytes long in UTF-8",
      "limit of 255"]),
])
def test_bad_sweep_input_fails_before_any_run(overrides, fragments, tmp_path, capsys, monkeypatch):
    # The whole grid is validated first: a bad entry anywhere means no run starts.
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(tmp_path / "cache"))
    _assert_refused_before_training("sweep", config, overrides, fragments, tmp_path, capsys, monkeypatch)


# ConfigError (mem_size, label: cut when made) and a registry's ValueError (scenario: cut by the CLI)
@pytest.mark.parametrize("key", ["mem_size", "label", "scenario"])
def test_a_huge_value_is_not_echoed_whole(key, tmp_path, capsys, monkeypatch):
    # issue 27: a 10 MB string was echoed whole to stderr; 100 kB shows the cut as well
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    stderr = _assert_refused_before_training("run", config, [f"{key}=" + "x" * 100_000],
                                             [key, "xxxx… (", " characters left out) …xxxx"],
                                             tmp_path, capsys, monkeypatch)
    assert len(stderr) < 2100 and stderr.count("\n") == 1


def test_a_billion_laughs_config_file_is_one_line_within_seconds(tmp_path, capsys, monkeypatch):
    # issue 27: 10⁹ values once expanded; the run went to 3 GB and an OOM kill after ~100 s
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    config.write_text(config.read_text().replace("mem_size: 10\n", f"mem_size: {billion_laughs(9)}\n"))
    began = time.monotonic()
    _assert_refused_before_training("run", config, [], [
        f"config file {config} is refused: its aliases (*name) expand to more than 10000 values"],
        tmp_path, capsys, monkeypatch)
    assert time.monotonic() - began < 5.0  # milliseconds of work; slack for a busy machine
