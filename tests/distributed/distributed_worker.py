"""What each process of the 2-process tests runs (importable by spawned processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
from strategy_fixtures import cil_benchmark, make_setup  # noqa: E402

from avalanche_clip.models import create_clip  # noqa: E402
from avalanche_clip.scenarios import build_scenario  # noqa: E402
from avalanche_clip.strategies import build_strategy  # noqa: E402
from avalanche_clip.training.distributed import reseed_for_rank  # noqa: E402

EXPERIENCES = 2


def augmented_benchmark():
    """The tiny stream with tiny-clip's own random training transform (``RandomResizedCrop``)."""
    _, train_tf, eval_tf, _ = create_clip("tiny-clip")
    return build_scenario("digits", n_experiences=5, seed=0, with_index=True, train_transform=train_tf,
                          eval_transform=eval_tf, max_train_per_class=20, max_test_per_class=10)


def train(name: str, mem_size: int) -> dict:
    """Train ``name`` (``STRATEGY``, ``STRATEGY+augment``: with random crops, or ``STRATEGY+seen``:
    ``train_logits="seen"``, negatives over every seen class) on the first experiences of the
    tiny stream; return its state and its evaluation on their test data."""
    torch.set_num_threads(1)
    strategy_name, _, variant = name.partition("+")
    benchmark = augmented_benchmark() if variant == "augment" else cil_benchmark(per_class=20)
    negatives = {"train_logits": "seen"} if variant == "seen" else {}  # the protocol's, in the setup
    setup = make_setup(benchmark, mem_size=mem_size, train_mb_size=15, train_epochs=2,
                       optimizer="sgd", lr=0.05, **negatives)
    strategy = build_strategy(strategy_name, setup)
    reseed_for_rank(0)  # as a run does: each process its own random stream from here
    init = {k: v.detach().clone() for k, v in strategy.model.state_dict().items()}
    extra_steps = []  # loss calls that had extra negatives (absent seen classes)
    loss = getattr(strategy, "contrastive_loss", None)
    if loss is not None:
        loss.register_forward_hook(
            lambda m, args, kwargs, out: extra_steps.append(len(kwargs.get("extra_negatives", ()))), with_kwargs=True)
    for experience in benchmark.train_stream[:EXPERIENCES]:
        strategy.train(experience, eval_streams=[])
    metrics = strategy.eval(benchmark.test_stream[:EXPERIENCES])
    return {
        "extra_steps": sum(n > 0 for n in extra_steps),
        "init": init,
        "model": {k: v.detach().clone() for k, v in strategy.model.state_dict().items()},
        "loss": {} if loss is None else {k: v.clone() for k, v in loss.state_dict().items()},
        "memory": strategy.replay.buffer_ids(),
        "steps": strategy.budget.optimizer_steps,
        "samples": strategy.budget.samples_seen,
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
