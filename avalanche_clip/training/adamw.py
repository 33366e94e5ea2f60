"""AdamW whose step avoids torch's slow square root of exact zeros, equal to torch's bit for bit.

Torch's AdamW step (``foreach``, decoupled weight decay ``λ``, step ``t``) is

    p ← p·(1 − lr·λ);   m ← m + (1 − β₁)·(g − m);   v ← β₂·v + (1 − β₂)·g²
    p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

On CPU, ``sqrt`` of an exact zero takes a slow path (~6x a positive number's here): a weight
that never gets a gradient (an input feature that is 0 for every image, as ~40 % of the default
comparison's image-projection inputs are) keeps ``v = 0``, and its square root is taken every
step (``benchmarks/bench_optimizer.py``). :class:`ZeroSafeAdamW` takes ``√max(v, t)`` instead,
``t`` the dtype's smallest normal number, and is exact: for every ``v < t`` (0, or a denormal),
``√v / √(1 − β₂ᵗ)`` and ``√t / √(1 − β₂ᵗ)`` are both below half a unit in the last place of
``ε``, so ``… + ε`` rounds to ``ε`` either way, and for ``v ≥ t`` nothing changes. The step checks
that condition in the parameters' dtype (the first step, where ``√(1 − β₂ᵗ)`` is smallest, is the
hardest case) and takes ``√v`` where it fails (fp16, a tiny ``ε``). The state (``step``,
``exp_avg``, ``exp_avg_sq``) is torch's own, so checkpoints load in either class.

Other settings (AMSGrad, ``maximize``, ``capturable``, ``fused``, the per-tensor loop, complex or
tensor-valued hyper-parameters) run torch's own step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["ZeroSafeAdamW"]


class ZeroSafeAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` (same arguments, state and values) with the ``foreach`` step
    described in the module docstring."""

    def _takes_own_step(self, group: dict[str, Any]) -> bool:
        plain = (group["foreach"] and not group["fused"] and not group["capturable"]
                 and not group["differentiable"] and not group["amsgrad"] and not group["maximize"])
        scalars = not any(isinstance(v, Tensor) for v in (group["lr"], *group["betas"]))
        return plain and scalars and not any(torch.is_complex(p) for p in group["params"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        if not all(self._takes_own_step(group) for group in self.param_groups):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            exp_avg_sqs: list[Tensor] = []
            steps: list[Tensor] = []
            # torch's own lazy state initialisation: the state is exactly AdamW's
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, [], steps)
            by_kind: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
            for i, param in enumerate(params):
                by_kind[(param.device, param.dtype)].append(i)
            for (_, dtype), rows in by_kind.items():
                _foreach_adamw_step([params[i] for i in rows], [grads[i] for i in rows],
                                    [exp_avgs[i] for i in rows], [exp_avg_sqs[i] for i in rows],
                                    [steps[i] for i in rows], dtype=dtype, lr=group["lr"],
                                    betas=group["betas"], weight_decay=group["weight_decay"],
                                    eps=group["eps"])
        return loss


def _foreach_adamw_step(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                        exp_avg_sqs: list[Tensor], steps: list[Tensor], *, dtype: torch.dtype,
                        lr: float, betas: tuple[float, float], weight_decay: float,
                        eps: float) -> None:
    """One AdamW step over tensors of one device and dtype, in torch's order of operations."""
    beta1, beta2 = betas
    torch._foreach_add_(steps, torch.tensor(1.0, device="cpu"), alpha=1.0)  # steps live on the CPU
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    counts = [step.item() for step in steps]
    step_size = [(lr / (1 - beta1 ** t)) * -1 for t in counts]
    correction2_sqrt = [(1 - beta2 ** t) ** 0.5 for t in counts]
    tiny = torch.finfo(dtype).tiny
    if _below_half_ulp_of_eps(tiny, min(correction2_sqrt), eps, dtype):
        denominator = torch._foreach_maximum(exp_avg_sqs, tiny)
        torch._foreach_sqrt_(denominator)
    else:
        denominator = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denominator, correction2_sqrt)
    torch._foreach_add_(denominator, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denominator, step_size)


def _below_half_ulp_of_eps(tiny: float, correction2_sqrt: float, eps: float, dtype: torch.dtype) -> bool:
    """Whether ``√tiny / correction2_sqrt + ε == ε`` in ``dtype``, computed as the step computes
    it: then every ``v ≤ tiny`` gives the denominator ``ε`` with ``√v`` or with ``√tiny``."""
    term = torch.tensor(tiny, dtype=dtype).sqrt() / correction2_sqrt
    return bool(term + eps == torch.tensor(eps, dtype=dtype))
