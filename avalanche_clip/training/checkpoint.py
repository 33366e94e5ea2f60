"""Checkpoints at experience boundaries: explicit dicts of ``state_dict``\\ s.

A checkpoint holds the model's trainable state (its frozen parameters only as a fingerprint:
they are rebuilt from the config and checked on resume), the optimizer, the loss's estimators, the replay memory by global
sample id (with its reservoir weights), the seen classes, Avalanche's clock, every RNG state,
the index of the last finished experience and the resolved run config. It is written
atomically (``avalanche_clip.common.atomic``) and read with ``weights_only=True``.

Avalanche's own ``save_checkpoint`` pickles the whole strategy with dill and fails on torch 2.14
optimizers, and a pickled strategy is fragile anyway; this module saves only tensors, numbers,
strings, lists and dicts.

Plugins are saved through :mod:`avalanche_clip.training.plugin_states`: Avalanche's evaluation (its
metrics' memory, e.g. forgetting), LR scheduler, early stopping, EWC, LwF and SI plugins through
registered adapters, ours through their ``state_dict`` / ``load_state_dict``, clock / periodic
evaluation as stateless, a
user plugin without ``state_dict`` as stateless (with a warning); any other Avalanche plugin (e.g.
iCaRL's exemplars) raises :class:`NotCheckpointableError` naming it, and strategies registered as
not checkpointable restart from the first experience on resume, which gives the same records
because runs are deterministic. State a strategy keeps outside its plugins (DER's logit memory)
is saved through its ``checkpoint_state`` / ``load_checkpoint_state`` methods, the ids it
assigned to a benchmark's samples (``strategy.sample_ids``) first of all, and the loss state of
``strategy.contrastive_loss`` (else of the criterion, when it is a module).

The same functions checkpoint Avalanche's own strategies (``Naive`` with plugins), whose
``save_checkpoint`` fails on torch 2.14::

    save_checkpoint(path, strategy=strategy, experience=t)        # after training experience t
    start = load_checkpoint(path, strategy=strategy, train_stream=benchmark.train_stream) + 1
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from avalanche_clip.common.atomic import atomic_write
from avalanche_clip.common.errors import AvalancheClipError
from avalanche_clip.features.fingerprint import tensors_fingerprint
from avalanche_clip.training.checkpoint_writer import snapshot
from avalanche_clip.training.distributed import rank
from avalanche_clip.training.packed_tensors import PackedTensorsError, pack_tensors, unpack_tensors
from avalanche_clip.training.plugin_states import (
    NotCheckpointableError,
    has_checkpoint_state,
    load_plugin_state,
    plugin_state,
)
from avalanche_clip.training.seeding import capture_rng_state, restore_rng_state

#: 2: the model's state packed into one tensor per dtype (:mod:`avalanche_clip.training.packed_tensors`).
CHECKPOINT_VERSION = 2
#: Versions this code resumes from: 1 differs only in holding the model's state dict as it is.
READABLE_VERSIONS = (1, 2)
#: Config keys that may differ between a checkpoint (or a finished run) and the run resuming it:
#: where things run, where files live and what logs them. ``data_root`` is resolved to an
#: absolute path, so a clone elsewhere or moved data must still match its committed runs.
RESUME_NEUTRAL_KEYS = frozenset(
    {"out", "resume", "device", "num_workers", "threads", "progress", "checkpoint", "data_root",
     "cache_dir", "loggers", "world_size"}
)
#: Keys added to checkpoints and run configs later: one without it was made before it existed, and
#: its value is unknown rather than different (see avalanche_clip.pipeline.data_identity; the
#: memory size a run's tuned values were tuned at, avalanche_clip.pipeline.tuned_values).
UNKNOWN_WHEN_ABSENT = frozenset({"data_fingerprint", "tuned_at_mem_size"})
#: Keys added later whose default is what every config made before them ran with: a saved
#: config without one compares as that default (feature_views: 1, one un-augmented view).
DEFAULT_WHEN_ABSENT = {"feature_views": 1}


class CheckpointMismatchError(AvalancheClipError, ValueError):
    """A checkpoint was made by a run with another config."""


class CheckpointDamagedError(AvalancheClipError):
    """A checkpoint file cannot be read (truncated, overwritten, not a checkpoint)."""


class ResumeError(AvalancheClipError):
    """A run cannot continue from its checkpoint without losing or inventing records."""


_PAYLOAD_KEYS = ("version", "experience", "config", "strategy", "rng")


class FrozenWeights:
    """A model's frozen tensors, by reference, whose checkpoint entry (names and fingerprint,
    ~15–30 ms for effnet-lite0-clip's 77 MB, most of it checking that the remembered digest
    still applies) is computed by :func:`write_checkpoint`, on the writer's thread. Training
    never changes them (no gradient, eval mode), so they need no copy; were one changed anyway,
    the fingerprint would describe the changed weights, as one taken earlier would have."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def entry(self) -> dict[str, Any]:
        return {"keys": sorted(self.tensors), "fingerprint": tensors_fingerprint(self.tensors)}


def strategy_state(strategy: Any, *, defer_frozen: bool = False) -> dict[str, Any]:
    """The training state of ``strategy`` (see the module docstring); ``defer_frozen``: the
    frozen weights' entry as :class:`FrozenWeights`, for :func:`write_checkpoint` to compute."""
    plugins = {}
    for plugin in strategy.plugins:
        saved = plugin_state(plugin, strategy)
        if saved is None:
            continue
        name = type(plugin).__name__
        if name in plugins:
            raise NotCheckpointableError(f"two {name} plugins; cannot tell their states apart")
        plugins[name] = saved
    model_state, frozen = _split_frozen(strategy.model)
    state = {
        "model": pack_tensors(model_state),  # a copy, as one tensor per dtype (~150 small ones)
        "frozen": FrozenWeights(frozen) if defer_frozen else FrozenWeights(frozen).entry(),
        "optimizer": strategy.optimizer.state_dict(),
        "clock": {k: v for k, v in vars(strategy.clock).items() if isinstance(v, int)},
        "plugins": plugins,
    }
    loss = _loss_module(strategy)
    if loss is not None:
        state["loss"] = loss.state_dict()
    if hasattr(strategy, "sample_ids"):  # ids given to a benchmark's samples as they arrived
        state["sample_ids"] = strategy.sample_ids.state_dict()
    if hasattr(strategy, "checkpoint_state"):  # state a strategy keeps outside plugins (DER)
        state["extra"] = strategy.checkpoint_state()
    if getattr(strategy, "scaler", None) is not None:  # fp16: the loss scale it has learned
        state["scaler"] = strategy.scaler.state_dict()
    return state


def _loss_module(strategy: Any) -> torch.nn.Module | None:
    """The module holding the training loss's state (a contrastive strategy's loss, else the
    criterion when it is a module)."""
    loss = getattr(strategy, "contrastive_loss", strategy._criterion)
    return loss if isinstance(loss, torch.nn.Module) else None


def _split_frozen(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``model.state_dict()`` split into (what training can change, frozen parameters).

    Frozen parameters are rebuilt from the config on resume, so checkpoints hold only a
    fingerprint of them: an effnet-lite0-clip checkpoint shrinks from ~80 MB to ~1 MB.
    """
    frozen_names = {name for name, p in model.named_parameters() if not p.requires_grad}
    state = model.state_dict()
    trained = {k: v for k, v in state.items() if k not in frozen_names}
    frozen = {k: v for k, v in state.items() if k in frozen_names}
    return trained, frozen


def load_strategy_state(strategy: Any, state: dict[str, Any], train_stream: Any, *,
                        packed: bool = True) -> None:
    """Restore :func:`strategy_state` into a freshly built, identically configured strategy
    (``packed``: its model entry is packed, as from version 2 on)."""
    _, frozen = _split_frozen(strategy.model)
    if sorted(frozen) != state["frozen"]["keys"] or tensors_fingerprint(frozen) != state["frozen"]["fingerprint"]:
        raise CheckpointMismatchError(
            "the frozen weights of this model differ from those the checkpoint was trained on "
            "(another pretrained tag, checkpoint file or trainable setting?)"
        )
    if "sample_ids" in state:  # first: the replay memory finds its samples by these ids
        strategy.sample_ids.load_state_dict(state["sample_ids"])
    model_state = unpack_tensors(state["model"]) if packed else state["model"]
    strategy.model.load_state_dict(model_state, strict=False)
    # Avalanche adds every model parameter to the optimizer on its first make_optimizer call;
    # do that now so the saved optimizer state lines up with the same parameter list.
    strategy.make_optimizer()
    strategy.optimizer.load_state_dict(state["optimizer"])
    for key, value in state["clock"].items():
        setattr(strategy.clock, key, value)
    if "loss" in state:
        _loss_module(strategy).load_state_dict(state["loss"])
    if "extra" in state:
        strategy.load_checkpoint_state(state["extra"])
    if "scaler" in state and getattr(strategy, "scaler", None) is not None:
        strategy.scaler.load_state_dict(state["scaler"])
    by_name = {type(p).__name__: p for p in strategy.plugins}
    for name, saved in state["plugins"].items():
        if name not in by_name:
            raise CheckpointMismatchError(f"checkpoint has state for plugin {name}, not in this strategy")
        load_plugin_state(by_name[name], saved, strategy, train_stream)
    unsaved = sorted(n for n, p in by_name.items() if has_checkpoint_state(p) and n not in state["plugins"])
    if unsaved:
        raise CheckpointMismatchError(f"the checkpoint holds no state for plugin(s) {', '.join(unsaved)} "
                                      "of this strategy (saved by a run without them?)")


def save_checkpoint(path: str | os.PathLike, *, strategy: Any, experience: int,
                    config: dict[str, Any] | None = None,
                    rng_states: list[dict[str, Any]] | None = None) -> Path:
    """Write the state after finishing ``experience`` to ``path`` atomically (``config``: the
    run's settings, checked on resume; ``rng_states``: every process's RNG state, in rank order,
    when several train the run — each resumes with its own)."""
    return write_checkpoint(path, checkpoint_payload(strategy=strategy, experience=experience,
                                                     config=config, rng_states=rng_states))


def checkpoint_payload(*, strategy: Any, experience: int, config: dict[str, Any] | None = None,
                       rng_states: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What :func:`save_checkpoint` writes, as copies that share no tensor or container with the
    strategy (:func:`~avalanche_clip.training.checkpoint_writer.snapshot`): training may go on
    while :func:`write_checkpoint` writes it on another thread. The frozen weights, which
    training does not change, are fingerprinted there too (:class:`FrozenWeights`)."""
    state = strategy_state(strategy, defer_frozen=True)
    payload = snapshot({
        "version": CHECKPOINT_VERSION,
        "experience": int(experience),
        "config": dict(config or {}),
        "strategy": {key: value for key, value in state.items() if key != "model"},
        "rng": rng_states if rng_states is not None else capture_rng_state(),
    })
    payload["strategy"]["model"] = state["model"]  # packed: a copy already
    return payload


def write_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a :func:`checkpoint_payload` to ``path`` atomically (temp file, fsync, rename)."""
    frozen = payload["strategy"]["frozen"]
    if isinstance(frozen, FrozenWeights):
        payload = {**payload, "strategy": {**payload["strategy"], "frozen": frozen.entry()}}
    return atomic_write(path, lambda stream: torch.save(payload, stream))


def load_checkpoint(path: str | os.PathLike, *, strategy: Any, train_stream: Any,
                    config: dict[str, Any] | None = None) -> int:
    """Restore a checkpoint into ``strategy``; returns the last finished experience.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        CheckpointMismatchError: it was saved by a run with a different config (every key but
            :data:`RESUME_NEUTRAL_KEYS` must match) or another checkpoint version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = _read_payload(path)
    if payload.get("version") not in READABLE_VERSIONS:
        raise CheckpointMismatchError(
            f"checkpoint {path} has version {payload.get('version')!r}; expected one of "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    differences = config_differences(payload["config"], config or {})
    if differences:
        raise CheckpointMismatchError(
            f"checkpoint {path} was made with another config: " + "; ".join(differences)
        )
    try:
        load_strategy_state(strategy, payload["strategy"], train_stream, packed=payload["version"] >= 2)
        rng = payload["rng"]
        # one state per process (a distributed run): this process's; else the one there is
        restore_rng_state(rng[min(rank(), len(rng) - 1)] if isinstance(rng, list) else rng)
    except (KeyError, TypeError, IndexError, PackedTensorsError) as err:  # a readable file without our structure
        raise CheckpointDamagedError(_damaged(path, f"{type(err).__name__}: {err}")) from err
    return int(payload["experience"])


def _damaged(path: Path, reason: str) -> str:
    return f"checkpoint {path} is damaged ({reason}); delete it to restart the run"


def _read_payload(path: Path) -> dict[str, Any]:
    """The checkpoint's dict; :class:`CheckpointDamagedError` when the file is not one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... here
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointDamagedError(_damaged(path, reason)) from err
    missing = [key for key in _PAYLOAD_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise CheckpointDamagedError(_damaged(path, f"it lacks {', '.join(missing)}"))
    return payload


def check_records_cover(records: list[dict[str, Any]], experience: int, *,
                        records_path: Any, checkpoint_path: Any) -> None:
    """Refuse to resume from a checkpoint at ``experience`` unless ``records`` hold exactly one
    record for each experience ``0..experience``: later records (forgetting, the accuracy
    history) are computed from the earlier ones, so a gap would make them wrong."""
    have = [int(r["experience"]) for r in records]
    if have != list(range(experience + 1)):
        raise ResumeError(
            f"cannot resume: checkpoint {checkpoint_path} was saved after experience {experience}, "
            f"but {records_path} holds records for experiences {have or 'none'} instead of "
            f"0..{experience}; delete the checkpoint to restart the run from the beginning"
        )


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two configs, ignoring resume-neutral keys (and
    :data:`UNKNOWN_WHEN_ABSENT` keys that ``saved`` predates; a :data:`DEFAULT_WHEN_ABSENT` key
    it predates counts as its default)."""
    keys = (set(saved) | set(current)) - RESUME_NEUTRAL_KEYS
    keys -= {key for key in UNKNOWN_WHEN_ABSENT if key not in saved}
    missing = object()
    out = []
    for key in sorted(keys):
        a, b = saved.get(key, DEFAULT_WHEN_ABSENT.get(key, missing)), current.get(key, missing)
        if a != b:
            shown_a = "<absent>" if a is missing else repr(a)
            shown_b = "<absent>" if b is missing else repr(b)
            out.append(f"{key}: checkpoint {shown_a} vs now {shown_b}")
    return out
