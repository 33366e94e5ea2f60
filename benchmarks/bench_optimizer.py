"""The shared optimizer's step: torch's per-tensor loop against its ``foreach`` and fused paths.

    python benchmarks/bench_optimizer.py --steps 200

A step of AdamW (lr 1e-3, weight decay 0.01, the sweeps' recipe) over the trained parameters of
the two offline comparisons, with the frozen parameters in the optimizer too (Avalanche adds
every model parameter to it; they have no gradient and are skipped):

- ``default``: effnet-lite0-clip's projections (256 x 1280 image, 256 x 256 text): 0.39 M
  trained among 202 parameters (19.6 M);
- ``default, dead features``: the same, with 511 of the image projection's 1280 input columns
  getting an exactly zero gradient, as in a run of the default: the ImageNet tower gives some
  features as exact zeros for every image, so their weights never get a gradient and a third of
  AdamW's second-moment state stays 0 (130,816 = 256 x 511 of the 393,216 entries after a GCL
  run's first step). Torch's CPU ``sqrt`` of an exact zero takes a slow path (~14x a positive
  number's on this machine), and AdamW takes the square root of its whole state every step;
- ``proxy``: the ConSE model of the CIFAR-10 / PACS proxies (the 1000 x 1280 ImageNet
  classifier and its bias, the 384 x 1000 and 384 x 384 text projections): 1.81 M trained among
  253 parameters (27.7 M).

One process, one torch thread, the three paths taking turns (``--rounds``); the table gives the
median ms per step and each path's ratio to the per-tensor loop, and whether its parameters after
the timed steps equal the loop's bit for bit (the committed records were made with the loop).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

SHAPES = {  # trained shapes, parameters in the optimizer, their elements, dead input columns of the first
    "default": ([(256, 1280), (256, 256)], 202, 19_580_417, 0),
    "default, dead features": ([(256, 1280), (256, 256)], 202, 19_580_417, 511),
    "proxy": ([(1000, 1280), (1000,), (384, 1000), (384, 384)], 253, 27_748_841, 0),
}
PATHS = {"per-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def parameters(trained: list[tuple[int, ...]], count: int, total: int,
               dead: int = 0) -> list[torch.nn.Parameter]:
    """The trained parameters (seeded values and gradients; the first ``dead`` input columns of
    the first with a zero gradient) then frozen ones without a gradient."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in trained]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)
    params[0].grad[:, :dead] = 0.0
    frozen = count - len(trained)
    left = total - sum(p.numel() for p in params)
    params += [torch.nn.Parameter(torch.zeros(left // frozen)) for _ in range(frozen)]
    return params


def time_path(setting: str, options: dict, steps: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds per step over ``steps`` steps after 5 untimed ones, and the trained values."""
    params = parameters(*SHAPES[setting])
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, **options)
    for _ in range(5):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    elapsed = (time.perf_counter() - start) / steps
    return elapsed, [p.detach().clone() for p in params if p.grad is not None]


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float | bool]]]:
    """Prints the table; returns ``{setting: {path: {"ms": median, "ratio": to per-tensor,
    "equal": bool}}}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, dict[str, float | bool]]] = {}
    torch.set_num_threads(1)
    print("| setting | path | ms per step (median) | / per-tensor | equal to per-tensor |")
    print("|---|---|---:|---:|---|")
    for setting in SHAPES:
        times: dict[str, list[float]] = {name: [] for name in PATHS}
        values: dict[str, list[torch.Tensor]] = {}
        for round_ in range(args.rounds):
            order = list(PATHS) if round_ % 2 == 0 else list(reversed(PATHS))
            for name in order:
                seconds, values[name] = time_path(setting, PATHS[name], args.steps)
                times[name].append(seconds)
        base = statistics.median(times["per-tensor"])
        for name in PATHS:
            median = statistics.median(times[name])
            equal = all(torch.equal(a, b) for a, b in zip(values[name], values["per-tensor"], strict=True))
            results.setdefault(setting, {})[name] = {"ms": median * 1e3, "ratio": median / base,
                                                     "equal": equal}
            print(f"| {setting} | {name} | {median * 1e3:.2f} | {median / base:.2f} | "
                  f"{'yes' if equal else 'no'} |")
    return results


if __name__ == "__main__":
    main()
