"""The evaluation plugin: metrics and loggers around a GDRO-trained CLIP classifier.

Avalanche's evaluation example with a ``CLIPClassifier`` and ``GDROStrategy`` on a benchmark from
``class_incremental_benchmark``. Metrics are Avalanche's, except ``loss_metrics``: ours weight the
loss by the samples whose class can be predicted yet and leave out experiences with none (with
seen-class masking, Avalanche's would show NaN for them and for the stream). Loggers: the
console, a text file, CSV files and TensorBoard under ``--log-dir``.

    python examples/evaluation_plugin.py --max-per-class 40 --log-dir runs/eval-example
"""

from __future__ import annotations

from pathlib import Path

import torch
from avalanche.benchmarks.scenarios import class_incremental_benchmark
from avalanche.evaluation.metrics import (
    accuracy_metrics,
    confusion_matrix_metrics,
    forgetting_metrics,
    timing_metrics,
)
from avalanche.logging import CSVLogger, InteractiveLogger, TensorboardLogger, TextLogger
from avalanche.training.plugins import EvaluationPlugin
from common import arguments, clip_model, digit_datasets

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.strategies import GDROStrategy


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    args = arguments(__doc__.splitlines()[0], argv, lambda parser: parser.add_argument(
        "--log-dir", default="runs/evaluation-example", help="where the loggers write"))
    log_dir = Path(args.log_dir)
    torch.manual_seed(args.seed)
    clip, transform, tokenizer = clip_model(args.model, args.pretrained)
    train, test, class_names = digit_datasets(transform, args.max_per_class)
    benchmark = class_incremental_benchmark({"train": train, "test": test}, num_experiences=5,
                                            seed=args.seed)

    log_dir.mkdir(parents=True, exist_ok=True)
    text_log = open(log_dir / "log.txt", "w")  # noqa: SIM115 (closed below)
    evaluator = EvaluationPlugin(
        accuracy_metrics(minibatch=True, epoch=True, experience=True, stream=True),
        loss_metrics(minibatch=True, epoch=True, experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        confusion_matrix_metrics(num_classes=len(class_names), save_image=False, stream=True),
        timing_metrics(epoch=True, experience=True),
        loggers=[InteractiveLogger(), TextLogger(text_log), CSVLogger(str(log_dir / "csv")),
                 TensorboardLogger(str(log_dir / "tensorboard"))],
    )
    model = CLIPClassifier(clip, tokenizer, class_names, templates="digit")
    strategy = GDROStrategy(
        model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=args.lr), mem_size=40,
        train_mb_size=args.batch_size, train_epochs=args.epochs, eval_mb_size=256,
        device=args.device, evaluator=evaluator, eval_every=1,
    )
    results = []
    try:
        for t, experience in enumerate(benchmark.train_stream):
            strategy.train(experience, eval_streams=[benchmark.test_stream[: t + 1]])
            results.append(strategy.eval(benchmark.test_stream))
    finally:
        text_log.close()
        for logger in evaluator.loggers:
            getattr(logger, "close", lambda: None)()
    return results


if __name__ == "__main__":
    main()
