"""Getting started: a CLIP classifier trained with GCL on a benchmark from Avalanche's builders.

Avalanche's getting-started script (``Naive(model, optimizer, criterion)`` on SplitMNIST) with
two changes: the model is a ``CLIPClassifier`` over the class names, and the strategy is
``GCLStrategy(model=model, optimizer=optimizer)`` — no criterion (the loss is GCL) and no ``num_samples`` (the
strategy gives each sample a global id as experiences arrive).

    python examples/getting_started.py --max-per-class 40
"""

from __future__ import annotations

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.logging import InteractiveLogger
from avalanche.training.plugins import EvaluationPlugin
from common import arguments, clip_model, digit_datasets

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.strategies import GCLStrategy


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    args = arguments(__doc__.splitlines()[0], argv)
    torch.manual_seed(args.seed)
    clip, transform, tokenizer = clip_model(args.model, args.pretrained)
    train, test, class_names = digit_datasets(transform, args.max_per_class)
    benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False, seed=args.seed)

    model = CLIPClassifier(clip, tokenizer, class_names, templates="digit")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    strategy = GCLStrategy(
        model=model, optimizer=optimizer, mem_size=40, train_mb_size=args.batch_size, train_epochs=args.epochs,
        eval_mb_size=256, device=args.device,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                   loss_metrics(experience=True, stream=True),
                                   forgetting_metrics(experience=True, stream=True),
                                   loggers=[InteractiveLogger()]),
    )

    results = []
    for experience in benchmark.train_stream:
        print("Start of experience", experience.current_experience,
              "classes", experience.classes_in_this_experience)
        strategy.train(experience)
        results.append(strategy.eval(benchmark.test_stream))
    return results


if __name__ == "__main__":
    main()
