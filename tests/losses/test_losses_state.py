"""Checkpointing, dtype / device moves, eval mode, and input validation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.losses import GCLLoss, GDROLoss

N, C = 20, 4
MAKERS = {
    "gcl": lambda: GCLLoss(N, tau=0.1, gamma=0.5),
    "gcl-class": lambda: GCLLoss(N, tau=0.1, gamma=0.5, negatives="class"),
    "gdro": lambda: GDROLoss(N, C, tau=0.3, margin=0.5, dro_lambda=0.5, gamma=0.5,
                             class_gamma=0.5),
}
BUFFERS = {"gcl": {"log_u", "log_v"}, "gcl-class": {"log_u", "log_v"},
           "gdro": {"log_u", "log_v", "class_loss"}}


def _batch(seed: int, ids, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(len(ids), 8, generator=g, dtype=dtype), dim=1)
    prompts = F.normalize(torch.randn(C, 8, generator=g, dtype=dtype), dim=1)
    labels = torch.arange(len(ids)) % C
    return image.requires_grad_(), prompts[labels], labels, torch.as_tensor(ids)


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype
        torch.testing.assert_close(a[k], b[k], equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip(name):
    trained = MAKERS[name]()
    trained(*_batch(0, range(0, 8)))
    trained(*_batch(1, range(4, 12)))
    state = _snapshot(trained)
    assert set(state) == BUFFERS[name]
    assert all(v.shape == ((C,) if k == "class_loss" else (N,)) for k, v in state.items())
    assert any(torch.isfinite(v).any() for v in state.values())

    restored = MAKERS[name]()
    restored.load_state_dict(state)
    _assert_same_state(_snapshot(restored), state)
    # Both continue identically (the state is the whole story).
    nxt_a, nxt_b = _batch(2, [3, 15, 9, 0, 11, 19]), _batch(2, [3, 15, 9, 0, 11, 19])
    la, lb = trained(*nxt_a), restored(*nxt_b)
    assert la.item() == lb.item()
    la.backward()
    lb.backward()
    assert torch.equal(nxt_a[0].grad, nxt_b[0].grad)
    _assert_same_state(_snapshot(trained), _snapshot(restored))
    # And a fresh module would not have continued identically (the check can fail).
    assert MAKERS[name]()(*_batch(2, [3, 15, 9, 0, 11, 19])).item() != la.item()


@pytest.mark.parametrize("name", list(MAKERS))
def test_double_gives_float64_state_and_math(name):
    module = MAKERS[name]().double()
    assert all(b.dtype == torch.float64 for b in module.buffers())
    loss = module(*_batch(0, range(8), dtype=torch.float64))
    assert loss.dtype == torch.float64
    # float32 inputs compute in float32 but leave the state float64.
    loss = module(*_batch(1, range(4, 12)))
    assert loss.dtype == torch.float32
    assert all(b.dtype == torch.float64 for b in module.buffers())
    # Stored values are the float64 estimates, not float32-rounded ones.
    ref32 = MAKERS[name]()
    ref32(*_batch(0, range(8), dtype=torch.float64))
    assert not torch.equal(module.log_u[:4], ref32.log_u[:4].double())


@pytest.mark.parametrize("name", list(MAKERS))
def test_to_device_moves_buffers(name):
    module = MAKERS[name]().to(torch.device("cpu"), torch.float64)
    assert all(b.device.type == "cpu" and b.dtype == torch.float64 for b in module.buffers())
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: checked the CPU move only")
    module = module.to("cuda")
    assert all(b.is_cuda for b in module.buffers())
    image, text, labels, ids = _batch(0, range(8), dtype=torch.float64)
    loss = module(image.detach().cuda().requires_grad_(), text.cuda(), labels, ids)
    assert loss.is_cuda and torch.isfinite(loss)


@pytest.mark.parametrize("name", list(MAKERS))
def test_eval_mode_never_touches_state(name):
    module = MAKERS[name]()
    module(*_batch(0, range(0, 8)))
    before = _snapshot(module)
    twin = copy.deepcopy(module)  # stays in training mode

    module.eval()
    batch = [3, 15, 9, 0, 11, 19]  # seen and unseen ids
    got = module(*_batch(1, batch))
    _assert_same_state(_snapshot(module), before)
    module.forget([])  # no-op
    # Eval returns exactly what training would return on this batch.
    want = twin(*_batch(1, batch))
    assert got.item() == want.item()
    changed = _snapshot(twin)
    assert not torch.equal(changed["log_u"].nan_to_num(-1), before["log_u"].nan_to_num(-1))


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("bad", [N, -1, N + 7])
def test_out_of_range_id_is_value_error_before_any_change(name, bad):
    module = MAKERS[name]()
    module(*_batch(0, range(0, 8)))
    before = _snapshot(module)
    image, text, labels, _ = _batch(1, range(6))
    ids = torch.tensor([9, 10, 11, bad, 12, 13])  # valid ids first: nothing may be written
    with pytest.raises(ValueError, match=rf"sample id {bad}\b"):
        module(image, text, labels, ids)
    with pytest.raises(ValueError, match=rf"sample id {bad}\b"):
        module.forget([1, bad])
    with pytest.raises(ValueError, match=rf"sample id {bad}\b"):
        module.sample_objective([bad])
    _assert_same_state(_snapshot(module), before)


@pytest.mark.parametrize("bad", [C, -1])
def test_out_of_range_label_is_value_error_before_any_change(bad):
    module = MAKERS["gdro"]()
    module(*_batch(0, range(0, 8)))
    before = _snapshot(module)
    image, text, labels, ids = _batch(1, range(8, 14))
    labels = labels.clone()
    labels[-1] = bad
    with pytest.raises(ValueError, match=rf"label {bad}\b"):
        module(image, text, labels, ids)
    _assert_same_state(_snapshot(module), before)


@pytest.mark.parametrize("name", list(MAKERS))
def test_duplicate_ids_and_bad_shapes_are_rejected(name):
    module = MAKERS[name]()
    image, text, labels, _ = _batch(0, range(4))
    with pytest.raises(ValueError, match="sample id 2 occurs more than once"):
        module(image, text, labels, torch.tensor([0, 2, 5, 2]))
    with pytest.raises(ValueError, match="shape"):
        module(image, text[:3], labels, torch.arange(4))
    with pytest.raises(ValueError, match="index must have shape"):
        module(image, text, labels, torch.arange(3))
    with pytest.raises(TypeError, match="integer"):
        module(image, text, labels, torch.arange(4.0))
    assert all(torch.isnan(b).all() for b in module.buffers())


@pytest.mark.parametrize("kwargs, match", [
    ({"num_samples": 0}, "num_samples must be an integer >= 1, got 0"),
    ({"num_samples": 2.5}, "num_samples must be an integer >= 1, got 2.5"),
    ({"tau": 0.0}, r"tau must be in \(0.0, inf\), got 0.0"),
    ({"tau": -1}, r"tau must be in \(0.0, inf\), got -1"),
    ({"tau": math.nan}, r"tau must be in \(0.0, inf\), got nan"),
    ({"gamma": 0.0}, r"gamma must be in \(0.0, 1.0\], got 0.0"),
    ({"gamma": 1.5}, r"gamma must be in \(0.0, 1.0\], got 1.5"),
    ({"negatives": "all"}, r"negatives must be one of \('instance', 'class'\), got 'all'"),
])
def test_gcl_hyperparameters_are_validated(kwargs, match):
    args = {"num_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        GCLLoss(**args)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
    ({"margin": -0.1}, r"margin must be in \[0.0, inf\), got -0.1"),
    ({"dro_lambda": 0}, r"dro_lambda must be in \(0.0, inf\), got 0"),
    ({"class_gamma": 0}, r"class_gamma must be in \(0.0, 1.0\], got 0"),
    ({"class_gamma": 1.01}, r"class_gamma must be in \(0.0, 1.0\], got 1.01"),
    ({"gamma": -0.5}, r"gamma must be in \(0.0, 1.0\], got -0.5"),
    ({"tau": math.inf}, r"tau must be in \(0.0, inf\), got inf"),
])
def test_gdro_hyperparameters_are_validated(kwargs, match):
    args = {"num_samples": 10, "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        GDROLoss(**args)


def test_boundary_hyperparameters_are_accepted():
    GCLLoss(1, tau=1e-6, gamma=1.0)
    GDROLoss(1, 1, margin=0.0, gamma=1.0, class_gamma=1.0, dro_lambda=1e-9)


def test_monitoring_helpers_before_any_step():
    gcl, gdro = GCLLoss(5), GDROLoss(5, 3)
    assert torch.isnan(gcl.objective()) and torch.isnan(gdro.objective())
    assert torch.isnan(gcl.sample_objective()).all() and gcl.sample_objective().shape == (5,)
    assert torch.isnan(gdro.class_weights()).all() and gdro.class_weights().shape == (3,)
