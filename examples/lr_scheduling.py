"""LR scheduling: Avalanche's LRSchedulerPlugin around a CLIP classifier fine-tuned with CE.

Avalanche's LR-scheduling example with a ``CLIPClassifier`` and ``CLIPCrossEntropyStrategy``
(cross-entropy over the seen classes' prompt logits, with replay) on a ``class_incremental_benchmark``:
the learning rate follows a ``MultiStepLR`` within each experience and is reset after it.

    python examples/lr_scheduling.py --epochs 4 --max-per-class 40
"""

from __future__ import annotations

import torch
from avalanche.benchmarks.scenarios import class_incremental_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin, LRSchedulerPlugin
from common import arguments, clip_model, digit_datasets
from torch.optim.lr_scheduler import MultiStepLR

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.strategies import CLIPCrossEntropyStrategy


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = arguments(__doc__.splitlines()[0], argv, epochs=4)
    torch.manual_seed(args.seed)
    clip, transform, tokenizer = clip_model(args.model, args.pretrained)
    train, test, class_names = digit_datasets(transform, args.max_per_class)
    benchmark = class_incremental_benchmark({"train": train, "test": test}, num_experiences=5,
                                            seed=args.seed)

    model = CLIPClassifier(clip, tokenizer, class_names, templates="digit")
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    milestones = [max(1, args.epochs // 2), max(1, 3 * args.epochs // 4)]
    scheduler = LRSchedulerPlugin(MultiStepLR(optimizer, milestones=milestones, gamma=0.1))
    strategy = CLIPCrossEntropyStrategy(
        model=model, optimizer=optimizer, criterion=torch.nn.CrossEntropyLoss(), mem_size=40, train_mb_size=args.batch_size,
        train_epochs=args.epochs, device=args.device, plugins=[scheduler],
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loss_metrics(epoch=True, stream=True)),
    )
    learning_rates = []
    for t, experience in enumerate(benchmark.train_stream):
        strategy.train(experience)
        learning_rates.append(optimizer.param_groups[0]["lr"])  # reset after each experience
        metrics = strategy.eval(benchmark.test_stream[: t + 1])
    return {"metrics": metrics, "learning_rates": learning_rates, "milestones": milestones}


if __name__ == "__main__":
    main()
