"""Avalanche's ``update_optimizer`` without its cost when nothing changed.

Avalanche calls ``make_optimizer`` before every training experience (and after each checkpoint
restore); its ``update_optimizer`` matches each named parameter against every parameter of every
group (``O(n²)`` Python comparisons) and builds a name tree of the model to place new ones:
3.5 ms a call for the 202 parameters of the default's model, 0.6 ms here, 5–6 calls a run
(``benchmarks/bench_make_optimizer.py``). In a run whose model does not grow the call changes nothing
but the optimizer state (when ``reset_state``), so :func:`update_optimizer_params` returns at once
in exactly that case and hands every other one to Avalanche.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import torch
from avalanche.models.dynamic_optimizers import update_optimizer

__all__ = ["update_optimizer_params", "unchanged_parameters"]


def unchanged_parameters(optimizer: torch.optim.Optimizer, params: Mapping[str, torch.Tensor],
                         optimized: Mapping[str, torch.Tensor] | None) -> bool:
    """True iff Avalanche's ``update_optimizer(optimizer, params, optimized, ...)`` would find
    nothing to change: ``optimized`` names the same tensors as ``params`` (no parameter replaced,
    added or removed since the last call) and the optimizer's groups hold exactly those tensors,
    each once (none new to place, none to remove)."""
    if optimized is None or len(optimized) != len(params):
        return False
    if any(optimized.get(name) is not param for name, param in params.items()):
        return False
    held = [id(p) for group in optimizer.param_groups for p in group["params"]]
    wanted = {id(p) for p in params.values()}
    return len(held) == len(set(held)) == len(wanted) and set(held) == wanted


def update_optimizer_params(optimizer: torch.optim.Optimizer, params: dict[str, torch.Tensor],
                            optimized: dict[str, torch.Tensor] | None, *, reset_state: bool = False,
                            remove_params: bool = False, verbose: bool = False) -> dict[str, torch.Tensor]:
    """Avalanche's ``update_optimizer`` (same arguments, same effect and return value), skipping
    its matching when :func:`unchanged_parameters` holds (and nothing is to be printed): then its
    only effect is the state reset, and it returns ``params``."""
    if not verbose and unchanged_parameters(optimizer, params, optimized):
        if reset_state:
            optimizer.state = defaultdict(dict)
        return params
    return update_optimizer(optimizer, params, optimized, reset_state=reset_state,
                            remove_params=remove_params, verbose=verbose)
