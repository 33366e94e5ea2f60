"""Per-step cost of GCL / GDRO / CE against Avalanche's Naive with cross-entropy, same model and data.

Each strategy (Avalanche's ``Naive`` + ``CrossEntropyLoss``; ours: ``ce``, the protocol's
cross-entropy fine-tuning, ``gcl``, ``gdro``) trains on the same stream (digits images or random images), the same CLIP
classifier weights (a fresh copy each) and the same batch size; a plugin times every training
iteration (forward, loss, backward, optimizer step). The strategies take turns, one epoch each,
for several rounds, in a rotating order, so background load and cache warmth hit them alike; the table reports the median iteration
time and the ratio to Naive + CE measured in the same process. It also times the data loader
alone over the same stream, to show whether loading or the training step dominates.

    python benchmarks/bench_step.py --model effnet-lite0-clip --image-size 64 --trainable all
    python benchmarks/bench_step.py --model ViT-B-16 --image-size 224 --batch 256 \\
        --device cuda --amp bf16 --trainable all --max-per-class 1000 --rounds 8  # on a GPU

With ``--amp bf16`` every strategy, Naive included (through :class:`AutocastPlugin`), runs its
forward pass under the same autocast. ``--pretrained`` defaults to none: random weights, which
cost the same per step as pretrained ones. ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import time
import warnings

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from torch import nn

from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
from avalanche_clip.models.precision import autocast
from avalanche_clip.scenarios import build_scenario
from avalanche_clip.strategies import CLIPCrossEntropyStrategy, GCLStrategy, GDROStrategy

warnings.filterwarnings("ignore")


class IterationTimer(SupervisedPlugin):
    """Wall time of each training iteration (CUDA-synchronised on GPUs)."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.times: list[float] = []
        self._start = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def before_training_iteration(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self._sync()
        self._start = time.perf_counter()

    def after_training_iteration(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self._sync()
        self.times.append(time.perf_counter() - self._start)


class AutocastPlugin(SupervisedPlugin):
    """Runs an Avalanche strategy's forward pass under ``autocast(amp, device)``, as our
    strategies run theirs, so that Naive is timed at the same precision."""

    def __init__(self, amp: str, device: torch.device) -> None:
        super().__init__()
        self.amp, self.device = amp, device
        self._context: contextlib.ExitStack | None = None

    def before_forward(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self._context = contextlib.ExitStack()
        self._context.enter_context(autocast(self.amp, self.device))

    def after_forward(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        if self._context is not None:
            self._context.close()
            self._context = None


def _strategies(classifier: CLIPClassifier, benchmark, args, device):  # type: ignore[no-untyped-def]
    common = dict(train_mb_size=args.batch, train_epochs=1, eval_mb_size=args.batch, device=device,
                  evaluator=None)
    built = {}
    for name in ("naive+ce", "ce", "gcl", "gdro"):
        model = copy.deepcopy(classifier)
        timer = IterationTimer(torch.device(device))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        if name == "naive+ce":
            strategy = Naive(model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(),
                             plugins=[AutocastPlugin(args.amp, torch.device(device)), timer], **common)
        elif name == "ce":
            strategy = CLIPCrossEntropyStrategy(model=model, optimizer=optimizer, plugins=[timer],
                                                amp=args.amp, **common)
        elif name == "gcl":
            strategy = GCLStrategy(model=model, optimizer=optimizer, plugins=[timer], amp=args.amp,
                                   num_samples=benchmark.num_train_samples, **common)
        else:
            strategy = GDROStrategy(model=model, optimizer=optimizer, plugins=[timer], amp=args.amp,
                                    num_samples=benchmark.num_train_samples, **common)
        built[name] = (strategy, timer)
    return built


def _loader_throughput(benchmark, batch: int, workers: int) -> float:
    dataset = benchmark.train_stream[0].dataset.train()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)
    start, seen = time.perf_counter(), 0
    for batch_items in loader:
        seen += len(batch_items[0])
    return seen / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Runs the benchmark; returns the median step time (s) of each strategy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="effnet-lite0-clip")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--trainable", default="all")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="fp32", help="autocast of every strategy's forward (fp32, bf16, fp16)")
    parser.add_argument("--rounds", type=int, default=3, help="epochs per strategy, interleaved")
    parser.add_argument("--max-per-class", type=int, default=64, help="train images per digit class")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=3, help="first iterations of each strategy left out")
    parser.add_argument("--json", help="also write the medians and ratios to this file")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model, train_tf, eval_tf, tokenizer = create_clip(args.model, args.pretrained, device=args.device,
                                                       image_size=args.image_size)
    set_trainable(model, args.trainable)
    benchmark = build_scenario("digits", n_experiences=1, train_transform=eval_tf, eval_transform=eval_tf,
                               max_train_per_class=args.max_per_class)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names, "digit").to(args.device)
    built = _strategies(classifier, benchmark, args, args.device)
    order = list(built.values())
    for round_index in range(args.rounds):
        # rotate who goes first: the first strategy of a round runs on colder caches
        shift = round_index % len(order)
        for strategy, _timer in order[shift:] + order[:shift]:
            strategy.train(benchmark.train_stream[0], eval_streams=[])
    # the first iterations of every strategy warm caches and allocators: drop them
    medians = {name: statistics.median(timer.times[args.warmup:]) for name, (_, timer) in built.items()}
    loader = _loader_throughput(benchmark, args.batch, args.workers)
    base = medians["naive+ce"]
    print(f"\nmodel={args.model} image_size={args.image_size} trainable={args.trainable} "
          f"batch={args.batch} device={args.device} amp={args.amp} "
          f"iterations/strategy={len(built['gcl'][1].times)} torch={torch.__version__} "
          f"threads={torch.get_num_threads()}\n")
    print("| strategy | median step (ms) | images/s | ratio to Naive + CE |")
    print("|---|---:|---:|---:|")
    for name, median in medians.items():
        print(f"| {name} | {1000 * median:.1f} | {args.batch / median:.0f} | {median / base:.3f} |")
    print(f"| data loader alone | — | {loader:.0f} | — |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"args": vars(args), "median_step_s": medians, "loader_images_per_s": loader,
                       "ratio_to_naive": {n: m / base for n, m in medians.items()}}, file, indent=1)
    return medians


if __name__ == "__main__":
    main()
