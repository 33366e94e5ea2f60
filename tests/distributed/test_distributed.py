"""Data-parallel training over 2 CPU processes (gloo) equals one process with the same global
batch: the same weights, loss state and evaluation to float round-off, the same memory, after several steps
and across an experience boundary; a killed 2-process run (torchrun, the CLI) resumes to the
records of the uninterrupted one; what DDP does not support is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from distributed_worker import train, worker

ROOT = Path(__file__).resolve().parents[2]


# +augment: random crops, drawn per item (seeded_items); +seen: the absent seen classes'
# prompts as extra negatives, chosen from the gathered labels, their gradient shared by the processes
NAMES = ["gcl+augment", "gdro", "ce", "gcl+seen"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The states of each strategy trained by 2 gloo processes (spawned once for all)."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(2, str(out / "init"), str(out), NAMES, 12), nprocs=2, join=True)
    return {name: [torch.load(out / f"{name}-rank{r}.pt", weights_only=True) for r in (0, 1)]
            for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_two_processes_train_as_one_with_the_same_global_batch(name, two_processes):
    ranks = two_processes[name]
    single = train(name, 12)
    for key in ranks[0]["model"]:  # both processes hold the very same model
        assert torch.equal(ranks[0]["model"][key], ranks[1]["model"][key]), key
    for key, value in ranks[0]["loss"].items():
        torch.testing.assert_close(value, ranks[1]["loss"][key], rtol=0, atol=0, equal_nan=True)
    assert ranks[0]["steps"] == single["steps"] == 2 * 3  # last experience: 2 epochs x ⌈40/15⌉
    assert ranks[0]["samples"] == single["samples"]
    assert torch.equal(ranks[0]["memory"], single["memory"])
    moved = max((single["model"][k] - v).abs().max().item() for k, v in single["init"].items()
                if v.is_floating_point())
    assert moved > 1e-3  # training moved the weights: the comparison is not vacuous
    assert (single["extra_steps"] > 0) == name.endswith("+seen")  # absent seen classes were negatives
    assert ranks[0]["extra_steps"] == ranks[1]["extra_steps"] == single["extra_steps"]
    for key, value in single["model"].items():
        torch.testing.assert_close(ranks[0]["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    for key, value in single["loss"].items():
        torch.testing.assert_close(ranks[0]["loss"][key], value, rtol=1e-5, atol=1e-6, equal_nan=True,
                                   msg=lambda details, key=key: f"{key}: {details}")
    # every process evaluates every test sample (not a DistributedSampler's share of them)
    assert ranks[0]["eval"] == ranks[1]["eval"]
    assert ranks[0]["eval"].keys() == single["eval"].keys() and len(single["eval"]) >= 4
    for key, value in single["eval"].items():  # accuracies, and the loss to float round-off
        assert ranks[0]["eval"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def _config(tmp_path: Path, **extra) -> Path:
    import yaml

    config = {
        "scenario": "digits", "n_experiences": 5, "model": "tiny-clip", "pretrained": None,
        "scenario_options": {"max_train_per_class": 12, "max_test_per_class": 6},
        "trainable": "projections", "strategy": "gdro", "mem_size": 10, "train_epochs": 1,
        "train_mb_size": 16, "eval_mb_size": 64, "optimizer": "sgd", "lr": 0.05,
        "cache_dir": str(tmp_path / "cache"), "progress": False, "zero_shot_floor": False,
        **extra,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _torchrun(config: Path, out: Path, *extra: str, wait: bool = True):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "avalanche_clip", "run", "--config", str(config), "--out", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if wait:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _records(path: Path) -> list[dict]:
    """The records minus wall time (the one field two equal runs may differ in)."""
    import json

    return [{k: v for k, v in json.loads(line).items() if k != "wall_time_s"}
            for line in path.read_text().splitlines() if line.strip()]


def test_torchrun_on_an_image_folder_with_the_feature_cache_records_what_one_process_does(
        tmp_path, data_root, capsys):
    import yaml

    from avalanche_clip.cli import main

    config = _config(tmp_path, scenario="split-imagefolder", data_root=str(data_root / "cifar10"),
                     n_experiences=2, templates="photo", feature_cache=True, strategy="gcl",
                     scenario_options={"max_train_per_class": 8, "max_test_per_class": 8})
    two = _torchrun(config, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-2000:]
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "one"), "threads=1"]) == 0
    assert any((tmp_path / "cache" / "features").iterdir())  # trained on the cached features
    records = {n: _records(tmp_path / n / "results.jsonl") for n in ("one", "two")}
    assert [r["world_size"] for r in records["two"]] == [2, 2]
    assert all("world_size" not in r for r in records["one"])  # one process: as before the field
    for n, size in (("one", 1), ("two", 2)):
        assert yaml.safe_load((tmp_path / n / "config.yaml").read_text())["world_size"] == size
    # rank 0 evaluated all 40 test images of each experience (not its half), on the same weights
    # to float round-off: every accuracy, forgetting, step count and memory digest equal
    assert [{k: v for k, v in r.items() if k != "world_size"} for r in records["two"]] == \
        [{k: v for k, v in r.items() if k != "world_size"} for r in records["one"]]


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_records(tmp_path):
    config = _config(tmp_path)
    whole = _torchrun(config, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert whole.stdout.count("final accuracy") == 1  # rank 0 alone reports
    assert "not compatible" not in whole.stderr and "no state_dict" not in whole.stderr  # plugins declared
    process = _torchrun(config, tmp_path / "two", wait=False)
    deadline = time.monotonic() + 240
    try:  # kill the whole job once the first checkpoint is written
        while time.monotonic() < deadline and process.poll() is None:
            if (tmp_path / "two" / "checkpoint.pt").is_file():
                break
            time.sleep(0.1)
        assert process.poll() is None, "the 2-process run ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert len(_records(tmp_path / "two" / "results.jsonl")) < 5
    done = _torchrun(config, tmp_path / "two", "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _records(tmp_path / "two" / "results.jsonl") == _records(tmp_path / "whole" / "results.jsonl")


def test_unsupported_strategies_plugins_and_commands_are_refused_under_several_processes(monkeypatch, capsys):
    from avalanche.training.plugins import EWCPlugin, LRSchedulerPlugin

    import avalanche_clip.pipeline.run as experiment
    import avalanche_clip.training.distributed_plugins as distributed_plugins
    from avalanche_clip.cli import main
    from avalanche_clip.pipeline.config import ConfigError

    monkeypatch.setattr(experiment, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match="strategy 'der' does not support distributed training "
                                          r"\(2 processes\); supported: ce, gcl, gdro, joint"):
        experiment.check_distributed_strategy("der")
    experiment.check_distributed_strategy("gdro")
    monkeypatch.setattr(distributed_plugins, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="EWCPlugin is not supported with distributed training"):
        distributed_plugins.check_distributed_plugins("GCLStrategy", [EWCPlugin(1.0)])
    scheduler = LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 1))
    distributed_plugins.check_distributed_plugins("GCLStrategy", [scheduler])
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["sweep", "--config", "none.yaml"]) == 2
    assert "sweep under torchrun" in capsys.readouterr().err


def test_batch_norm_layers_that_train_are_refused_under_several_processes(monkeypatch):
    """They would normalise each process's shard by its own statistics (the processes' models
    would drift apart); effnet-lite0's frozen trunk is in eval mode and passes."""
    import avalanche_clip.training.distributed as distributed
    from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    model, _, _, tokenizer = create_clip("effnet-lite0-clip", None)
    set_trainable(model, "projections")
    distributed.check_batch_norm("GCLStrategy", CLIPClassifier(model, tokenizer, ["cat", "dog"]).train())
    set_trainable(model, "last:1")
    with pytest.raises(ValueError, match=r"GCLStrategy under 2 processes: \d+ BatchNorm layer\(s\) train "
                                         r"\(first: clip\.visual\..*trainable: projections or text"):
        distributed.check_batch_norm("GCLStrategy", CLIPClassifier(model, tokenizer, ["cat", "dog"]).train())
