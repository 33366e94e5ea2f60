"""Forward+backward time of GCLLoss and GDROLoss against F.cross_entropy on the same features.

For each batch size B: image features ``[B, D]`` and class prompts ``[K, D]`` (L2-normalised
leaves). Cross-entropy runs on the CLIP classification logits ``image @ prompts.T / τ``
(``[B, K]``); GCL and GDRO run on the same features with each sample's prompt gathered by label
(the ``[B, B]`` image×prompt similarity layout), in training mode, so every call also updates
the per-id state. Each timing is the median over ``--repeats`` calls after ``--warmup`` calls.

    python benchmarks/bench_losses.py --device cpu
    python benchmarks/bench_losses.py --device cuda --write-readme
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from avalanche_clip.losses import GCLLoss, GDROLoss  # noqa: E402

SECTION = "## Losses: forward+backward vs cross-entropy"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--classes", type=int, default=100, help="K, number of class prompts")
    p.add_argument("--dim", type=int, default=512, help="D, embedding width")
    p.add_argument("--num-samples", type=int, default=50_000, help="N, ids of the train set")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-readme", action="store_true",
                   help=f"write the table into benchmarks/README.md under '{SECTION}'")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(steps: dict[str, Callable[[int], None]], repeats: int, warmup: int,
               device: torch.device) -> dict[str, float]:
    """Median wall time in ms of each ``step(i)`` (forward + backward).

    The steps are interleaved within every repeat, so background load on a shared machine
    hits all of them alike and the ratios stay meaningful.
    """
    for i in range(warmup):
        for step in steps.values():
            step(i)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step(warmup + i)
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_batch(batch: int, args: argparse.Namespace, device: torch.device,
                dtype: torch.dtype) -> dict[str, float]:
    g = torch.Generator().manual_seed(args.seed + batch)
    image = F.normalize(torch.randn(batch, args.dim, generator=g), dim=1)
    prompts = F.normalize(torch.randn(args.classes, args.dim, generator=g), dim=1)
    image = image.to(device, dtype).requires_grad_()
    prompts = prompts.to(device, dtype).requires_grad_()
    labels = torch.randint(args.classes, (batch,), generator=g).to(device)
    total = args.warmup + args.repeats
    # Fresh random ids per call: a realistic mix of first and later visits.
    ids = [torch.randperm(args.num_samples, generator=g)[:batch].to(device) for _ in range(total)]
    tau = 0.05

    def ce(_: int) -> None:
        image.grad = prompts.grad = None
        F.cross_entropy(image @ prompts.T / tau, labels).backward()

    def run(loss_fn: torch.nn.Module) -> Callable[[int], None]:
        def step(i: int) -> None:
            image.grad = prompts.grad = None
            loss_fn(image, prompts[labels], labels, ids[i]).backward()
        return step

    gcl = GCLLoss(args.num_samples, tau=tau, gamma=0.9).to(device)
    gdro = GDROLoss(args.num_samples, args.classes, tau=0.5, margin=0.5, dro_lambda=1.0,
                    gamma=0.9, class_gamma=0.9).to(device)
    return time_steps({"ce": ce, "gcl": run(gcl), "gdro": run(gdro)}, args.repeats,
                      args.warmup, device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def markdown_table(rows: dict[int, dict[str, float]]) -> str:
    lines = ["| B | cross-entropy (ms) | GCL (ms) | GCL / CE | GDRO (ms) | GDRO / CE |",
             "|---:|---:|---:|---:|---:|---:|"]
    for b, r in rows.items():
        lines.append(f"| {b} | {r['ce']:.3f} | {r['gcl']:.3f} | {r['gcl'] / r['ce']:.2f} | "
                     f"{r['gdro']:.3f} | {r['gdro'] / r['ce']:.2f} |")
    return "\n".join(lines)


def write_readme(section_body: str, path: Path) -> None:
    """Replace (or append) this script's section of ``path``, leaving other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{SECTION}\n\n{section_body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    rows = {b: bench_batch(b, args, device, dtype) for b in args.batch_sizes}
    table = markdown_table(rows)
    header = (f"Device: {device} ({device_name(device)}); torch {torch.__version__}; "
              f"{args.dtype}; K = {args.classes}, D = {args.dim}, N = {args.num_samples}; "
              f"median of {args.repeats} calls after {args.warmup} warm-up calls.")
    print(header + "\n\n" + table)
    if args.write_readme:
        command = "python benchmarks/bench_losses.py " + " ".join(
            sys.argv[1:] if argv is None else argv)
        body = (
            "Forward+backward of `GCLLoss` / `GDROLoss` (training mode, state updates included)\n"
            "against `F.cross_entropy` on the CLIP logits `image @ prompts.T / τ` built from the\n"
            "same leaf features (the losses see the `[B, B]` image×prompt similarities of the\n"
            "batch's labels). Ratios are loss time / cross-entropy time. The losses multiply\n"
            "B×D by D×B where cross-entropy multiplies B×D by D×K, so once B exceeds K the ratio\n"
            "grows roughly like B/K; either is small next to a CLIP encoder's forward+backward.\n\n"
            f"    {command.strip()}\n\n{header}\n\n{table}\n")
        write_readme(body, Path(__file__).resolve().parent / "README.md")


if __name__ == "__main__":
    main()
