"""``make_optimizer`` before each experience: Avalanche's ``update_optimizer`` against ours.

    python benchmarks/bench_make_optimizer.py --calls 50

Avalanche calls ``make_optimizer`` at the start of every training experience; with the model
unchanged since the last call (every run of ours: no model grows), its ``update_optimizer``
still matches every named parameter against every parameter of the optimizer and builds a name
tree of the model. :func:`~avalanche_clip.training.optimizer_params.update_optimizer_params`
returns at once in that case. Timed on the default's model (``effnet-lite0-clip`` at 64 px,
projections trained, all 202 parameters in the optimizer as Avalanche puts them), one thread,
the two taking turns for ``--rounds`` rounds; prints the median ms per call of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from avalanche.models.dynamic_optimizers import update_optimizer

from avalanche_clip.models import create_clip, set_trainable
from avalanche_clip.training.optimizer_params import update_optimizer_params


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints and returns the median ms per call of Avalanche's update and of ours."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="effnet-lite0-clip")
    parser.add_argument("--pretrained", default="imagenet", help="tag, or none for random weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pretrained = None if args.pretrained.lower() in ("none", "null") else args.pretrained
    model, _, _, _ = create_clip(args.model, pretrained, image_size=64)
    set_trainable(model, "projections")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    optimized = update_optimizer(optimizer, dict(model.named_parameters()), None)  # the first call
    calls = {
        "Avalanche's update_optimizer (before)":
            lambda: update_optimizer(optimizer, dict(model.named_parameters()), optimized),
        "update_optimizer_params (now)":
            lambda: update_optimizer_params(optimizer, dict(model.named_parameters()), optimized),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(args.rounds):
        for name in (list(calls) if round_ % 2 == 0 else list(calls)[::-1]):
            start = time.perf_counter()
            for _ in range(args.calls):
                calls[name]()
            times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    medians = {name: statistics.median(values) for name, values in times.items()}
    held = sum(len(group["params"]) for group in optimizer.param_groups)
    print(f"{held} parameters in the optimizer\n| make_optimizer, model unchanged | ms per call (median) |\n|---|---:|")
    for name, ms in medians.items():
        print(f"| {name} | {ms:.3f} |")
    return medians


if __name__ == "__main__":
    main()
