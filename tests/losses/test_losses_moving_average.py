"""Moving-average semantics over several steps with mixed new / seen ids."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.losses import GCLLoss, GDROLoss

N, K, D = 24, 5, 8
# Overlapping id sets: every step after the first mixes new and seen ids.
STEPS = [list(range(0, 8)), list(range(4, 12)), [0, 2, 12, 13, 9, 18, 5, 1],
         [19, 3, 12, 7, 20, 0]]
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _step_data(step: int, ids, sample_labels, prompts):
    """Fresh image features per step (the model moves), fixed labels per id."""
    g = torch.Generator().manual_seed(100 + step)
    image = F.normalize(torch.randn(len(ids), D, generator=g, dtype=torch.float64), dim=1)
    image.requires_grad_()
    labels = sample_labels[torch.tensor(ids)]
    return image, prompts[labels], labels


def _f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _blend(old: float | None, new: float, gamma: float) -> float:
    return new if old is None else (1 - gamma) * old + gamma * new


@pytest.mark.parametrize("negatives", ["instance", "class"])
def test_gcl_moving_average(ref, negatives):
    gamma, tau = 0.7, 0.5
    sample_labels = torch.randint(K, (N,))
    prompts = F.normalize(torch.randn(K, D, dtype=torch.float64), dim=1).requires_grad_()
    gcl = GCLLoss(N, tau=tau, gamma=gamma, negatives=negatives).double()
    u_ref: dict[int, float] = {}
    v_ref: dict[int, float] = {}
    for step, ids in enumerate(STEPS):
        image, text, labels = _step_data(step, ids, sample_labels, prompts)
        loss = gcl(image, text, labels, torch.tensor(ids))

        g1, g2, h1, h2, negs = ref.batch_means(image, text, labels, tau, "gcl", negatives)
        for r, i in enumerate(ids):
            u_ref[i] = _blend(u_ref.get(i), float(g1[r]), gamma)
            v_ref[i] = _blend(v_ref.get(i), float(g2[r]), gamma)
        u = _f64([u_ref[i] for i in ids])
        v = _f64([v_ref[i] for i in ids])
        want = ref.row_surrogates(h1, h2, negs, u, v, tau).mean()
        torch.testing.assert_close(loss, want, **TOL)
        for g, w in zip(ref.grads(loss, (image, prompts)), ref.grads(want, (image, prompts)),
                        strict=True):
            torch.testing.assert_close(g, w, **TOL)

        seen = sorted(u_ref)
        torch.testing.assert_close(gcl.log_u[seen].exp(), _f64([u_ref[i] for i in seen]),
                                   **TOL)
        torch.testing.assert_close(gcl.log_v[seen].exp(), _f64([v_ref[i] for i in seen]),
                                   **TOL)
        unseen = [i for i in range(N) if i not in u_ref]
        assert torch.isnan(gcl.log_u[unseen]).all() and torch.isnan(gcl.log_v[unseen]).all()
        expected_obj = tau * (_f64([u_ref[i] for i in ids]).log()
                              + _f64([v_ref[i] for i in ids]).log())
        torch.testing.assert_close(gcl.sample_objective(ids), expected_obj, **TOL)


def test_gdro_moving_average(ref):
    gamma, class_gamma, tau, margin, lam = 0.6, 0.3, 0.4, 0.5, 0.7
    num_classes = K + 2  # two classes never appear
    # Class 4 first appears at step 3; step 4 holds 3 of the 5 classes set by then.
    sample_labels = torch.arange(N) % 4
    sample_labels[[12, 18, 20]] = 4
    prompts = F.normalize(torch.randn(num_classes, D, dtype=torch.float64), dim=1)
    prompts.requires_grad_()
    gdro = GDROLoss(N, num_classes, tau=tau, margin=margin, dro_lambda=lam, gamma=gamma,
                    class_gamma=class_gamma).double()
    u_ref: dict[int, float] = {}
    v_ref: dict[int, float] = {}
    z_ref: dict[int, float] = {}
    for step, ids in enumerate(STEPS):
        image, text, labels = _step_data(step, ids, sample_labels, prompts)
        loss = gdro(image, text, labels, torch.tensor(ids))

        g1, g2, h1, h2, negs = ref.batch_means(image, text, labels, tau, "gdro", margin=margin)
        for r, i in enumerate(ids):
            u_ref[i] = _blend(u_ref.get(i), float(g1[r]), gamma)
            v_ref[i] = _blend(v_ref.get(i), float(g2[r]), gamma)
        per_sample = {r: tau * (math.log(u_ref[i]) + math.log(v_ref[i]))
                      for r, i in enumerate(ids)}
        in_batch = sorted(set(labels.tolist()))
        assert (4 in z_ref) == (step > 2)  # class 4's first visit is step 3 (index 2)
        for k in in_batch:
            rows = [r for r in range(len(ids)) if int(labels[r]) == k]
            z_ref[k] = _blend(z_ref.get(k), sum(per_sample[r] for r in rows) / len(rows),
                              class_gamma)
        # q_k = K·softmax(z/λ) over every class set so far, not only those in the batch.
        norm = sum(math.exp(z / lam) for z in z_ref.values())
        q = {k: len(z_ref) * math.exp(z / lam) / norm for k, z in z_ref.items()}

        u = _f64([u_ref[i] for i in ids])
        v = _f64([v_ref[i] for i in ids])
        rows_sur = ref.row_surrogates(h1, h2, negs, u, v, tau)
        want = 0.0
        for k in in_batch:
            rows = [r for r in range(len(ids)) if int(labels[r]) == k]
            want = want + q[k] * rows_sur[rows].mean() / len(in_batch)
        torch.testing.assert_close(loss, want, **TOL)
        for g, w in zip(ref.grads(loss, (image, prompts)), ref.grads(want, (image, prompts)),
                        strict=True):
            torch.testing.assert_close(g, w, **TOL)

        seen = sorted(u_ref)
        torch.testing.assert_close(gdro.log_u[seen].exp(), _f64([u_ref[i] for i in seen]),
                                   **TOL)
        torch.testing.assert_close(gdro.log_v[seen].exp(), _f64([v_ref[i] for i in seen]),
                                   **TOL)
        z = torch.full((num_classes,), math.nan, dtype=torch.float64)
        for k, val in z_ref.items():
            z[k] = val
        torch.testing.assert_close(gdro.class_loss, z, equal_nan=True, **TOL)
        qt = torch.full((num_classes,), math.nan, dtype=torch.float64)
        for k, val in q.items():
            qt[k] = val
        torch.testing.assert_close(gdro.class_weights(), qt, equal_nan=True, **TOL)
        zs = _f64(list(z_ref.values()))
        torch.testing.assert_close(gdro.objective(),
                                   lam * (torch.logsumexp(zs / lam, 0) - math.log(len(zs))),
                                   **TOL)
    assert len(in_batch) < len(z_ref)  # the last q ran over classes absent from the batch
    # At least one step had a class weight far from 1, so the weighting was exercised.
    assert max(abs(val - 1) for val in q.values()) > 0.05


def test_forget_restarts_from_batch_estimate(ref):
    gamma, tau = 0.5, 0.5
    image, text, labels, _ = ref.make_batch(6, 3, seed=1)
    ids = torch.tensor([3, 7, 1, 0, 9, 4])
    gcl = GCLLoss(10, tau=tau, gamma=gamma).double()
    gcl(image, text, labels, ids)
    image2, text2, labels2, _ = ref.make_batch(6, 3, seed=2)
    gcl.forget([7, 0])
    assert torch.isnan(gcl.log_u[[7, 0]]).all() and torch.isnan(gcl.log_v[[7, 0]]).all()
    kept = gcl.log_u[[3, 1, 9, 4]].clone()
    assert torch.isfinite(kept).all()
    gcl(image2, text2, labels2, ids)
    g1, g2, *_ = ref.batch_means(image2, text2, labels2, tau, "gcl", "instance")
    # Forgotten ids (rows 1 and 3) take the new estimate, the others blend.
    torch.testing.assert_close(gcl.log_u[[7, 0]].exp(), g1[[1, 3]], **TOL)
    torch.testing.assert_close(gcl.log_v[[7, 0]].exp(), g2[[1, 3]], **TOL)
    blended = (1 - gamma) * kept.exp() + gamma * g1[[0, 2, 4, 5]]
    torch.testing.assert_close(gcl.log_u[[3, 1, 9, 4]].exp(), blended, **TOL)


@pytest.mark.parametrize("make", [lambda: GCLLoss(10, gamma=0.5), lambda: GDROLoss(10, 3)])
def test_reset_clears_all_state(ref, make):
    loss_fn = make().double()
    image, text, labels, _ = ref.make_batch(6, 3, seed=1)
    loss_fn(image, text, labels, torch.arange(6))
    assert any(torch.isfinite(b).any() for b in loss_fn.buffers())
    loss_fn.reset()
    assert all(torch.isnan(b).all() for b in loss_fn.buffers())
