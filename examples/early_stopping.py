"""Early stopping on a validation stream, with a CLIP classifier trained by GCL.

Avalanche's early-stopping example with a ``CLIPClassifier`` and ``GCLStrategy``: the benchmark
from ``class_incremental_benchmark`` gets a validation stream (``benchmark_with_validation_stream``),
the strategy evaluates it after every epoch (``eval_every=1``), and ``EarlyStoppingPlugin`` stops
an experience when the validation accuracy has not improved for ``--patience`` epochs, restoring
the best weights.

    python examples/early_stopping.py --epochs 10 --max-per-class 60
"""

from __future__ import annotations

import torch
from avalanche.benchmarks.scenarios import class_incremental_benchmark
from avalanche.benchmarks.scenarios.validation_scenario import benchmark_with_validation_stream
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EarlyStoppingPlugin, EvaluationPlugin
from common import arguments, clip_model, digit_datasets

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.strategies import GCLStrategy


class EpochCounter(SupervisedPlugin):
    """How many epochs each experience trained (to see where early stopping stopped it)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []

    def before_training_exp(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self.epochs.append(0)

    def after_training_epoch(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self.epochs[-1] += 1


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = arguments(__doc__.splitlines()[0], argv, epochs=10)
    torch.manual_seed(args.seed)
    clip, transform, tokenizer = clip_model(args.model, args.pretrained)
    train, test, class_names = digit_datasets(transform, args.max_per_class)
    benchmark = benchmark_with_validation_stream(
        class_incremental_benchmark({"train": train, "test": test}, num_experiences=5, seed=args.seed),
        validation_size=0.2, shuffle=True, seed=args.seed)  # shuffled: every class validates

    model = CLIPClassifier(clip, tokenizer, class_names, templates="digit")
    counter = EpochCounter()
    stopper = EarlyStoppingPlugin(patience=2, val_stream_name="valid_stream", metric_name="Top1_Acc_Stream")
    strategy = GCLStrategy(
        model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=args.lr), mem_size=40,
        train_mb_size=args.batch_size, train_epochs=args.epochs, device=args.device, eval_every=1,
        plugins=[stopper, counter],
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loss_metrics(stream=True)),
    )
    for t, experience in enumerate(benchmark.train_stream):
        # validate on the experiences trained so far (a class never seen cannot be predicted)
        strategy.train(experience, eval_streams=[benchmark.valid_stream[: t + 1]])
        metrics = strategy.eval(benchmark.test_stream[: t + 1])
    return {"metrics": metrics, "epochs": counter.epochs}


if __name__ == "__main__":
    main()
