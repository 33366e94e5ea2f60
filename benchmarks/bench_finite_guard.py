"""The divergence check after each epoch: the plugin against a walk of every parameter.

    python benchmarks/bench_finite_guard.py --calls 300

:class:`~avalanche_clip.training.plugins.finite_guard.FiniteGuardPlugin` checks the trainable
weights after every training epoch. The baseline is how it did it before: walk the model's
``named_parameters`` and build an ``isfinite`` mask of each trainable one. Timed on the default's
model (``effnet-lite0-clip`` at 64 px, projections trained: 2 of 202 parameters), one thread,
the two taking turns for ``--rounds`` rounds; prints the median ms per call of each.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from call_turns import call_arguments, default_model, median_ms_in_turns, print_medians

from avalanche_clip.training.plugins.finite_guard import FiniteGuardPlugin


def walk_every_parameter(model: torch.nn.Module) -> list[str]:
    """The baseline: the names of the non-finite trainable weights, by a full walk."""
    return [name for name, p in model.named_parameters()
            if p.requires_grad and not bool(torch.isfinite(p.detach()).all())]


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints and returns the median ms per call of the baseline and of the plugin."""
    args = call_arguments(__doc__.split("\n\n")[0], calls=300).parse_args(argv)
    model = default_model(args)
    strategy = SimpleNamespace(model=model)
    guard = FiniteGuardPlugin()
    guard.before_training_exp(strategy)  # lists the trainable weights, once an experience
    medians = median_ms_in_turns({"walk every parameter (before)": lambda: walk_every_parameter(model),
                                  "FiniteGuardPlugin (now)": lambda: guard.after_training_epoch(strategy)}, args)
    print_medians("check after an epoch", medians)
    return medians


if __name__ == "__main__":
    main()
