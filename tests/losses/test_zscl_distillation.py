"""ZSCL's feature-space distillation against a loop-by-loop reference of the paper's equations.

The reference below is written from the equations (Zheng et al., ICCV 2023, Sec. 3.2, with the
official code's ``T²`` factor and row means), element by element with ``math.exp`` / ``math.log``
on Python floats, and shares no code with :mod:`avalanche_clip.losses.zscl`.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.losses.zscl import zscl_distillation


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def reference(student: list[list[float]], teacher: list[list[float]], text: list[list[float]],
              scale: float, temperature: float, w_img: float, w_txt: float) -> float:
    """``w_img·L_img + w_txt·L_txt`` with explicit loops over images i, texts c and dims d."""
    n, c_count = len(student), len(text)

    def logits(feature):  # s · a_i · t_c
        return [[scale * sum(feature[i][d] * text[c][d] for d in range(len(text[c])))
                 for c in range(c_count)] for i in range(n)]

    s_log, p_log = logits(student), logits(teacher)
    l_img = 0.0
    for i in range(n):  # each image: a distribution over the texts
        p = _softmax([p_log[i][c] / temperature for c in range(c_count)])
        q = _softmax([s_log[i][c] / temperature for c in range(c_count)])
        l_img += -sum(p[c] * math.log(q[c]) for c in range(c_count))
    l_img = temperature**2 * l_img / n
    l_txt = 0.0
    for c in range(c_count):  # each text: a distribution over the images
        p = _softmax([p_log[i][c] / temperature for i in range(n)])
        q = _softmax([s_log[i][c] / temperature for i in range(n)])
        l_txt += -sum(p[i] * math.log(q[i]) for i in range(n))
    l_txt = temperature**2 * l_txt / c_count
    return w_img * l_img + w_txt * l_txt


def _features(seed: int, n: int = 5, c: int = 4, d: int = 6):
    g = torch.Generator().manual_seed(seed)
    student = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1).requires_grad_(True)
    teacher = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1).requires_grad_(True)
    text = F.normalize(torch.randn(c, d, generator=g, dtype=torch.float64), dim=1).requires_grad_(True)
    return student, teacher, text


@pytest.mark.parametrize("temperature, w_img, w_txt, scale", [
    (2.0, 1.0, 1.0, 100.0),  # the official defaults (MTIL weights), CLIP's scale
    (1.0, 5.0, 5.0, 30.0),  # the class-incremental code's weights
    (0.5, 1.0, 0.0, 10.0),  # image direction only
    (3.0, 0.0, 1.0, 10.0),  # text direction only
])
def test_value_matches_the_loop_reference(temperature, w_img, w_txt, scale):
    student, teacher, text = _features(0)
    ours = zscl_distillation(student, teacher, text, scale=scale, temperature=temperature,
                             image_weight=w_img, text_weight=w_txt)
    expected = reference(student.tolist(), teacher.tolist(), text.tolist(), scale, temperature, w_img, w_txt)
    assert ours.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert ours.item() > 0


def test_gradient_matches_finite_differences_of_the_reference_and_flows_only_into_the_student():
    student, teacher, text = _features(1, n=4, c=3, d=5)
    loss = zscl_distillation(student, teacher, text, scale=20.0, temperature=2.0)
    loss.backward()
    assert teacher.grad is None and text.grad is None  # the teacher and its texts stay fixed
    base = student.detach().tolist()
    eps = 1e-6
    for i in range(len(base)):
        for d in range(len(base[0])):
            plus = [row[:] for row in base]
            minus = [row[:] for row in base]
            plus[i][d] += eps
            minus[i][d] -= eps
            numeric = (reference(plus, teacher.tolist(), text.tolist(), 20.0, 2.0, 1.0, 1.0)
                       - reference(minus, teacher.tolist(), text.tolist(), 20.0, 2.0, 1.0, 1.0)) / (2 * eps)
            assert student.grad[i, d].item() == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_the_student_equal_to_the_teacher_is_a_stationary_point():
    """At ``a = ā`` the cross-entropy is at its minimum over the student (the KL is 0): zero
    gradient, and the value is the teacher's entropy, ``T²``-scaled."""
    _, teacher, text = _features(2)
    student = teacher.detach().clone().requires_grad_(True)
    loss = zscl_distillation(student, teacher, text, scale=50.0, temperature=2.0)
    loss.backward()
    assert student.grad.abs().max().item() < 1e-12
    moved = (student.detach() + 0.05 * torch.randn_like(student)).requires_grad_(True)
    assert zscl_distillation(moved, teacher, text, scale=50.0, temperature=2.0).item() > loss.item()


def test_bad_shapes_and_temperature_are_refused():
    student, teacher, text = _features(3)
    with pytest.raises(ValueError, match="same \\[N, D\\] shape"):
        zscl_distillation(student, teacher[:2], text, scale=1.0)
    with pytest.raises(ValueError, match="teacher_text must be"):
        zscl_distillation(student, teacher, text[:, :3], scale=1.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        zscl_distillation(student, teacher, text, scale=1.0, temperature=0.0)
