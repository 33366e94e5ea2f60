"""Checkpointing: resume a GDRO run with an LR scheduler after the process died.

Avalanche's checkpointing example with a ``CLIPClassifier`` and ``GDROStrategy`` (plus Avalanche's
``LRSchedulerPlugin``) on a ``class_incremental_benchmark``. Avalanche's ``save_checkpoint``
pickles the strategy with dill and fails on torch 2.14; ``avalanche_clip.checkpoint`` saves
explicit state dicts instead (model, optimizer, loss state, replay memory by sample id, the ids
given to the benchmark's samples, clock, RNGs, and each plugin's state) and loads them with
``weights_only=True``. Run it, interrupt it (or pass ``--stop-after 1``), run it again: it
continues from the last finished experience, and the result equals an uninterrupted run.

    python examples/checkpointing.py --checkpoint runs/ckpt-example/checkpoint.pt --stop-after 1
    python examples/checkpointing.py --checkpoint runs/ckpt-example/checkpoint.pt
"""

from __future__ import annotations

from pathlib import Path

import torch
from avalanche.benchmarks.scenarios import class_incremental_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin, LRSchedulerPlugin
from common import arguments, clip_model, digit_datasets

from avalanche_clip.checkpoint import load_checkpoint, save_checkpoint
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.strategies import GDROStrategy


def main(argv: list[str] | None = None) -> dict[str, object]:
    def options(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--checkpoint", default="runs/checkpoint-example/checkpoint.pt")
        parser.add_argument("--stop-after", type=int, default=None,
                            help="stop after this experience (then run again to resume)")

    args = arguments(__doc__.splitlines()[0], argv, options)
    torch.manual_seed(args.seed)
    clip, transform, tokenizer = clip_model(args.model, args.pretrained)
    train, test, class_names = digit_datasets(transform, args.max_per_class)
    benchmark = class_incremental_benchmark({"train": train, "test": test}, num_experiences=5,
                                            seed=args.seed)

    model = CLIPClassifier(clip, tokenizer, class_names, templates="digit")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    strategy = GDROStrategy(
        model=model, optimizer=optimizer, mem_size=40, train_mb_size=args.batch_size, train_epochs=args.epochs,
        device=args.device, seed=args.seed,
        plugins=[LRSchedulerPlugin(scheduler, reset_lr=False, reset_scheduler=False)],
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True)),
    )
    config = {"example": "checkpointing", "seed": args.seed, "max_per_class": args.max_per_class,
              "epochs": args.epochs, "lr": args.lr, "model": args.model}

    path = Path(args.checkpoint)
    start = 0
    if path.is_file():  # a previous run got this far
        start = load_checkpoint(path, strategy=strategy, train_stream=benchmark.train_stream,
                                config=config) + 1
        print(f"resumed after experience {start - 1}")
    results = {}
    for t in range(start, len(benchmark.train_stream)):
        strategy.train(benchmark.train_stream[t])
        results[t] = strategy.eval(benchmark.test_stream[: t + 1])
        save_checkpoint(path, strategy=strategy, experience=t, config=config)
        if t == args.stop_after:
            break
    return {"start": start, "results": results, "strategy": strategy}


if __name__ == "__main__":
    main()
