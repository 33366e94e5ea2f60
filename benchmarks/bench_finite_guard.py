"""The divergence check after each epoch: the plugin against a walk of every parameter.

    python benchmarks/bench_finite_guard.py --calls 300

:class:`~avalanche_clip.training.plugins.finite_guard.FiniteGuardPlugin` checks the trainable
weights after every training epoch. The baseline is how it did it before: walk the model's
``named_parameters`` and build an ``isfinite`` mask of each trainable one. Timed on the default's
model (``effnet-lite0-clip`` at 64 px, projections trained: 2 of 202 parameters), one thread,
the two taking turns for ``--rounds`` rounds; prints the median ms per call of each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch

from avalanche_clip.models import create_clip, set_trainable
from avalanche_clip.training.plugins.finite_guard import FiniteGuardPlugin


def walk_every_parameter(model: torch.nn.Module) -> list[str]:
    """The baseline: the names of the non-finite trainable weights, by a full walk."""
    return [name for name, p in model.named_parameters()
            if p.requires_grad and not bool(torch.isfinite(p.detach()).all())]


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints and returns the median ms per call of the baseline and of the plugin."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="effnet-lite0-clip")
    parser.add_argument("--pretrained", default="imagenet", help="tag, or none for random weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pretrained = None if args.pretrained.lower() in ("none", "null") else args.pretrained
    model, _, _, _ = create_clip(args.model, pretrained, image_size=64)
    set_trainable(model, "projections")
    strategy = SimpleNamespace(model=model)
    guard = FiniteGuardPlugin()
    guard.before_training_exp(strategy)  # lists the trainable weights, once an experience
    checks = {"walk every parameter (before)": lambda: walk_every_parameter(model),
              "FiniteGuardPlugin (now)": lambda: guard.after_training_epoch(strategy)}
    times: dict[str, list[float]] = {name: [] for name in checks}
    for round_ in range(args.rounds):
        for name in (list(checks) if round_ % 2 == 0 else list(checks)[::-1]):
            start = time.perf_counter()
            for _ in range(args.calls):
                checks[name]()
            times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print("| check after an epoch | ms per call (median) |\n|---|---:|")
    for name, ms in medians.items():
        print(f"| {name} | {ms:.3f} |")
    return medians


if __name__ == "__main__":
    main()
