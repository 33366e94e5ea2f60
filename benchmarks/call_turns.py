"""What the per-call benchmarks share: their arguments, the default's model, and timing in turns.

``bench_finite_guard.py``, ``bench_make_optimizer.py`` and ``bench_ewc_penalty.py`` each time a
call of ours against the one it replaces, on the default comparison's model (``effnet-lite0-clip``
at 64 px, projections trained), one thread, the two taking turns (the order reversed every other
round, so neither always runs on a warmer cache) for ``--rounds`` rounds of ``--calls`` calls.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from avalanche_clip.models import create_clip, set_trainable


def call_arguments(description: str, calls: int) -> argparse.ArgumentParser:
    """A parser with ``--calls`` (default ``calls``), ``--rounds``, ``--model`` and ``--pretrained``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--calls", type=int, default=calls)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="effnet-lite0-clip")
    parser.add_argument("--pretrained", default="imagenet", help="tag, or none for random weights")
    return parser


def default_model(args: argparse.Namespace) -> torch.nn.Module:
    """One torch thread, and ``args.model`` at 64 px with its projections trained (the default's)."""
    torch.set_num_threads(1)
    pretrained = None if args.pretrained.lower() in ("none", "null") else args.pretrained
    model, _, _, _ = create_clip(args.model, pretrained, image_size=64)
    set_trainable(model, "projections")
    return model


def median_ms_in_turns(calls: dict[str, Callable[[], object]], args: argparse.Namespace) -> dict[str, float]:
    """The median over ``args.rounds`` rounds of each call's ms per call, the calls taking turns."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(args.rounds):
        for name in (list(calls) if round_ % 2 == 0 else list(calls)[::-1]):
            start = time.perf_counter()
            for _ in range(args.calls):
                calls[name]()
            times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def print_medians(title: str, medians: dict[str, float]) -> None:
    """The medians as a markdown table whose first column is headed ``title``."""
    print(f"| {title} | ms per call (median) |\n|---|---:|")
    for name, ms in medians.items():
        print(f"| {name} | {ms:.3f} |")
