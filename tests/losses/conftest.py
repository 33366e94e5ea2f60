"""Shared data makers and independent references for the loss tests.

The references are written from ``design/losses.md`` directly, row by row with ``logsumexp``
or plain ``exp`` means, and share no code with ``avalanche_clip.losses``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make_batch(batch: int, classes: int, dim: int = 8, *, dtype=torch.float64, seed: int = 0,
               per_row: bool = False, num_classes: int | None = None):
    """Normalised leaf features with every one of ``classes`` classes present.

    Returns ``(image [B,D] leaf, text [B,D], labels [B], leaves)``: with ``per_row`` the text
    rows are their own leaves; otherwise they are gathered from per-class prompt leaves
    ``[num_classes, D]`` by label, as in real use.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.arange(classes), torch.randint(classes, (batch - classes,),
                                                                 generator=g)])
    labels = labels[torch.randperm(batch, generator=g)]
    image = F.normalize(torch.randn(batch, dim, generator=g, dtype=dtype), dim=1)
    image.requires_grad_()
    if per_row:
        text = F.normalize(torch.randn(batch, dim, generator=g, dtype=dtype), dim=1)
        text.requires_grad_()
        return image, text, labels, (image, text)
    prompts = F.normalize(torch.randn(num_classes or classes, dim, generator=g, dtype=dtype),
                          dim=1)
    prompts.requires_grad_()
    return image, prompts[labels], labels, (image, prompts)


def negatives_of(labels, i: int, negatives: str) -> list[int]:
    return [j for j in range(len(labels))
            if j != i and (negatives == "instance" or int(labels[j]) != int(labels[i]))]


def hinge(d, margin: float):
    return torch.clamp(margin - d, min=0.0) ** 2


def exact_gcl(image, text, labels, tau: float, negatives: str):
    """F_GCL on the batch as the whole data set, rows without negatives left out."""
    s = image @ text.T
    terms = []
    for i in range(len(labels)):
        js = torch.tensor(negatives_of(labels, i, negatives), dtype=torch.long)
        if len(js) == 0:
            continue
        lg1 = torch.logsumexp((s[i, js] - s[i, i]) / tau, 0) - math.log(len(js))
        lg2 = torch.logsumexp((s[js, i] - s[i, i]) / tau, 0) - math.log(len(js))
        terms.append(tau * (lg1 + lg2))
    return torch.stack(terms).mean()


def exact_class_losses(image, text, labels, tau: float, margin: float):
    """``{k: L_k}`` of GDRO, the batch being the whole data set."""
    s = image @ text.T
    out = {}
    for k in sorted(set(labels.tolist())):
        rows = [i for i in range(len(labels)) if int(labels[i]) == k]
        js = torch.tensor([j for j in range(len(labels)) if int(labels[j]) != k])
        per = []
        for i in rows:
            lg1 = torch.logsumexp(hinge(s[i, i] - s[i, js], margin) / tau, 0) - math.log(len(js))
            lg2 = torch.logsumexp(hinge(s[i, i] - s[js, i], margin) / tau, 0) - math.log(len(js))
            per.append(tau * (lg1 + lg2))
        out[k] = torch.stack(per).mean()
    return out


def exact_gdro(image, text, labels, tau: float, margin: float, lam: float):
    """F_GDRO = λ·log((1/K) Σ_k exp(L_k/λ)) over the classes in the batch."""
    losses = torch.stack(list(exact_class_losses(image, text, labels, tau, margin).values()))
    return lam * (torch.logsumexp(losses / lam, 0) - math.log(len(losses)))


def batch_means(image, text, labels, tau: float, kind: str, negatives: str = "class",
                margin: float = 0.0):
    """Plain-exp batch estimates ``ĝ₁(i), ĝ₂(i)`` and the pair matrices (float64, no logs).

    ``kind`` is ``"gcl"`` (``h = S_ij − S_ii``) or ``"gdro"`` (``A``, ``T`` squared hinges).
    Returns ``(g1 [B], g2 [B], h1 [B,B], h2 [B,B], neg lists)``; ``g`` is NaN for rows
    without negatives.
    """
    s = image @ text.T
    d = s.diagonal()[:, None]
    if kind == "gcl":
        h1, h2 = s - d, s.T - d
    else:
        h1, h2 = hinge(d - s, margin), hinge(d - s.T, margin)
        negatives = "class"
    g1, g2, negs = [], [], []
    for i in range(len(labels)):
        js = negatives_of(labels, i, negatives)
        negs.append(js)
        if not js:
            g1.append(math.nan)
            g2.append(math.nan)
            continue
        g1.append(float(torch.exp(h1[i, js].detach() / tau).mean()))
        g2.append(float(torch.exp(h2[i, js].detach() / tau).mean()))
    return torch.tensor(g1, dtype=torch.float64), torch.tensor(g2, dtype=torch.float64), h1, h2, negs


def row_surrogates(h1, h2, negs, u, v, tau: float):
    """Per-row ``Σ_j exp(h/τ)/(|B_i|·u_i)·h`` with the given (reference) ``u``, ``v``."""
    rows = []
    for i, js in enumerate(negs):
        if not js:
            rows.append(h1.new_zeros(()))
            continue
        w1 = torch.exp(h1[i, js].detach() / tau) / (len(js) * float(u[i]))
        w2 = torch.exp(h2[i, js].detach() / tau) / (len(js) * float(v[i]))
        rows.append((w1 * h1[i, js]).sum() + (w2 * h2[i, js]).sum())
    return torch.stack(rows)


def grads(value, leaves):
    return torch.autograd.grad(value, leaves, retain_graph=True)


@pytest.fixture
def ref() -> SimpleNamespace:
    """The helpers above, as one fixture (test modules cannot import conftest directly)."""
    return SimpleNamespace(make_batch=make_batch, exact_gcl=exact_gcl, exact_gdro=exact_gdro,
                           exact_class_losses=exact_class_losses, batch_means=batch_means,
                           row_surrogates=row_surrogates, grads=grads, hinge=hinge,
                           negatives_of=negatives_of)
