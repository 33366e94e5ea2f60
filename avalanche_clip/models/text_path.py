"""The parameters on a CLIP's text path, listed once, and a cheap key of their state.

A classifier decides on every training step whether its prompt features can come from a cache:
whether anything on the text path trains, and whether the weights the cache was computed from
are still those of the model. Walking ``clip.named_parameters()`` to decide costs ~0.4 ms a
call on ``effnet-lite0-clip`` (its image tower alone has ~150 tensors), several times a step —
more than a step's arithmetic on cached features. :class:`TextPath` lists the text path's
parameters once (everything but ``visual.*`` and the logit scale / bias), split into the trunk
(before the text projection) and the projection, and lists them again only when a parameter or
submodule has been registered on any module since (torch's global registration hooks bump a
counter), so a replaced parameter or tower is never missed.

:meth:`TextPath.key` is the listing's generation and the ``(requires_grad, version)`` of
parameters: a tensor computed from them is still valid while the key is unchanged, since
freezing or unfreezing changes a flag, an in-place change of a parameter (an optimizer step,
``load_state_dict``, ``p.mul_`` under ``no_grad``) bumps its version counter, and a replaced
parameter makes a new listing. Writes through ``p.data`` are the exception: torch counts no
version for them (as autograd does not see them), so they do not refresh a cache.

Example::

    path = TextPath(clip)
    path.trainable()          # does anything on the text path require a gradient?
    key = path.key(path.trunk())
"""

from __future__ import annotations

import torch
from torch import nn

from avalanche_clip.common.registrations import registration_generation
from avalanche_clip.models.text_tower import is_projection_parameter, text_projection_prefix

_NON_TEXT = ("logit_scale", "logit_bias")


class TextPath:
    """The text-path parameters of ``clip`` (see the module docstring)."""

    def __init__(self, clip: nn.Module) -> None:
        registration_generation()  # installs the hooks before the first listing
        self.clip = clip
        self._listed_at = -1
        self._prefix: str | None = None
        self._all: tuple[torch.Tensor, ...] = ()
        self._trunk: tuple[torch.Tensor, ...] = ()

    def _refresh(self) -> None:
        if self._listed_at == registration_generation():
            return
        self._prefix = text_projection_prefix(self.clip)
        named = [(name, p) for name, p in self.clip.named_parameters()
                 if not name.startswith("visual.") and name not in _NON_TEXT]
        self._all = tuple(p for _, p in named)
        self._trunk = tuple(p for name, p in named
                            if self._prefix is None or not is_projection_parameter(name, self._prefix))
        self._listed_at = registration_generation()

    def parameters(self) -> tuple[torch.Tensor, ...]:
        """Every parameter on the text path (trunk and projection)."""
        self._refresh()
        return self._all

    def trunk(self) -> tuple[torch.Tensor, ...]:
        """The text path's parameters before its projection (all of them for a tower whose
        pooled features we cannot read, see ``text_tower``)."""
        self._refresh()
        return self._trunk

    def trainable(self) -> bool:
        """Whether any parameter on the text path requires a gradient."""
        return any(p.requires_grad for p in self.parameters())

    def trunk_frozen(self) -> bool:
        """Whether everything before the text projection is frozen, on a tower whose pooled
        features can be read (``text_projection_prefix`` is not None)."""
        trunk = self.trunk()
        return self._prefix is not None and not any(p.requires_grad for p in trunk)

    def key(self, params: tuple[torch.Tensor, ...]) -> tuple:
        """The listing's generation and ``(requires_grad, version)`` of each of ``params`` (from
        :meth:`parameters` or :meth:`trunk`): unchanged while a tensor computed from them stays
        valid."""
        return self._listed_at, tuple((p.requires_grad, p._version) for p in params)

    def placement(self) -> tuple[tuple[torch.device, torch.dtype], ...]:
        """Device and dtype of each text-path parameter (a move or cast changes them)."""
        return tuple((p.device, p.dtype) for p in self.parameters())
