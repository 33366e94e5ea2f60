"""Every strategy, the losses' state and a whole command-line run on a CUDA device.

Skipped without one (CI has none); run where a GPU exists. ``AVALANCHE_CLIP_TEST_DEVICE`` names
another device (``cuda:1``; ``cpu`` runs these checks on the CPU, where the parity test compares
the CPU with itself).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from avalanche.core import SupervisedPlugin
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.strategies import STRATEGIES, build_strategy, strategy_info

DEVICE = os.environ.get("AVALANCHE_CLIP_TEST_DEVICE", "cuda")

if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip("no CUDA device: the CUDA checks run where a GPU exists", allow_module_level=True)


class LossTrace(SupervisedPlugin):
    """The training loss of every iteration, as a float."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def after_training_iteration(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self.losses.append(float(strategy.loss.detach()))


def _tensors_of(value):  # type: ignore[no-untyped-def]
    if torch.is_tensor(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors_of(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors_of(item)


@pytest.mark.parametrize("name", STRATEGIES.list())
def test_every_strategy_trains_and_evaluates_on_the_device(name):
    info = strategy_info(name)
    benchmark = cil_benchmark(with_index=info.uses_index)
    strategy = build_strategy(name, make_setup(benchmark, mem_size=20, device=DEVICE))
    records = ContinualRun(strategy, benchmark, identity={"strategy": name}, progress=False,
                           joint=info.joint).run()
    final = records[-1]
    assert final["final"] and len(final["accuracy_per_experience"]) == 5
    assert 0.0 <= final["stream_accuracy"] <= 1.0
    device = torch.device(DEVICE)
    assert all(p.device.type == device.type for p in strategy.model.parameters())
    # a loss with state (GCL's u, v; GDRO's class weights) keeps it beside the model
    loss = getattr(strategy, "contrastive_loss", None)
    if loss is not None:
        assert all(b.device.type == device.type for b in loss.buffers())
    for tensor in _tensors_of(strategy.optimizer.state_dict()["state"]):
        if tensor.dim() > 0:  # AdamW's step counters may stay on the CPU
            assert tensor.device.type == device.type


@pytest.mark.parametrize("name", ["gcl", "gdro", "ce"])
def test_losses_on_the_device_match_the_cpu(name):
    """The same run on both devices: every training loss of the first two experiences agrees
    (TF32 off, so that the GPU computes in full fp32 as the CPU does)."""
    traces = {}
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        for device in ("cpu", DEVICE):
            benchmark = cil_benchmark(with_index=strategy_info(name).uses_index)
            trace = LossTrace()
            strategy = build_strategy(name, make_setup(benchmark, mem_size=20, device=device, plugins=[trace]))
            for experience in benchmark.train_stream[:2]:
                strategy.train(experience, eval_streams=[])
            traces[device] = trace.losses
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    assert len(traces["cpu"]) == len(traces[DEVICE]) > 4
    assert traces[DEVICE] == pytest.approx(traces["cpu"], rel=1e-3, abs=1e-4)


def test_command_line_run_with_cached_features_and_two_views(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
    from cli_fixtures import cli, read_jsonl, tiny_config, write_config

    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache", device=DEVICE,
                                                                feature_views=2, amp="bf16"))
    code, _, err = cli(capsys, "run", "--config", config, "--out", tmp_path / "run")
    assert code == 0, err
    records = read_jsonl(tmp_path / "run" / "results.jsonl")
    final = records[-1]
    assert final["final"] and final["feature_views"] == 2 and 0.0 <= final["stream_accuracy"] <= 1.0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["device"] == DEVICE
