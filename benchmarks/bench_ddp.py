"""Data-parallel step time: N processes (torchrun) against one, the same global batch.

Times the training step (forward, loss, backward, gradient all-reduce, optimizer step) of a
strategy on the same stream, global batch and model, once in one process with ``--threads``
torch threads and once under ``torchrun --nproc_per_node N`` with ``threads // N`` threads per
process, and prints the median step times and their ratio (one process / N processes: > 1 is
a speed-up). On CPU both use the same cores, so the ratio shows the overhead of the gathers and
the all-reduce more than any gain; on GPUs each process has its own device.

    python benchmarks/bench_ddp.py --processes 2 --threads 2                  # CPU, gloo
    python benchmarks/bench_ddp.py --processes 4 --device cuda --model ViT-B-16 \\
        --pretrained laion2b_s34b_b88k --image-size 224 --batch 256 --amp bf16 --trainable all
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from bench_step import IterationTimer  # this script's folder is on sys.path, also under torchrun

warnings.filterwarnings("ignore")


def measure(args: argparse.Namespace) -> dict:
    """One process's share of the measurement (inside torchrun or alone)."""
    from avalanche_clip import distributed
    from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
    from avalanche_clip.scenarios import build_scenario
    from avalanche_clip.strategies import StrategySetup, build_strategy

    torch.set_num_threads(args.threads_per_process)
    device = distributed.init_from_env(args.device)
    torch.manual_seed(0)
    model, _, eval_tf, tokenizer = create_clip(args.model, args.pretrained, device=device,
                                               image_size=args.image_size)
    set_trainable(model, args.trainable)
    benchmark = build_scenario("digits", n_experiences=5, seed=0, train_transform=eval_tf,
                               eval_transform=eval_tf)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names, "digit").to(device)
    timer = IterationTimer(torch.device(device))
    setup = StrategySetup(classifier=classifier, benchmark=benchmark, device=device, mem_size=100,
                          train_mb_size=args.batch, eval_mb_size=args.batch, train_epochs=args.epochs,
                          lr=1e-4, amp=args.amp, plugins=[timer])
    strategy = build_strategy(args.strategy, setup)
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience, eval_streams=[])
    times = timer.times[3:]  # the first steps warm up allocators and caches
    distributed.shutdown()
    return {"median_ms": 1000 * statistics.median(times), "steps": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="effnet-lite0-clip")
    parser.add_argument("--pretrained", default="imagenet")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--trainable", default="all")
    parser.add_argument("--strategy", default="gcl")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--amp", default="fp32")
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--threads-per-process", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_out:  # one process of a measurement
        result = measure(args)
        if int(os.environ.get("RANK", "0")) == 0:
            Path(args.worker_out).write_text(json.dumps(result))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, args.processes):
            out = Path(tmp) / f"{processes}.json"
            launcher = [sys.executable] if processes == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
            command = [*launcher, __file__, *sys.argv[1:], "--worker-out", str(out),
                       "--threads-per-process", str(max(1, args.threads // processes))]
            subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            results[processes] = json.loads(out.read_text())
    one, many = results[1]["median_ms"], results[args.processes]["median_ms"]
    print(f"device {args.device}; {args.model} ({args.trainable}) at {args.image_size} px; "
          f"{args.strategy}; global batch {args.batch}; torch {torch.__version__}")
    print("| processes | threads each | median step (ms) | steps timed |")
    print("|---:|---:|---:|---:|")
    for processes, result in results.items():
        print(f"| {processes} | {max(1, args.threads // processes)} | {result['median_ms']:.1f} | {result['steps']} |")
    print(f"\n1-process / {args.processes}-process step time: {one / many:.2f}")


if __name__ == "__main__":
    main()
