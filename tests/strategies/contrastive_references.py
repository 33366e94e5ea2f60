"""Direct, loop-by-loop implementations of the papers' equations (float64), for the loss tests.

Written from the papers' equations (Co2L's asymmetric SupCon and IRD, CaSSLe's predictive
distillation, FOSTER's logits alignment and (balanced) distillation), one anchor / one pair at a
time, independently of the vectorised code under test.
"""

from __future__ import annotations

import torch


def _unit(rows):
    return [r / torch.sqrt((r * r).sum()) for r in rows]


def supcon(z, labels, tau, anchors=None, scale=1.0, reduction="batch"):
    """−(1/|P_i|) Σ_{j∈P_i} log[exp(z_i·z_j/τ) / Σ_{k≠i} exp(z_i·z_k/τ)] over anchors with a
    positive; "batch": scale·Σ/B, "anchors": scale·mean."""
    z = _unit(list(z))
    n = len(z)
    terms = []
    for i in range(n):
        if anchors is not None and not bool(anchors[i]):
            continue
        positives = [j for j in range(n) if j != i and int(labels[j]) == int(labels[i])]
        if not positives:
            continue
        denominator = sum(torch.exp(z[i] @ z[k] / tau) for k in range(n) if k != i)
        log_probs = [torch.log(torch.exp(z[i] @ z[j] / tau) / denominator) for j in positives]
        terms.append(-sum(log_probs) / len(positives))
    if not terms:
        return torch.zeros((), dtype=torch.float64)
    total = sum(terms)
    return scale * (total / n if reduction == "batch" else total / len(terms))


def relation_distillation(z, z_past, kappa, kappa_past):
    """(1/B) Σ_i Σ_{j≠i} −p̄_ij log p_ij, p_ij = exp(z_i·z_j/κ)/Σ_{k≠i} exp(z_i·z_k/κ)."""
    z, zp = _unit(list(z)), _unit(list(z_past))
    n = len(z)
    total = 0.0
    for i in range(n):
        denominator = sum(torch.exp(z[i] @ z[k] / kappa) for k in range(n) if k != i)
        denominator_past = sum(torch.exp(zp[i] @ zp[k] / kappa_past) for k in range(n) if k != i)
        for j in range(n):
            if j == i:
                continue
            p = torch.exp(z[i] @ z[j] / kappa) / denominator
            p_past = torch.exp(zp[i] @ zp[j] / kappa_past) / denominator_past
            total = total - p_past * torch.log(p)
    return total / n


def instance_contrast(a, b, temperature):
    """−(1/B) Σ_i log[exp(a_i·b_i/T) / Σ_j exp(a_i·b_j/T)]."""
    a, b = _unit(list(a)), _unit(list(b))
    n = len(a)
    total = 0.0
    for i in range(n):
        denominator = sum(torch.exp(a[i] @ b[j] / temperature) for j in range(n))
        total = total - torch.log(torch.exp(a[i] @ b[i] / temperature) / denominator)
    return total / n


def effective_weights(counts, beta):
    """Cui et al.'s inverse effective numbers over the classes with samples (mean 1 among them);
    a class without samples keeps weight 1."""
    raw = {c: (1 - beta) / (1 - beta ** int(n)) for c, n in enumerate(counts) if int(n) > 0}
    total = sum(raw.values())
    return [raw[c] / total * len(raw) if c in raw else 1.0 for c in range(len(counts))]


def softmax_row(row, temperature=1.0):
    exps = [torch.exp(v / temperature) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def twin_contrast(a, b, temperature, views):
    """CaSSLe's two-view D(a, b) (rows view-major, n = views·B): for row r, the mean over the
    other views q of its sample of −log[exp(a_r·b_q/T) / Σ_{j≠r} exp(a_r·b_j/T)], mean over r."""
    a, b = _unit(list(a)), _unit(list(b))
    n = len(a)
    batch = n // views
    total = 0.0
    for r in range(n):
        denominator = sum(torch.exp(a[r] @ b[j] / temperature) for j in range(n) if j != r)
        twins = [q for q in range(n) if q != r and q % batch == r % batch]
        total = total - sum(torch.log(torch.exp(a[r] @ b[q] / temperature) / denominator) for q in twins) / len(twins)
    return total / n
