"""Training time with and without denormal floats flushed to zero (what run processes do).

Trains the first experiences of one CE run of an offline proxy at a high learning rate (where a
softmax over the ConSE model's 1,000 ImageNet classes underflows into denormals) twice in the
same process — denormals kept, then flushed — and prints both times and their ratio.

    python benchmarks/bench_denormals.py --config experiments/cifar10_proxy.yaml --experiences 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from avalanche_clip.pipeline.config import SWEEP_KEYS, load_config, resolve_config
from avalanche_clip.pipeline.run import prepare_run

warnings.filterwarnings("ignore")


def train_time(config: dict, experiences: int, *, flush: bool) -> float:
    """Seconds to train the first ``experiences`` experiences (model and data built beforehand)."""
    torch.set_flush_denormal(flush)
    prepared = prepare_run(config)
    start = time.perf_counter()
    for experience in prepared.benchmark.train_stream[:experiences]:
        prepared.strategy.train(experience, eval_streams=[])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/cifar10_proxy.yaml")
    parser.add_argument("--experiences", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = {k: v for k, v in load_config(args.config).items() if k not in SWEEP_KEYS}
    source.update(strategy="ce", mem_size=50, lr=args.lr, progress=False, zero_shot_floor=False)
    config = resolve_config([source])
    kept = train_time(config, args.experiences, flush=False)
    flushed = train_time(config, args.experiences, flush=True)
    print(f"{args.config}: CE, lr {args.lr}, {args.experiences} experiences, {args.threads} threads")
    print(f"denormals kept {kept:.1f} s · flushed {flushed:.1f} s · kept / flushed {kept / flushed:.2f}")


if __name__ == "__main__":
    main()
