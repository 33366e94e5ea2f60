"""EWC's penalty at each step: Avalanche's ``before_backward`` against ours (terms listed once).

    python benchmarks/bench_ewc_penalty.py --calls 100

Avalanche's ``EWCPlugin.before_backward`` walks ``model.named_parameters()`` once per past
experience at every step to find the parameters that have an anchor;
:class:`~avalanche_clip.training.plugins.ewc.TrainableEWCPlugin` lists those terms once an
experience and sums them with the same operations. Timed on the default's model
(``effnet-lite0-clip`` at 64 px, projections trained) with anchors and importances of the trained
parameters for ``--past`` experiences (the last experience of a 5-experience run: 4), one
thread, the two taking turns for ``--rounds`` rounds; prints the median ms per call and whether
the two penalties are equal bit for bit.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch
from avalanche.training.plugins import EWCPlugin
from avalanche.training.utils import ParamData

from avalanche_clip.models import create_clip, set_trainable
from avalanche_clip.training.plugins.ewc import TrainableEWCPlugin


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints and returns the median ms per call of Avalanche's penalty and of ours."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--past", type=int, default=4, help="past experiences with anchors")
    parser.add_argument("--model", default="effnet-lite0-clip")
    parser.add_argument("--pretrained", default="imagenet", help="tag, or none for random weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pretrained = None if args.pretrained.lower() in ("none", "null") else args.pretrained
    model, _, _, _ = create_clip(args.model, pretrained, image_size=64)
    set_trainable(model, "projections")
    plugin = TrainableEWCPlugin(ewc_lambda=1.0)
    for t in range(args.past):
        for name, p in model.named_parameters():
            if p.requires_grad:
                plugin.saved_params[t][name] = ParamData(name, p.shape, init_tensor=p.detach() + 0.01 * torch.randn_like(p))
                plugin.importances[t][name] = ParamData(name, p.shape, init_tensor=torch.rand_like(p))
    strategy = SimpleNamespace(model=model, device=torch.device("cpu"), loss=torch.zeros(()),
                               clock=SimpleNamespace(train_exp_counter=args.past))
    penalties: dict[str, torch.Tensor] = {}

    def penalty(add) -> None:  # type: ignore[no-untyped-def]
        strategy.loss = torch.zeros(())
        add(plugin, strategy)
        penalties[add.__qualname__] = strategy.loss.detach()

    calls = {"Avalanche's before_backward (before)": lambda: penalty(EWCPlugin.before_backward),
             "TrainableEWCPlugin (now)": lambda: penalty(TrainableEWCPlugin.before_backward)}
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for round_ in range(args.rounds):
            for name in (list(calls) if round_ % 2 == 0 else list(calls)[::-1]):
                start = time.perf_counter()
                for _ in range(args.calls):
                    calls[name]()
                times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    medians = {name: statistics.median(values) for name, values in times.items()}
    equal = len({float(v) for v in penalties.values()}) == 1 and all(
        torch.equal(v, next(iter(penalties.values()))) for v in penalties.values())
    print(f"{args.past} past experiences; penalties equal bit for bit: {equal}")
    print("| EWC penalty, one step | ms per call (median) |\n|---|---:|")
    for name, ms in medians.items():
        print(f"| {name} | {ms:.3f} |")
    return {**medians, "equal": float(equal)}


if __name__ == "__main__":
    main()
