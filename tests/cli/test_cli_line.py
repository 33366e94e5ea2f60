"""The command line as people type it (issue 17): overrides anywhere on the line, the model's
own ``pretrained`` default (recorded as the tag that ran), the ``threads`` key, and ``--help``
showing the defaults that apply."""

from __future__ import annotations

import pytest
import torch
import yaml
from cli_fixtures import cli, read_jsonl, tiny_config, write_config

from avalanche_clip.cli import _parse
from avalanche_clip.common.threads import local_cores, run_threads
from avalanche_clip.models import OFFLINE_MODELS, create_clip
from avalanche_clip.models.factory import default_pretrained
from avalanche_clip.pipeline.config import ConfigError, resolve_config
from avalanche_clip.pipeline.config_parse import parse_run_config


@pytest.mark.parametrize("command", ["run", "sweep", "prepare"])
def test_overrides_parse_anywhere_on_the_line(command):
    first, second = {"run": (["--out", "D"], ["--resume"]), "sweep": (["--out", "D"], ["--workers", "2"]),
                     "prepare": (["--check"], [])}[command]
    args = _parse([command, "a=1", "--config", "C", "b.c=x", *first, "d=[1, 2]", *second, "e=null"])
    assert args.command == command and str(args.config) == "C"
    assert args.overrides == ["a=1", "b.c=x", "d=[1, 2]", "e=null"]


def test_a_run_takes_overrides_before_and_after_its_options(tmp_path, capsys):
    # the line of issue 17: `run --config C a=b --out D c=d` failed with "unrecognized arguments"
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache", strategy="naive"))
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "run", "--config", config, "mem_size=0", "--out", out, "seed=1")
    assert code == 0, stderr
    records = read_jsonl(out / "results.jsonl")
    assert {(r["mem_size"], r["seed"]) for r in records} == {(0, 1)}
    assert "digits__naive__m0__s1" in stdout


def test_without_a_pretrained_line_each_model_loads_its_own_default():
    def resolved(model):
        return resolve_config([{"model": model}])["pretrained"]

    assert resolved("effnet-lite0-clip") == "imagenet"  # the offline tag
    assert resolved("tiny-clip") is None  # an offline config without tags: random init
    assert resolved("ViT-S-32") is None  # an open_clip architecture without tags
    # open_clip lists 'openai' first for ViT-B-16, but those weights need QuickGELU
    assert resolved("ViT-B-16") == "laion400m_e31"
    assert resolved("ViT-B-16-quickgelu") == "openai"
    assert resolve_config([{"model": "tiny-clip", "pretrained": None}])["pretrained"] is None
    assert resolve_config([{"model": "ViT-B-16", "pretrained": "laion2b_s34b_b88k"}])["pretrained"] == "laion2b_s34b_b88k"


def test_a_new_offline_model_gets_its_default_from_its_entry_alone(monkeypatch):
    # the first tag an OFFLINE_MODELS entry declares is its default: nothing else to register
    monkeypatch.setitem(OFFLINE_MODELS, "some-offline-clip", {"first": "a", "second": "b"})
    assert default_pretrained("some-offline-clip") == "first"
    monkeypatch.setitem(OFFLINE_MODELS, "some-offline-clip", {})
    assert default_pretrained("some-offline-clip") is None


def test_the_library_takes_default_as_the_models_default():
    model, _, _, _ = create_clip("tiny-clip", "default")
    assert model.clip_spec.pretrained is None


def test_a_run_without_pretrained_records_the_tag_that_ran(tmp_path, capsys):
    config = tiny_config(tmp_path / "cache", strategy="zero-shot", mem_size=0)
    del config["pretrained"]
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "run", "--config", write_config(tmp_path / "r.yaml", config), "--out", out)
    assert code == 0, stderr
    assert {r["pretrained"] for r in read_jsonl(out / "results.jsonl")} == {None}
    assert yaml.safe_load((out / "config.yaml").read_text())["pretrained"] is None


def test_threads_default_to_cores_divided_by_workers():
    assert run_threads(None, workers=1, cores=8) is None  # one run: torch's own default
    assert run_threads(None, workers=2, cores=8) == 4
    assert run_threads(None, workers=3, cores=8) == 2
    assert run_threads(None, workers=4, cores=2) == 1  # never below one
    assert run_threads(3, workers=2, cores=8) == 3  # the config wins


def test_the_threads_key_sets_torchs_threads_of_a_run(tmp_path, capsys):
    config = write_config(tmp_path / "r.yaml", tiny_config(tmp_path / "cache", strategy="zero-shot", mem_size=0))
    before = torch.get_num_threads()
    try:
        code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out", "threads=2")
        assert code == 0, stderr
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    # threads only says how fast: the finished run is the same run under another value
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out", "threads=1")
    assert code == 0, stderr


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two"])
def test_bad_threads_are_refused_before_training(bad, tmp_path, capsys):
    config = write_config(tmp_path / "r.yaml", tiny_config(tmp_path / "cache"))
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out", f"threads={bad}")
    assert code == 2 and "threads must be an integer >= 1 or null" in stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError):
        parse_run_config(resolve_config([{"threads": bad}]))


def test_help_shows_the_defaults_that_apply(capsys):
    with pytest.raises(SystemExit):
        _parse(["run", "--help"])
    text = capsys.readouterr().out
    for fragment in ("key=value", "anywhere on the line", "effnet-lite0-clip: imagenet", "tiny-clip: none",
                     "ViT-B-16: laion400m_e31", f"{local_cores()} (cores here)",
                     "without --config: the embedded comparison (its GCL run)", "strategy=gcl", "mem_size=100"):
        assert fragment in text, fragment
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and line.split()}
    assert lines["lr"].split()[1] == "0.001" and lines["pretrained"].split()[1] == "model's"
    with pytest.raises(SystemExit):
        _parse(["sweep", "--help"])
    text = capsys.readouterr().out
    assert "--workers" in text and "--ray-address" in text and "1 (auto) or cores / --workers" in text
    assert "auto (default, or env AVALANCHE_CLIP_SWEEP_WORKERS)" in " ".join(text.split())
    assert "mem_sizes" in text and "seeds" in text
