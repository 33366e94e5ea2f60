"""Parity with the authors' own code base, LibAUC 2.0.1 (``pip install --no-deps libauc``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.losses import GCLLoss, GDROLoss

libauc_losses = pytest.importorskip(
    "libauc.losses", reason="libauc 2.0.1 not importable (pip install --no-deps libauc==2.0.1 "
    "plus scipy, tqdm, scikit-learn)")

N, K, D, B = 40, 5, 16, 10
# LibAUC switches γ to its γ_min only per whole batch (first call: γ = 1 if all of the batch's
# u are 0), so each batch is all-new or all-seen.
BATCHES = [list(range(0, 10)), list(range(10, 20)), list(range(0, 10)),
           [15, 3, 11, 7, 19, 0, 4, 12, 8, 16]]
# LibAUC allocates float32 state; the tests switch it to float64 so the comparison is exact
# up to float64 round-off rather than float32's.
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _batch(step: int, ids, sample_labels, prompts):
    g = torch.Generator().manual_seed(step)
    image = F.normalize(torch.randn(len(ids), D, generator=g, dtype=torch.float64), dim=1)
    image.requires_grad_()
    labels = sample_labels[torch.tensor(ids)]
    return image, labels


def test_gcl_matches_gcloss_v2(ref):
    tau, gamma = 0.1, 0.8
    sample_labels = torch.randint(K, (N,))
    prompts = F.normalize(torch.randn(K, D, dtype=torch.float64), dim=1).requires_grad_()
    lib = libauc_losses.GCLoss_v2(N=N, tau=tau, gamma=gamma)
    for name in ("b1", "b2", "u1", "u2"):
        setattr(lib, name, getattr(lib, name).double())
    ours = GCLLoss(N, tau=tau, gamma=gamma, negatives="instance").double()
    for step, ids in enumerate(BATCHES):
        image, labels = _batch(step, ids, sample_labels, prompts)
        text = prompts[labels]  # duplicate prompts are plain negatives for both
        index = torch.tensor(ids)
        lib_loss, extra = lib(image, text, index)
        assert extra is None
        our_loss = ours(image, text, labels, index)
        scale = (len(ids) - 1) / 2
        torch.testing.assert_close(lib_loss, scale * our_loss, **TOL)
        for g_lib, g_our in zip(ref.grads(lib_loss, (image, prompts)),
                                ref.grads(our_loss, (image, prompts)), strict=True):
            torch.testing.assert_close(g_lib, scale * g_our, **TOL)
        seen = sorted({i for b in BATCHES[: step + 1] for i in b})
        u_lib = (lib.u1 * lib.b1.exp()).flatten()[seen]
        v_lib = (lib.u2 * lib.b2.exp()).flatten()[seen]
        torch.testing.assert_close(u_lib, ours.log_u[seen].exp(), **TOL)
        torch.testing.assert_close(v_lib, ours.log_v[seen].exp(), **TOL)
    # The state moved between visits (the check above compared moving averages, not ĝ alone).
    g1, *_ = ref.batch_means(image, text, labels, tau, "gcl", "instance")
    assert (ours.log_u[BATCHES[-1]].exp() - g1).abs().max() > 1e-3


@pytest.mark.parametrize("margin", [0.5, 1.0])
def test_gdro_prompt_anchor_matches_pauc_dro(ref, margin):
    """Σ_k pAUC_DRO_Loss(S[:, k], y == k) is GDRO's prompt-anchor term (q ≡ 1, γ = 1)."""
    tau = 0.5
    sample_labels = torch.randint(K, (N,))
    prompts = F.normalize(torch.randn(K, D, dtype=torch.float64), dim=1).requires_grad_()
    lib = libauc_losses.pAUC_DRO_Loss(data_len=N, gamma=1.0, margin=margin, Lambda=tau,
                                      device="cpu")
    lib.u_pos = lib.u_pos.double()
    # λ huge makes every class weight 1, which LibAUC's plain sum over classes assumes.
    ours = GDROLoss(N, K, tau=tau, margin=margin, dro_lambda=1e12, gamma=1.0,
                    class_gamma=1.0).double()
    for step, ids in enumerate(BATCHES):
        image, labels = _batch(step, ids, sample_labels, prompts)
        index = torch.tensor(ids)
        scores = image @ prompts.T  # [B, K], s(i, k)
        present = sorted(set(labels.tolist()))
        lib_loss = sum(lib(scores[:, k], (labels == k).long(), index) for k in present)
        _, prompt_term = ours._anchor_terms(image, prompts[labels], labels, index)
        scaled = len(present) * prompt_term  # ours averages over the classes in the batch
        torch.testing.assert_close(lib_loss, scaled, **TOL)
        for g_lib, g_our in zip(ref.grads(lib_loss, (image, prompts)),
                                ref.grads(scaled, (image, prompts)), strict=True):
            assert g_lib.abs().max() > 1e-4
            torch.testing.assert_close(g_lib, g_our, **TOL)
        torch.testing.assert_close(lib.u_pos.flatten()[index],
                                   ours.log_v[index].exp(), **TOL)
