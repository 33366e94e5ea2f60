"""EWC, LwF or SI on top of GDRO (or GCL / CE): Avalanche's regularisation plugins, unchanged.

Avalanche's EWC and LwF examples with a ``CLIPClassifier`` and a contrastive strategy on an
``nc_benchmark`` (whose items carry task labels, which Avalanche's LwF reads). With GCL / GDRO,
EWC's importances are the squared gradients of the contrastive objective on each batch (the
strategy's ``_criterion``), LwF distils the seen classes' logits of the previous model (with
gradient; GCL / GDRO then train with ``train_logits="seen"``, logits and negatives over every seen
class), and SI is ``avalanche_clip.plugins.SynapticIntelligencePlugin`` (Avalanche's, with the
CPU weight snapshots it takes fixed).

    python examples/ewc_lwf.py --plugin ewc --strategy gdro --max-per-class 40
"""

from __future__ import annotations

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training.plugins import EvaluationPlugin, EWCPlugin, LwFPlugin
from common import arguments, clip_model, digit_datasets

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.plugins import SynapticIntelligencePlugin
from avalanche_clip.strategies import CLIPCrossEntropyStrategy, GCLStrategy, GDROStrategy

PLUGINS = {
    "ewc": lambda: EWCPlugin(ewc_lambda=100.0),
    "lwf": lambda: LwFPlugin(alpha=1.0, temperature=2.0),
    "si": lambda: SynapticIntelligencePlugin(si_lambda=1.0),
}
STRATEGIES = {"gcl": GCLStrategy, "gdro": GDROStrategy, "ce": CLIPCrossEntropyStrategy}


def main(argv: list[str] | None = None) -> dict[str, object]:
    def options(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--plugin", choices=sorted(PLUGINS), default="ewc")
        parser.add_argument("--strategy", choices=sorted(STRATEGIES), default="gdro")

    args = arguments(__doc__.splitlines()[0], argv, options)
    torch.manual_seed(args.seed)
    clip, transform, tokenizer = clip_model(args.model, args.pretrained)
    train, test, class_names = digit_datasets(transform, args.max_per_class)
    benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False, seed=args.seed)

    model = CLIPClassifier(clip, tokenizer, class_names, templates="digit")
    plugin = PLUGINS[args.plugin]()
    # LwF reads the seen classes' logits: GCL / GDRO compute them under train_logits="seen".
    seen = {"train_logits": "seen"} if args.plugin == "lwf" and args.strategy != "ce" else {}
    strategy = STRATEGIES[args.strategy](
        model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=args.lr),
        train_mb_size=args.batch_size, train_epochs=args.epochs, device=args.device, plugins=[plugin],
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                   loss_metrics(epoch=True, stream=True),
                                   forgetting_metrics(experience=True, stream=True)),
        **seen,
    )
    for t, experience in enumerate(benchmark.train_stream):
        strategy.train(experience)
        metrics = strategy.eval(benchmark.test_stream[: t + 1])
    return {"metrics": metrics, "plugin": plugin, "strategy": strategy}


if __name__ == "__main__":
    main()
