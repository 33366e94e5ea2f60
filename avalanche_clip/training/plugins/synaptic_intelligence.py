"""Avalanche's Synaptic Intelligence plugin with its weight snapshots copied.

Avalanche 0.6 snapshots weights as ``param.detach().cpu().flatten()``. On a CUDA model that is a
copy; on a CPU model it is a *view of the parameter itself*, so the snapshot taken before an
optimizer step moves with the step: the path integral ``Σ g·Δθ`` and the penalty
``λ/2 · Σ ω (θ − θ*)²`` are both exactly 0, and SI silently does nothing (with ``Naive`` as with
any strategy). This subclass clones the two snapshots that must outlive a step — the anchor
``θ*`` taken at each experience start and ``θ`` before each step — and changes nothing else, so
on CUDA it computes exactly what Avalanche's does.
"""

from __future__ import annotations

from typing import Any

from avalanche.training.plugins import SynapticIntelligencePlugin as AvalancheSI


class SynapticIntelligencePlugin(AvalancheSI):
    """Drop-in for ``avalanche.training.plugins.SynapticIntelligencePlugin`` (module docstring)."""

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        for anchor in self.ewc_data[0].values():  # θ*: the weights at the experience start
            anchor.data = anchor.data.clone()

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_iteration(strategy, **kwargs)
        for before in self.syn_data["old_theta"].values():  # θ before this step
            before.data = before.data.clone()


__all__ = ["SynapticIntelligencePlugin"]
