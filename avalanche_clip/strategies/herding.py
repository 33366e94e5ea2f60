"""iCaRL's herding: which samples of a class to keep, best first.

For a class with normalised features ``d_1 … d_n`` (``D = [d_1 … d_n]``, ``[F, n]``, each column
``d_i = φ(x_i)/‖φ(x_i)‖``) and their mean ``μ = (1/n) Σ_i d_i``, herding (Rebuffi et al., CVPR
2017, Alg. 4) picks the samples whose running mean stays closest to ``μ``. The update of iCaRL's
reference code, which Avalanche's ``_ICaRLPlugin.construct_exemplar_set`` implements, keeps a
residual ``w`` instead of the running mean:

    w_0 = μ
    i_k = argmax_i  w_k · d_i                        (first index on ties)
    w_{k+1} = w_k + μ − d_{i_k}

``i_k`` is added to the exemplars if it is not in them yet (a repeat is skipped, but ``w`` still
moves), until ``count`` samples are chosen or 1000 iterations have run (the cap of the reference
code; a class with fewer than ``count`` samples keeps those herding reached). The rank of a
chosen sample is its position in that order (1 = chosen first); a memory that shrinks keeps each
class's lowest ranks.

:func:`herding_ranks` does these operations in the order and with the tensor operations of
Avalanche's loop, so the exemplars, and iCaRL's records, are the ones Avalanche would choose
(``tests/strategies/test_icarl_scoring.py`` compares the two); it returns ranks by position
instead of the chosen patterns, so the caller knows which samples, hence which global ids, the
exemplars are.
"""

from __future__ import annotations

import torch

#: The reference code's cap on herding iterations.
MAX_HERDING_ITERATIONS = 1000


def herding_ranks(features: torch.Tensor, count: int) -> torch.Tensor:
    """Herding ranks of a class's samples (module docstring).

    Args:
        features: ``[n, F]`` features ``φ(x_i)`` of the class's samples (normalised here).
        count: how many samples to choose (>= 0).

    Returns:
        ``[n]`` float ranks: ``k`` for the ``k``-th sample chosen, 0 for samples not chosen
        (float, as Avalanche keeps them in ``_ICaRLPlugin.order``).
    """
    if features.dim() != 2:
        raise ValueError(f"features must be [n, F], got shape {tuple(features.shape)}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if features.shape[0] == 0:
        return torch.zeros(0)
    columns = features.T
    columns = columns / torch.norm(columns, dim=0)  # [F, n]: each sample's feature, unit norm
    mean = torch.mean(columns, dim=1)
    ranks = torch.zeros(columns.shape[1])
    residual, chosen = mean, 0
    for _ in range(MAX_HERDING_ITERATIONS):
        if chosen == count:
            break
        best = int(torch.argmax(torch.mm(residual.unsqueeze(0), columns)))
        if ranks[best] == 0:
            chosen += 1
            ranks[best] = chosen
        residual = residual + mean - columns[:, best]
    return ranks
