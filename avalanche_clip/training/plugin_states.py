"""Checkpoint state of Avalanche plugins, as explicit dicts that load with ``weights_only=True``.

A registry maps a plugin class to a pair of functions ``save(plugin, strategy) -> dict`` and
``load(plugin, state, strategy, train_stream)``. :func:`plugin_state` picks, for a plugin:

1. the adapter registered for its class (or its nearest registered base class);
2. else its own ``state_dict`` / ``load_state_dict`` (our plugins);
3. else, for plugins with nothing to save (clock, periodic evaluation), nothing;
4. else an Avalanche plugin (or a subclass of one) is refused with :class:`NotCheckpointableError`
   naming it (its state cannot be captured), and a user plugin is assumed stateless, with a
   warning.

Registered here: Avalanche's ``EvaluationPlugin`` (its metrics' memory across experiences,
e.g. forgetting's first accuracies, and the results it collected:
:mod:`avalanche_clip.training.evaluator_state`), ``LRSchedulerPlugin`` (the scheduler's ``state_dict`` and the
plugin's own flags), ``EarlyStoppingPlugin`` (best value, step and weights), ``EWCPlugin``
(importances and anchor weights per experience), ``LwFPlugin`` (the previous model and its
classes), ``SynapticIntelligencePlugin`` (its weight, importance and trajectory tensors), and our
``ClassBalancedReplayPlugin`` (the memory by global sample id, rebuilt from the train stream).
Tensors of frozen parameters are never stored: they are rebuilt from the current model (a
checkpoint checks the frozen weights' fingerprint before anything is loaded).

Register another class with :func:`register_plugin_state`.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.training.plugins import (
    EarlyStoppingPlugin,
    EvaluationPlugin,
    EWCPlugin,
    LRSchedulerPlugin,
    LwFPlugin,
    SynapticIntelligencePlugin,
)
from avalanche.training.plugins.clock import Clock
from avalanche.training.templates.base_sgd import PeriodicEval
from avalanche.training.utils import ParamData
from torch import nn

from avalanche_clip.common.errors import AvalancheClipError
from avalanche_clip.training.distributed import GradientSumPlugin
from avalanche_clip.training.evaluator_state import evaluator_state, load_evaluator_state
from avalanche_clip.training.plugins import ClassBalancedReplayPlugin

# Plugins with nothing to save (GradientSumPlugin exists only under several processes: no entry,
# so a checkpoint does not depend on the process count).
STATELESS_PLUGINS = (Clock, PeriodicEval, GradientSumPlugin)
#: Plugins whose state checkpoints hold, but whose absence (a checkpoint made before it was
#: saved) does not stop a resume.
OPTIONAL_STATE_PLUGINS = (EvaluationPlugin,)


class NotCheckpointableError(AvalancheClipError, RuntimeError):
    """The strategy holds state this module cannot save exactly (names what, for the CLI's one
    line)."""


@dataclass(frozen=True)
class PluginStateAdapter:
    save: Callable[[Any, Any], dict[str, Any]]
    load: Callable[[Any, dict[str, Any], Any, Any], None]


PLUGIN_STATES: dict[type, PluginStateAdapter] = {}


def register_plugin_state(cls: type, save: Callable[[Any, Any], dict[str, Any]],
                          load: Callable[[Any, dict[str, Any], Any, Any], None]) -> None:
    """Register how plugins of class ``cls`` (and its subclasses) are checkpointed."""
    if cls in PLUGIN_STATES:
        raise ValueError(f"a checkpoint adapter for {cls.__name__} is registered already")
    PLUGIN_STATES[cls] = PluginStateAdapter(save, load)


def _adapter(plugin: Any) -> PluginStateAdapter | None:
    return next((PLUGIN_STATES[c] for c in type(plugin).__mro__ if c in PLUGIN_STATES), None)


def avalanche_plugin_class(plugin: Any) -> type | None:
    """The first class of ``plugin``'s hierarchy that is one of Avalanche's plugins (not one of
    its empty base classes in ``avalanche.core``), e.g. for a subclass of iCaRL's plugin."""
    return next((c for c in type(plugin).__mro__
                 if c.__module__.startswith("avalanche.") and c.__module__ != "avalanche.core"), None)


def has_checkpoint_state(plugin: Any) -> bool:
    """Whether checkpoints must hold state for ``plugin`` (an adapter or its own
    ``state_dict``; not the :data:`OPTIONAL_STATE_PLUGINS`)."""
    if isinstance(plugin, OPTIONAL_STATE_PLUGINS):
        return False
    return _adapter(plugin) is not None or hasattr(plugin, "state_dict")


def plugin_state(plugin: Any, strategy: Any) -> dict[str, Any] | None:
    """The checkpoint state of ``plugin`` (None: nothing to save); see the module docstring."""
    adapter = _adapter(plugin)
    if adapter is not None:
        state = adapter.save(plugin, strategy)
    elif hasattr(plugin, "state_dict"):
        state = plugin.state_dict()
    elif isinstance(plugin, STATELESS_PLUGINS):
        return None
    elif avalanche_plugin_class(plugin) is not None:
        raise NotCheckpointableError(
            f"Avalanche plugin {type(plugin).__name__} keeps state that cannot be checkpointed "
            "(no adapter in avalanche_clip.training.plugin_states)"
        )
    else:
        warnings.warn(f"plugin {type(plugin).__name__} has no state_dict(); checkpoints assume it "
                      "is stateless", stacklevel=3)
        return None
    _check_plain(state, type(plugin).__name__)
    return state


def load_plugin_state(plugin: Any, state: dict[str, Any], strategy: Any, train_stream: Any) -> None:
    """Restore :func:`plugin_state` into ``plugin`` of an identically built ``strategy``."""
    adapter = _adapter(plugin)
    if adapter is not None:
        adapter.load(plugin, state, strategy, train_stream)
    else:
        plugin.load_state_dict(state)


_PLAIN = (int, float, bool, str, type(None))  # exact types: a numpy float is not loadable


def _check_plain(value: Any, where: str) -> None:
    """``NotCheckpointableError`` unless ``value`` holds only what ``weights_only`` loads."""
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise NotCheckpointableError(f"{where}: key {key!r} is not a string or integer")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise NotCheckpointableError(
        f"{where} holds a {type(value).__name__}, which a weights_only checkpoint cannot store"
    )


# -- helpers ---------------------------------------------------------------------------------
def _trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _without_frozen(model_state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {k: v for k, v in model_state.items() if k not in frozen}


def _with_frozen(saved: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A full state dict in the model's key order: saved entries, frozen ones from ``model``."""
    current = model.state_dict()
    return {k: saved[k].to(v.device) if k in saved else v.detach().clone() for k, v in current.items()}


def _params_out(params: dict[str, ParamData], keep: set[str]) -> dict[str, torch.Tensor]:
    return {name: data.data.detach().cpu().clone() for name, data in params.items() if name in keep}


# -- LRSchedulerPlugin -----------------------------------------------------------------------
def _detached(value: Any) -> Any:
    """A running sum (a float, or a tensor when it summed losses) without its graph."""
    return value.detach().clone() if torch.is_tensor(value) else value


_LR_FLAGS = ("_was_training", "_just_validated", "_executed_train_iteration")


def _save_lr(plugin: LRSchedulerPlugin, strategy: Any) -> dict[str, Any]:
    return {
        "scheduler": plugin.scheduler.state_dict(),
        "rolling": [_detached(plugin.rolling_metric.summed), _detached(plugin.rolling_metric.weight)],
        "flags": {name: bool(getattr(plugin, name)) for name in _LR_FLAGS},
    }


def _load_lr(plugin: LRSchedulerPlugin, state: dict[str, Any], strategy: Any, stream: Any) -> None:
    plugin.scheduler.load_state_dict(state["scheduler"])
    plugin.rolling_metric.summed, plugin.rolling_metric.weight = state["rolling"]
    for name, value in state["flags"].items():
        setattr(plugin, name, value)


# -- EarlyStoppingPlugin ---------------------------------------------------------------------
def _save_early_stopping(plugin: EarlyStoppingPlugin, strategy: Any) -> dict[str, Any]:
    best = plugin.best_state
    return {
        "best_state": None if best is None else _without_frozen(best, strategy.model),
        "best_val": None if plugin.best_val is None else float(plugin.best_val),
        "best_step": plugin.best_step,
    }


def _load_early_stopping(plugin: EarlyStoppingPlugin, state: dict[str, Any], strategy: Any,
                         stream: Any) -> None:
    best = state["best_state"]
    plugin.best_state = None if best is None else _with_frozen(best, strategy.model)
    plugin.best_val = state["best_val"]
    plugin.best_step = state["best_step"]


# -- EWCPlugin -------------------------------------------------------------------------------
def _save_ewc(plugin: EWCPlugin, strategy: Any) -> dict[str, Any]:
    # Frozen parameters have zero importance and anchors equal to their (fixed) value.
    keep = _trainable_names(strategy.model)
    return {
        "importances": {int(t): _params_out(p, keep) for t, p in plugin.importances.items()},
        "saved_params": {int(t): _params_out(p, keep) for t, p in plugin.saved_params.items()},
    }


def _load_ewc(plugin: EWCPlugin, state: dict[str, Any], strategy: Any, stream: Any) -> None:
    # Only the saved (trainable) parameters come back: EWC's penalty skips parameters it holds no
    # entry for, and a frozen one's term is zero anyway (zero importance, fixed value).
    params = dict(strategy.model.named_parameters())

    def entries(saved: dict[str, torch.Tensor]) -> dict[str, ParamData]:
        return {name: ParamData(name, params[name].shape, device=params[name].device,
                                init_tensor=value.to(params[name].device))
                for name, value in saved.items()}

    plugin.importances = defaultdict(dict, {int(t): entries(p) for t, p in state["importances"].items()})
    plugin.saved_params = defaultdict(dict, {int(t): entries(p) for t, p in state["saved_params"].items()})


# -- LwFPlugin -------------------------------------------------------------------------------
def _save_lwf(plugin: LwFPlugin, strategy: Any) -> dict[str, Any]:
    lwf = plugin.lwf
    previous = lwf.prev_model
    return {
        "prev_model": None if previous is None else _without_frozen(previous.state_dict(), previous),
        "prev_training": None if previous is None else bool(previous.training),
        "prev_classes_by_task": {int(t): sorted(int(c) for c in classes)
                                 for t, classes in lwf.prev_classes_by_task.items()},
        "expcount": int(lwf.expcount),
    }


def _load_lwf(plugin: LwFPlugin, state: dict[str, Any], strategy: Any, stream: Any) -> None:
    lwf = plugin.lwf
    if state["prev_model"] is None:
        lwf.prev_model = None
    else:
        # The previous model is the strategy's model with older trainable weights.
        previous = copy.deepcopy(strategy.model)
        previous.load_state_dict(state["prev_model"], strict=False)
        lwf.prev_model = previous.train(state["prev_training"])
    lwf.prev_classes_by_task = defaultdict(set, {int(t): set(classes) for t, classes
                                                 in state["prev_classes_by_task"].items()})
    lwf.expcount = state["expcount"]


# -- SynapticIntelligencePlugin --------------------------------------------------------------
def _param_entries(params: dict[str, ParamData]) -> dict[str, Any]:
    return {name: {"name": data.name, "data": data.data.detach().cpu().clone()}
            for name, data in params.items()}


def _param_entries_in(saved: dict[str, Any], device: Any) -> dict[str, ParamData]:
    return {name: ParamData(entry["name"], entry["data"].shape, device=device,
                            init_tensor=entry["data"].clone())
            for name, entry in saved.items()}


def _save_si(plugin: SynapticIntelligencePlugin, strategy: Any) -> dict[str, Any]:
    return {
        "ewc_data": [_param_entries(part) for part in plugin.ewc_data],
        "syn_data": {key: _param_entries(part) for key, part in plugin.syn_data.items()},
    }


def _load_si(plugin: SynapticIntelligencePlugin, state: dict[str, Any], strategy: Any,
             stream: Any) -> None:
    # SI keeps its tensors on the CPU (it flattens and moves them there itself).
    plugin.ewc_data = tuple(_param_entries_in(part, "cpu") for part in state["ewc_data"])
    plugin.syn_data = {key: _param_entries_in(part, "cpu") for key, part in state["syn_data"].items()}


# -- ClassBalancedReplayPlugin ---------------------------------------------------------------
def _load_replay(plugin: ClassBalancedReplayPlugin, state: dict[str, Any], strategy: Any,
                 train_stream: Any) -> None:
    ids = getattr(strategy, "sample_ids", None)
    datasets = ids.known_datasets(train_stream) if ids is not None else [e.dataset for e in train_stream]
    plugin.load_state_dict(state, datasets)


register_plugin_state(EvaluationPlugin, lambda plugin, strategy: evaluator_state(plugin),
                      lambda plugin, state, strategy, stream: load_evaluator_state(plugin, state))
register_plugin_state(LRSchedulerPlugin, _save_lr, _load_lr)
register_plugin_state(EarlyStoppingPlugin, _save_early_stopping, _load_early_stopping)
register_plugin_state(EWCPlugin, _save_ewc, _load_ewc)
register_plugin_state(LwFPlugin, _save_lwf, _load_lwf)
register_plugin_state(SynapticIntelligencePlugin, _save_si, _load_si)
register_plugin_state(ClassBalancedReplayPlugin, lambda plugin, strategy: plugin.state_dict(),
                      _load_replay)

__all__ = [
    "NotCheckpointableError",
    "PLUGIN_STATES",
    "STATELESS_PLUGINS",
    "has_checkpoint_state",
    "load_plugin_state",
    "plugin_state",
    "register_plugin_state",
]
