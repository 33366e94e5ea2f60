"""``make_optimizer`` before each experience: Avalanche's ``update_optimizer`` against ours.

    python benchmarks/bench_make_optimizer.py --calls 50

Avalanche calls ``make_optimizer`` at the start of every training experience; with the model
unchanged since the last call (every run of ours: no model grows), its ``update_optimizer``
still matches every named parameter against every parameter of the optimizer and builds a name
tree of the model. :func:`~avalanche_clip.training.optimizer_params.update_optimizer_params`
returns at once in that case. Timed on the default's model (``effnet-lite0-clip`` at 64 px,
projections trained, all 202 parameters in the optimizer as Avalanche puts them), one thread,
the two taking turns for ``--rounds`` rounds; prints the median ms per call of each.
"""

from __future__ import annotations

import torch
from avalanche.models.dynamic_optimizers import update_optimizer
from call_turns import call_arguments, default_model, median_ms_in_turns, print_medians

from avalanche_clip.training.optimizer_params import update_optimizer_params


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints and returns the median ms per call of Avalanche's update and of ours."""
    args = call_arguments(__doc__.split("\n\n")[0], calls=50).parse_args(argv)
    model = default_model(args)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    optimized = update_optimizer(optimizer, dict(model.named_parameters()), None)  # the first call
    medians = median_ms_in_turns({
        "Avalanche's update_optimizer (before)":
            lambda: update_optimizer(optimizer, dict(model.named_parameters()), optimized),
        "update_optimizer_params (now)":
            lambda: update_optimizer_params(optimizer, dict(model.named_parameters()), optimized),
    }, args)
    print(f"{sum(len(group['params']) for group in optimizer.param_groups)} parameters in the optimizer")
    print_medians("make_optimizer, model unchanged", medians)
    return medians


if __name__ == "__main__":
    main()
