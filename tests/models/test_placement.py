"""One walk for a tree's placement and adaptability: the same modules, tensors and answers as the
walks it replaces (``nn.Module.modules``, ``CLIPClassifier.to``'s device check, Avalanche's
search for ``DynamicModule``s)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from avalanche_clip.models.placement import modules_once, own_tensors_on, tree_placement

CPU, META = torch.device("cpu"), torch.device("meta")


class Marked(nn.Module):
    """Stands for an adapted type (Avalanche's DynamicModule in use)."""


def _random_tree(rng: random.Random, n_modules: int = 30) -> nn.Module:
    """A tree with leaves that hold parameters and buffers (some on the meta device, some
    frozen, some with gradients), shared submodules, ``None`` children and marked modules."""
    pool: list[nn.Module] = []
    for k in range(n_modules):
        kind = rng.choice(["linear", "norm", "container", "marked"])
        device = META if rng.random() < 0.1 else CPU
        if kind == "linear":
            module: nn.Module = nn.Linear(3, 2, bias=rng.random() < 0.5, device=device)
            if rng.random() < 0.3 and device == CPU:
                module.weight.grad = torch.zeros_like(module.weight)
        elif kind == "norm":
            module = nn.BatchNorm1d(2, device=device)
        else:
            module = Marked() if kind == "marked" else nn.Module()
            for j in range(rng.randint(0, 3)):
                child = rng.choice(pool) if pool and rng.random() < 0.8 else None  # shared or None
                module.add_module(f"c{k}_{j}", child)
        pool.append(module)
    root = nn.Module()
    for j, module in enumerate(rng.sample(pool, k=min(6, len(pool)))):
        root.add_module(f"top{j}", module)
    return root


def _reference_all_on(root: nn.Module, device: torch.device) -> bool:
    tensors = [*root.parameters(), *root.buffers(), *(p.grad for p in root.parameters() if p.grad is not None)]
    return all(t.device == device for t in tensors)


@pytest.mark.parametrize("seed", range(40))
def test_the_walk_matches_torchs_and_avalanches_walks(seed):
    root = _random_tree(random.Random(seed))
    walked = list(modules_once(root))
    assert walked[0] is root
    assert len(walked) == len({id(m) for m in walked})  # each module once
    assert {id(m) for m in walked} == {id(m) for m in root.modules()}
    placement = tree_placement(root, CPU, Marked)
    assert placement.all_on == _reference_all_on(root, CPU)
    assert placement.adapted == any(isinstance(m, Marked) for m in root.modules())
    assert all(own_tensors_on(m, CPU) for m in modules_once(root)) == placement.all_on


def test_every_kind_of_tensor_counts():
    layer = nn.Linear(3, 2)
    assert own_tensors_on(layer, CPU) and not own_tensors_on(layer, META)
    norm = nn.BatchNorm1d(2)
    norm.running_mean = torch.zeros(2, device="meta")  # a buffer elsewhere
    assert not own_tensors_on(norm, CPU)
    meta_layer = nn.Linear(3, 2, device="meta")
    meta_layer.weight.grad = torch.zeros(2, 3, device="meta")
    assert own_tensors_on(meta_layer, META)
    # a parameter elsewhere deep in a tree; nothing adapted
    tree = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.Sequential(nn.Linear(2, 2, device="meta")))
    assert tree_placement(tree, CPU, Marked) == (False, False)
    tree.append(Marked())
    assert tree_placement(tree, CPU, Marked) == (False, True)  # the walk goes on past a moved tensor
