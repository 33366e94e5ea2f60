"""What each process of the 2-process tests runs (importable by spawned processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
from strategy_fixtures import cil_benchmark, make_setup  # noqa: E402

from avalanche_clip.strategies import build_strategy  # noqa: E402

EXPERIENCES = 2


def train(name: str, mem_size: int) -> dict:
    """Train ``name`` on the first experiences of the tiny stream; return its state and its
    evaluation on their test data."""
    torch.set_num_threads(1)
    benchmark = cil_benchmark(per_class=20)
    setup = make_setup(benchmark, mem_size=mem_size, train_mb_size=15, train_epochs=2,
                       optimizer="sgd", lr=0.05)
    strategy = build_strategy(name, setup)
    init = {k: v.detach().clone() for k, v in strategy.model.state_dict().items()}
    for experience in benchmark.train_stream[:EXPERIENCES]:
        strategy.train(experience, eval_streams=[])
    metrics = strategy.eval(benchmark.test_stream[:EXPERIENCES])
    loss = getattr(strategy, "contrastive_loss", None)
    return {
        "init": init,
        "model": {k: v.detach().clone() for k, v in strategy.model.state_dict().items()},
        "loss": {} if loss is None else {k: v.clone() for k, v in loss.state_dict().items()},
        "memory": strategy.replay.buffer_ids(),
        "steps": strategy.optimizer_steps,
        "samples": strategy.samples_seen,
        "eval": {k: float(v) for k, v in metrics.items() if "eval_phase" in k},
    }


def worker(rank: int, world: int, init_file: str, out: str, names: list[str], mem_size: int) -> None:
    """One process: train each strategy of ``names`` in turn (one process start for all)."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        for name in names:
            torch.save(train(name, mem_size), Path(out) / f"{name}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()
