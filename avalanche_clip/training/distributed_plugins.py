"""Which Avalanche plugins may run under several processes (``torchrun``): those that read only
what every process has identically; the others are refused when a strategy is built."""

from __future__ import annotations

from typing import Any

from avalanche_clip.training.distributed import world_size
from avalanche_clip.training.plugin_states import avalanche_plugin_class

#: Avalanche plugins that do the same under several processes as in one: they read only what every
#: process has identically (the epoch counters, the evaluation every process runs in full).
DISTRIBUTED_AVALANCHE_PLUGINS = ("EvaluationPlugin", "LRSchedulerPlugin", "EarlyStoppingPlugin")


def check_distributed_plugins(owner: str, plugins: Any) -> None:
    """``ValueError`` naming an Avalanche plugin that would be wrong under several processes
    (EWC, LwF, SI ...: their penalties or importances are computed per process and would be
    summed once per process). Our own plugins and plugins from outside Avalanche pass."""
    for plugin in plugins:
        base = avalanche_plugin_class(plugin)  # also what our subclasses (EWC, SI) derive from
        name = type(plugin).__name__
        if base is not None and base.__name__ not in DISTRIBUTED_AVALANCHE_PLUGINS:
            raise ValueError(
                f"{owner} under {world_size()} processes: {name} is not supported with distributed "
                f"training (supported Avalanche plugins: {', '.join(DISTRIBUTED_AVALANCHE_PLUGINS)}); "
                "run it in one process"
            )
        if base is not None and base.__name__ == "LRSchedulerPlugin" and getattr(plugin, "metric", None) == "train_loss":
            raise ValueError(
                f"{owner} under {world_size()} processes: LRSchedulerPlugin(metric='train_loss') "
                "reads each process's own loss, which differs between processes; use "
                "metric='val_loss' or a schedule without a metric"
            )
