"""GCL and GDRO with negatives over every seen class (``train_logits="seen"``, issue 22).

The image anchor also contrasts with ``extra_negatives``, the prompts of the seen classes absent
from the batch (one column each); the prompt anchor keeps the in-batch negatives. The
references below are written from the equations in the losses' docstrings, one row and one
negative at a time in float64 (plain ``exp`` sums and Python floats for the states), sharing no
code with ``avalanche_clip.losses``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.losses import GCLLoss, GDROLoss

D, K, N = 8, 7, 20
SEEN_ABSENT = [3, 4, 5]  # seen classes not in the batches below; class 6 is unseen
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _prompts(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(K, D, generator=g, dtype=torch.float64), dim=1).requires_grad_()


def _batch(ids, labels, seed: int):
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(len(ids), D, generator=g, dtype=torch.float64), dim=1)
    return image.requires_grad_(), torch.tensor(labels), torch.tensor(ids)


def _blend(old, new, gamma):
    return new if old is None else (1 - gamma) * old + gamma * new


def _e(h, tau):
    """exp(h/τ) of a live scalar, as a detached Python float (a reference weight)."""
    return math.exp(float(h.detach()) / tau)


def _f64(values):
    return torch.tensor(values, dtype=torch.float64)


def _dot(x, y):
    return (x * y).sum()


def gcl_reference(image, prompts, labels, extra_classes, negatives, tau, gamma, u, v):
    """One GCL step, row by row: returns the surrogate and updates the float states ``u``, ``v``
    (dicts by row position's id, filled by the caller's ids)."""
    b = len(labels)
    y = [int(t) for t in labels]
    rows, n_valid = [], 0
    for i in range(b):
        pos = _dot(image[i], prompts[y[i]])
        batch_negs = [j for j in range(b) if j != i and (negatives == "instance" or y[j] != y[i])]
        h1 = [_dot(image[i], prompts[y[j]]) - pos for j in batch_negs]
        h1 += [_dot(image[i], prompts[k]) - pos for k in extra_classes]  # one column per class
        h2 = [_dot(image[j], prompts[y[i]]) - pos for j in batch_negs]
        term = image.new_zeros(())
        if h1:
            g1 = sum(_e(h, tau) for h in h1) / len(h1)
            u[i] = _blend(u.get(i), g1, gamma)
            term = term + sum(_e(h, tau) / (len(h1) * u[i]) * h for h in h1)
        if h2:
            g2 = sum(_e(h, tau) for h in h2) / len(h2)
            v[i] = _blend(v.get(i), g2, gamma)
            term = term + sum(_e(h, tau) / (len(h2) * v[i]) * h for h in h2)
        n_valid += bool(h1 or h2)
        rows.append(term)
    return sum(rows) / n_valid


def gdro_reference(image, prompts, labels, extra_classes, tau, margin, lam, gamma, class_gamma,
                   u, v, z):
    """One GDRO step (classes present in the batch averaged, no inclusion weights)."""
    b = len(labels)
    y = [int(t) for t in labels]

    def hinge(d):
        return torch.clamp(margin - d, min=0.0) ** 2

    rows, est = [], []
    for i in range(b):
        pos = _dot(image[i], prompts[y[i]])
        others = [j for j in range(b) if y[j] != y[i]]
        a = [hinge(pos - _dot(image[i], prompts[y[j]])) for j in others]
        a += [hinge(pos - _dot(image[i], prompts[k])) for k in extra_classes]
        t = [hinge(pos - _dot(image[j], prompts[y[i]])) for j in others]
        u[i] = _blend(u.get(i), sum(_e(x, tau) for x in a) / len(a), gamma)
        v[i] = _blend(v.get(i), sum(_e(x, tau) for x in t) / len(t), gamma)
        rows.append(sum(_e(x, tau) / (len(a) * u[i]) * x for x in a)
                    + sum(_e(x, tau) / (len(t) * v[i]) * x for x in t))
        est.append(tau * (math.log(u[i]) + math.log(v[i])))
    classes = sorted(set(y))
    for k in classes:
        members = [i for i in range(b) if y[i] == k]
        z[k] = _blend(z.get(k), sum(est[i] for i in members) / len(members), class_gamma)
    norm = sum(math.exp(val / lam) for val in z.values())
    q = {k: len(z) * math.exp(val / lam) / norm for k, val in z.items()}
    loss = 0.0
    for k in classes:
        members = [i for i in range(b) if y[i] == k]
        loss = loss + q[k] * sum(rows[i] for i in members) / len(members) / len(classes)
    return loss


def _grads(value, leaves):
    return torch.autograd.grad(value, leaves, retain_graph=True)


# Two visits: ids 0..5 new, then ids 3..8 (3, 4, 5 seen before) with new image features.
STEPS = [([0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 1, 1]), ([3, 4, 5, 6, 7, 8], [0, 1, 1, 2, 2, 0])]


@pytest.mark.parametrize("gamma", [1.0, 0.6])
@pytest.mark.parametrize("negatives", ["instance", "class"])
def test_gcl_seen_matches_the_row_by_row_reference(negatives, gamma):
    tau = 0.3
    prompts = _prompts()
    gcl = GCLLoss(N, tau=tau, gamma=gamma, negatives=negatives).double()
    u_ref, v_ref = {}, {}
    for step, (ids, labels) in enumerate(STEPS):
        image, y, index = _batch(ids, labels, seed=10 + step)
        loss = gcl(image, prompts[y], y, index, extra_negatives=prompts[SEEN_ABSENT])
        u_rows, v_rows = {}, {}  # the reference's states by row, seeded from the id states
        for r, i in enumerate(ids):
            if i in u_ref:
                u_rows[r], v_rows[r] = u_ref[i], v_ref[i]
        want = gcl_reference(image, prompts, y, SEEN_ABSENT, negatives, tau, gamma, u_rows, v_rows)
        for r, i in enumerate(ids):
            u_ref[i], v_ref[i] = u_rows[r], v_rows[r]
        torch.testing.assert_close(loss, want, **TOL)
        for got, ref in zip(_grads(loss, (image, prompts)), _grads(want, (image, prompts)), strict=True):
            torch.testing.assert_close(got, ref, **TOL)
        grad_prompts = _grads(loss, (prompts,))[0]
        assert float(grad_prompts[SEEN_ABSENT].norm(dim=1).min()) > 0  # each absent class is pushed
        assert float(grad_prompts[6].abs().max()) == 0.0  # the unseen class is not a negative
        seen = sorted(u_ref)
        torch.testing.assert_close(gcl.log_u[seen].exp(), _f64([u_ref[i] for i in seen]), **TOL)
        torch.testing.assert_close(gcl.log_v[seen].exp(), _f64([v_ref[i] for i in seen]), **TOL)


@pytest.mark.parametrize("negatives", ["instance", "class"])
def test_gcl_seen_gradient_is_the_exact_objective_gradient_at_gamma_one(negatives):
    """γ = 1, the batch as the data set: ∇surrogate = ∇ of (1/|B|) Σ_i τ[log g₁(i) + log g₂(i)]
    with g₁ over N_i ∪ E, written with logsumexp."""
    tau = 0.2
    prompts = _prompts(1)
    image, y, index = _batch(*STEPS[0], seed=3)
    loss = GCLLoss(N, tau=tau, gamma=1.0, negatives=negatives).double()(
        image, prompts[y], y, index, extra_negatives=prompts[SEEN_ABSENT])
    s = image @ prompts.T  # s(i, k)
    terms = []
    for i in range(len(y)):
        js = [j for j in range(len(y)) if j != i and (negatives == "instance" or y[j] != y[i])]
        pos = s[i, y[i]]
        col1 = torch.cat([s[i, y[js]], s[i, SEEN_ABSENT]]) - pos
        col2 = (image[js] @ prompts[y[i]]) - pos
        terms.append(tau * (torch.logsumexp(col1 / tau, 0) - math.log(len(col1))
                            + torch.logsumexp(col2 / tau, 0) - math.log(len(col2))))
    exact = torch.stack(terms).mean()
    for got, ref in zip(_grads(loss, (image, prompts)), _grads(exact, (image, prompts)), strict=True):
        torch.testing.assert_close(got, ref, **TOL)


@pytest.mark.parametrize("make", [lambda: GCLLoss(N, tau=0.3, gamma=0.6),
                                  lambda: GCLLoss(N, tau=0.3, gamma=0.6, negatives="class"),
                                  lambda: GDROLoss(N, K, tau=0.4, margin=0.5, dro_lambda=0.7, gamma=0.6)])
def test_no_or_empty_extra_negatives_is_the_in_batch_loss_bit_for_bit(make):
    prompts = _prompts(2)
    losses = [make().double(), make().double(), make().double()]
    for step, (ids, labels) in enumerate(STEPS):
        image, y, index = _batch(ids, labels, seed=20 + step)
        values, grads = [], []
        for loss_fn, extra in zip(losses, ({}, {"extra_negatives": None},
                                           {"extra_negatives": prompts[:0]}), strict=True):
            value = loss_fn(image, prompts[y], y, index, **extra)
            values.append(value)
            grads.append(_grads(value, (image, prompts)))
        for value, grad in zip(values[1:], grads[1:], strict=True):
            assert torch.equal(value, values[0])
            assert all(torch.equal(g, g0) for g, g0 in zip(grad, grads[0], strict=True))
        for other in losses[1:]:
            for (name, buf), buf0 in zip(other.named_buffers(), losses[0].buffers(), strict=True):
                assert torch.equal(buf.nan_to_num(-7.0), buf0.nan_to_num(-7.0)), name


def test_gcl_seen_one_class_batch_with_class_negatives_learns_from_the_absent_prompts():
    """No in-batch negative under "class": the rows have a g₁ term over E only; v stays unset."""
    tau = 0.3
    prompts = _prompts(3)
    image, y, index = _batch([0, 1, 2, 3], [2, 2, 2, 2], seed=4)
    gcl = GCLLoss(N, tau=tau, gamma=0.5, negatives="class").double()
    assert float(gcl(image, prompts[y], y, index).detach()) == 0.0  # in-batch only: nothing to contrast
    loss = gcl(image, prompts[y], y, index, extra_negatives=prompts[SEEN_ABSENT])
    u_rows, v_rows = {}, {}
    want = gcl_reference(image, prompts, y, SEEN_ABSENT, "class", tau, 0.5, u_rows, v_rows)
    assert not v_rows
    torch.testing.assert_close(loss, want, **TOL)
    for got, ref in zip(_grads(loss, (image, prompts)), _grads(want, (image, prompts)), strict=True):
        torch.testing.assert_close(got, ref, **TOL)
    torch.testing.assert_close(gcl.log_u[:4].exp(), _f64([u_rows[r] for r in range(4)]), **TOL)
    assert torch.isnan(gcl.log_v).all()


@pytest.mark.parametrize("gamma, class_gamma", [(1.0, 1.0), (0.6, 0.3)])
def test_gdro_seen_matches_the_row_by_row_reference(gamma, class_gamma):
    tau, margin, lam = 0.4, 0.5, 0.7
    prompts = _prompts(4)
    gdro = GDROLoss(N, K, tau=tau, margin=margin, dro_lambda=lam, gamma=gamma,
                    class_gamma=class_gamma).double()
    u_ref, v_ref, z_ref = {}, {}, {}
    for step, (ids, labels) in enumerate(STEPS):
        image, y, index = _batch(ids, labels, seed=30 + step)
        loss = gdro(image, prompts[y], y, index, extra_negatives=prompts[SEEN_ABSENT])
        u_rows = {r: u_ref[i] for r, i in enumerate(ids) if i in u_ref}
        v_rows = {r: v_ref[i] for r, i in enumerate(ids) if i in v_ref}
        want = gdro_reference(image, prompts, y, SEEN_ABSENT, tau, margin, lam, gamma, class_gamma,
                              u_rows, v_rows, z_ref)
        for r, i in enumerate(ids):
            u_ref[i], v_ref[i] = u_rows[r], v_rows[r]
        torch.testing.assert_close(loss, want, **TOL)
        for got, ref in zip(_grads(loss, (image, prompts)), _grads(want, (image, prompts)), strict=True):
            torch.testing.assert_close(got, ref, **TOL)
        seen = sorted(u_ref)
        torch.testing.assert_close(gdro.log_u[seen].exp(), _f64([u_ref[i] for i in seen]), **TOL)
        torch.testing.assert_close(gdro.log_v[seen].exp(), _f64([v_ref[i] for i in seen]), **TOL)
        z = torch.full((K,), math.nan, dtype=torch.float64)
        for k, val in z_ref.items():
            z[k] = val
        torch.testing.assert_close(gdro.class_loss, z, equal_nan=True, **TOL)
    # The extra columns moved the estimates: without them the same batch gives another u.
    plain = GDROLoss(N, K, tau=tau, margin=margin, dro_lambda=lam).double()
    plain(image, prompts[y], y, index)
    assert not torch.allclose(plain.log_u[index], gdro.log_u[index])


def test_gdro_one_class_batch_takes_the_absent_prompts_as_its_negatives():
    """A one-class batch under "seen": the one-class term over C' = E, no state written; the
    same as the in-batch setting's class_prompts (the seen classes, the batch's dropped)."""
    tau, margin = 0.4, 0.5
    prompts = _prompts(5)
    image, y, index = _batch([0, 1, 2], [4, 4, 4], seed=6)
    seen = torch.tensor([0, 1, 4, 5])
    gdro = GDROLoss(N, K, tau=tau, margin=margin).double()
    with_extra = gdro(image, prompts[y], y, index, extra_negatives=prompts[[0, 1, 5]])
    with_classes = gdro(image, prompts[y], y, index, class_prompts=(prompts[seen], seen))
    assert all(torch.isnan(b).all() for b in gdro.buffers())
    torch.testing.assert_close(with_extra, with_classes, rtol=0, atol=0)

    def hinge(d):
        return torch.clamp(margin - d, min=0.0) ** 2

    rows = []
    for i in range(3):
        a = [hinge(_dot(image[i], prompts[4]) - _dot(image[i], prompts[k])) for k in (0, 1, 5)]
        exps = [_e(x, tau) for x in a]
        rows.append(sum(e / sum(exps) * x for e, x in zip(exps, a, strict=True)))
    want = sum(rows) / 3
    torch.testing.assert_close(with_extra, want, **TOL)
    for got, ref in zip(_grads(with_extra, (image, prompts)), _grads(want, (image, prompts)), strict=True):
        torch.testing.assert_close(got, ref, **TOL)


@pytest.mark.parametrize("make", [lambda: GCLLoss(N), lambda: GDROLoss(N, K)])
def test_extra_negatives_of_the_wrong_width_are_refused(make):
    prompts = _prompts()
    image, y, index = _batch(*STEPS[0], seed=1)
    with pytest.raises(ValueError, match=r"extra_negatives must be \[E, 8\] prompt embeddings, got shape \(3, 5\)"):
        make().double()(image, prompts[y], y, index, extra_negatives=prompts[:3, :5])
