"""EWC's penalty at each step: Avalanche's ``before_backward`` against ours (terms listed once).

    python benchmarks/bench_ewc_penalty.py --calls 100

Avalanche's ``EWCPlugin.before_backward`` walks ``model.named_parameters()`` once per past
experience at every step to find the parameters that have an anchor;
:class:`~avalanche_clip.training.plugins.ewc.TrainableEWCPlugin` lists those terms once an
experience and sums them with the same operations. Timed on the default's model
(``effnet-lite0-clip`` at 64 px, projections trained) with anchors and importances of the trained
parameters for ``--past`` experiences (the last experience of a 5-experience run: 4), one
thread, the two taking turns for ``--rounds`` rounds; prints the median ms per call and whether
the two penalties are equal bit for bit.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from avalanche.training.plugins import EWCPlugin
from avalanche.training.utils import ParamData
from call_turns import call_arguments, default_model, median_ms_in_turns, print_medians

from avalanche_clip.training.plugins.ewc import TrainableEWCPlugin


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Prints and returns the median ms per call of Avalanche's penalty and of ours."""
    parser = call_arguments(__doc__.split("\n\n")[0], calls=100)
    parser.add_argument("--past", type=int, default=4, help="past experiences with anchors")
    args = parser.parse_args(argv)
    model = default_model(args)
    torch.manual_seed(0)
    plugin = TrainableEWCPlugin(ewc_lambda=1.0)
    for t in range(args.past):
        for name, p in model.named_parameters():
            if p.requires_grad:
                plugin.saved_params[t][name] = ParamData(name, p.shape, init_tensor=p.detach() + 0.01 * torch.randn_like(p))
                plugin.importances[t][name] = ParamData(name, p.shape, init_tensor=torch.rand_like(p))
    strategy = SimpleNamespace(model=model, device=torch.device("cpu"), loss=torch.zeros(()),
                               clock=SimpleNamespace(train_exp_counter=args.past))
    penalties: dict[str, torch.Tensor] = {}

    def penalty(add) -> None:  # type: ignore[no-untyped-def]
        strategy.loss = torch.zeros(())
        add(plugin, strategy)
        penalties[add.__qualname__] = strategy.loss.detach()

    with torch.no_grad():
        medians = median_ms_in_turns({
            "Avalanche's before_backward (before)": lambda: penalty(EWCPlugin.before_backward),
            "TrainableEWCPlugin (now)": lambda: penalty(TrainableEWCPlugin.before_backward)}, args)
    equal = torch.equal(*penalties.values())
    print(f"{args.past} past experiences; penalties equal bit for bit: {equal}")
    print_medians("EWC penalty, one step", medians)
    return {**medians, "equal": float(equal)}


if __name__ == "__main__":
    main()
