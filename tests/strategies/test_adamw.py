"""ZeroSafeAdamW equals torch's AdamW bit for bit (values and state) and skips sqrt of zeros."""

from __future__ import annotations

import copy

import pytest
import torch

from avalanche_clip.training.adamw import ZeroSafeAdamW, _below_half_ulp_of_eps


def _params(dtype=torch.float32, dead=5):
    """Two trained matrices (the first ``dead`` input columns of the first never get a
    gradient, as dead features do), a bias, a frozen parameter without a gradient, and weights
    near 1e-10 whose gradients (~1e-20) square below the smallest normal number: v ≈ 0 but m ≠ 0,
    where the denominator decides the step."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype))
              for shape in [(6, 12), (4, 6), (6,), (3, 3), (8,)]]
    params[4].data.mul_(1e-10)
    return params, generator, dead


def _train(make, steps=40, dtype=torch.float32, flush=True, closure=False):
    params, generator, dead = _params(dtype)
    optimizer = make(params)
    previous = torch.is_denormal_flushed() if hasattr(torch, "is_denormal_flushed") else None
    torch.set_flush_denormal(flush)
    try:
        for step in range(steps):
            for i, param in enumerate(params[:3]):
                scale = 10.0 ** -(step % 7) if i == 1 else 1.0  # gradients down to 1e-6
                param.grad = scale * torch.randn(param.shape, generator=generator, dtype=dtype)
            params[0].grad[:, :dead] = 0.0
            params[4].grad = 1e-20 * torch.randn(params[4].shape, generator=generator, dtype=dtype)
            if step % 9 == 4:
                params[2].grad = None  # a step without this parameter's gradient
            optimizer.step((lambda: 1.0) if closure else None)
    finally:
        torch.set_flush_denormal(bool(previous) if previous is not None else False)
    return [p.detach().clone() for p in params], optimizer


def _groups(cls, **options):
    def make(params):
        return cls([{"params": params[:2]}, {"params": params[2:], "lr": 3e-2, "weight_decay": 0.0}],
                   lr=1e-3, weight_decay=0.01, **options)
    return make


def _assert_same(ours, reference):
    (values, optimizer), (ref_values, ref_optimizer) = ours, reference
    assert all(_identical(a, b) for a, b in zip(values, ref_values, strict=True))
    state, ref_state = optimizer.state_dict(), ref_optimizer.state_dict()
    assert state["param_groups"] == ref_state["param_groups"]
    for key, entry in ref_state["state"].items():
        assert set(state["state"][key]) == set(entry)
        assert all(_identical(state["state"][key][name], value) for name, value in entry.items())


def _identical(a, b):
    """Equal bit for bit, NaN where the other is NaN (fp16's eps underflows to 0: 0/0)."""
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        ((a == b) | (a.isnan() & b.isnan())).all())


@pytest.mark.parametrize("flush", [True, False], ids=["denormals-flushed", "denormals-kept"])
def test_equals_torch_foreach_adamw_bit_for_bit(flush):
    """Against the foreach step the shared optimizer took before (torch's per-tensor loop can
    round differently from its own foreach step under the pinned AVX2 kernels)."""
    ours = _train(_groups(ZeroSafeAdamW, foreach=True), flush=flush)
    _assert_same(ours, _train(_groups(torch.optim.AdamW, foreach=True), flush=flush))


def test_dead_weights_keep_a_zero_state_and_only_decay():
    (values, optimizer) = _train(_groups(ZeroSafeAdamW, foreach=True), steps=10)
    first = optimizer.param_groups[0]["params"][0]
    state = optimizer.state[first]
    assert torch.count_nonzero(state["exp_avg_sq"][:, :5]) == 0
    start, _, _ = _params()
    torch.testing.assert_close(values[0][:, :5], start[0].detach()[:, :5] * (1 - 1e-3 * 0.01) ** 10,
                               rtol=1e-6, atol=0)


def test_checkpoint_state_loads_into_torch_adamw_and_continues_identically():
    params, _, _ = _params()
    ours = ZeroSafeAdamW(params, lr=1e-3, foreach=True)
    for param in params:
        param.grad = torch.ones_like(param)
    ours.step()
    twin = [copy.deepcopy(p) for p in params]
    for a, b in zip(twin, params, strict=True):
        a.grad = b.grad.clone()
    reference = torch.optim.AdamW(twin, lr=1e-3, foreach=True)
    reference.load_state_dict(ours.state_dict())
    ours.step()
    reference.step()
    assert all(_identical(a, b) for a, b in zip(params, twin, strict=True))


@pytest.mark.parametrize("options", [{"amsgrad": True}, {"maximize": True}, {"foreach": False}])
def test_other_settings_run_torch_own_step(options):
    _assert_same(_train(_groups(ZeroSafeAdamW, **options)), _train(_groups(torch.optim.AdamW, **options)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_other_dtypes(dtype):
    """fp64 and bf16 take the maximum (their smallest normal is tiny); fp16 fails the exactness
    condition and takes sqrt(v), as torch does (and, like torch, divides 0 by 0 there)."""
    _assert_same(_train(_groups(ZeroSafeAdamW, foreach=True), dtype=dtype, steps=15),
                 _train(_groups(torch.optim.AdamW, foreach=True), dtype=dtype, steps=15))


def test_the_exactness_condition():
    tiny = torch.finfo(torch.float32).tiny
    assert _below_half_ulp_of_eps(tiny, (1 - 0.999) ** 0.5, 1e-8, torch.float32)
    # a tiny eps, or fp16's large smallest normal, fails it: the step then takes sqrt(v)
    assert not _below_half_ulp_of_eps(tiny, (1 - 0.999) ** 0.5, 1e-30, torch.float32)
    assert not _below_half_ulp_of_eps(torch.finfo(torch.float16).tiny, 0.0316, 1e-8, torch.float16)


def test_closure_is_called_with_gradients_enabled():
    params, _, _ = _params()
    optimizer = ZeroSafeAdamW(params, lr=1e-3, foreach=True)
    seen = []

    def closure():
        seen.append(torch.is_grad_enabled())
        for param in params:
            param.grad = torch.ones_like(param)
        return 2.5

    assert optimizer.step(closure) == 2.5 and seen == [True]
