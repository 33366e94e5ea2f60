"""ZSCL's distillation in the image–text feature space (Zheng et al., ICCV 2023, Sec. 3.2).

On a batch of ``N`` reference images and ``C`` reference texts, with the student's normalised
image features ``a_i`` (``[N, D]``, with gradient), the frozen teacher's ``ā_i`` (``[N, D]``) and
the teacher's normalised text features ``t_c`` (``[C, D]``, the same texts for both: ZSCL
encodes the reference texts with the teacher only), the similarity logits are::

    S_ic = s · a_i · t_c        (student)        P_ic = s · ā_i · t_c        (teacher)

with ``s`` CLIP's logit scale. The loss distils the teacher's distributions into the student's at
temperature ``T``, in both directions::

    L_img = T² · (1/N) Σ_i Σ_c −softmax_c(P_i·/T) · log softmax_c(S_i·/T)      (image → texts)
    L_txt = T² · (1/C) Σ_c Σ_i −softmax_i(P_·c/T) · log softmax_i(S_·c/T)      (text → images)
    L     = w_img · L_img + w_txt · L_txt

This is the official code's ``distillation(t, s, T)`` (``cil/continual_clip/utils.py`` and
``mtil/src/models/helpers.py`` of ``Thunderbeee/ZSCL``: ``F.cross_entropy(s/T, softmax(t/T))
· T²``, a mean over rows) applied to ``logits_ref``/``logits_current`` and to their transposes
(``cil/continual_clip/models.py``, ``mtil/src/models/finetune.py``; ``--image_loss``,
``--text_loss``). Its cross-entropy differs from ``KL(p‖q)`` by the teacher's entropy, a
constant without gradient, so the gradients are the paper's KL's. The teacher's logits carry no
gradient: only the student's image path receives one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_cross_entropy(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """``T² · mean_i Σ_j −softmax(t_i/T)_j · log softmax(s_i/T)_j`` over the rows of two
    ``[R, M]`` logit matrices (the teacher's detached): the official ``distillation``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    target = F.softmax(teacher_logits.detach() / temperature, dim=1)
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    return -(target * log_q).sum(dim=1).mean() * temperature**2


def zscl_distillation(student_image: Tensor, teacher_image: Tensor, teacher_text: Tensor, *,
                      scale: Tensor | float, temperature: float = 2.0, image_weight: float = 1.0,
                      text_weight: float = 1.0) -> Tensor:
    """``L = w_img · L_img + w_txt · L_txt`` (module docstring), a scalar.

    Args:
        student_image: ``[N, D]`` normalised image features of the model being trained.
        teacher_image: ``[N, D]`` normalised image features of the frozen teacher.
        teacher_text: ``[C, D]`` normalised text features of the reference texts (teacher's).
        scale: the logit scale ``s`` (a number or a 0-d tensor; used without gradient).
        temperature: the distillation temperature ``T`` (official default 2).
        image_weight, text_weight: ``w_img``, ``w_txt`` of the two directions.
    """
    if student_image.shape != teacher_image.shape or student_image.dim() != 2:
        raise ValueError(f"student and teacher image features must be the same [N, D] shape, got "
                         f"{tuple(student_image.shape)} and {tuple(teacher_image.shape)}")
    if teacher_text.dim() != 2 or teacher_text.shape[1] != student_image.shape[1]:
        raise ValueError(f"teacher_text must be [C, {student_image.shape[1]}], got {tuple(teacher_text.shape)}")
    # at least float32 (bf16 / fp16 features under autocast), float64 kept for exact checks
    dtype = torch.promote_types(student_image.dtype, torch.float32)
    s = torch.as_tensor(scale, device=student_image.device).detach().to(dtype)
    text = teacher_text.detach().to(dtype)
    student = s * student_image.to(dtype) @ text.t()  # [N, C]
    teacher = s * teacher_image.detach().to(dtype) @ text.t()  # [N, C]
    loss = student.new_zeros(())
    if image_weight:
        loss = loss + image_weight * soft_cross_entropy(teacher, student, temperature)
    if text_weight:
        loss = loss + text_weight * soft_cross_entropy(teacher.t(), student.t(), temperature)
    return loss


__all__ = ["soft_cross_entropy", "zscl_distillation"]
