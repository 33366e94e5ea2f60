"""Losses of "Memory-Efficient Continual Learning with CLIP Models": GCL and GDRO.

Plain ``nn.Module``s with an explicit signature and no Avalanche dependency::

    from avalanche_clip.losses import GCLLoss, GDROLoss
    gcl = GCLLoss(num_samples=N, tau=0.05, gamma=0.9, negatives="instance")
    gdro = GDROLoss(num_samples=N, num_classes=K, tau=0.5, margin=0.5, dro_lambda=1.0,
                    gamma=0.9, class_gamma=0.9)
    loss = gcl(image_features, text_features, labels, index)  # [B,D], [B,D], [B], [B] -> []

``index`` holds each sample's global, persistent id in ``[0, N)``; the per-id estimator state
(``log_u``, ``log_v``, and GDRO's ``class_loss``) lives in buffers, so ``state_dict()`` carries
it. The math is in each class's docstring and in ``design/losses.md``.
"""

from avalanche_clip.losses.gcl import GCLLoss
from avalanche_clip.losses.gdro import GDROLoss

__all__ = ["GCLLoss", "GDROLoss"]
