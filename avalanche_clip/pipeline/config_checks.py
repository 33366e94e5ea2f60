"""The one check of a run config's values, run whenever a :class:`RunConfig` is made.

:func:`check_run_values` runs every check that needs no training data or model weights, in the
order a reader would fix them (types and ranges first, then names against the registries, then
the comparison protocol, then the strategy's options), and raises on the first problem with a
message naming the key, the value and what is expected. A rule owned by a lower layer (a
scenario's options, a template, the batch composition, a loss's range, a strategy's option
rules, ``StrategySetup``'s training values) is asked of that layer rather than restated here.

``RunConfig.__post_init__`` calls it, so every ``RunConfig`` in the program — parsed from a
mapping by :func:`~avalanche_clip.pipeline.config_parse.parse_run_config`, built with its
constructor or with ``.replace()`` — is valid, and the rest of the pipeline checks nothing
again. It reads the config's attributes only, so this module needs no import of the schema.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from typing import Any

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.common.paths import check_file_name, check_safe_name
from avalanche_clip.common.values import check_choice, check_int
from avalanche_clip.features import FEATURE_CACHE_CHOICES
from avalanche_clip.models import OFFLINE_MODELS
from avalanche_clip.models.factory import _resolve_pretrained, list_models
from avalanche_clip.models.precision import AMP_CHOICES
from avalanche_clip.models.prompts import resolve_templates
from avalanche_clip.models.trainable import parse_trainable
from avalanche_clip.pipeline.hyperparameters import check_hyperparameters
from avalanche_clip.pipeline.zscl_reference_checks import check_reference_apart
from avalanche_clip.scenarios import check_scenario_options, scenario_kind
from avalanche_clip.scenarios.heldout import parse_heldout_sets
from avalanche_clip.strategies import check_strategy, strategy_hparams, strategy_info
from avalanche_clip.strategies.negatives import TRAIN_LOGITS
from avalanche_clip.strategies.setup import HEADS, OPTIMIZERS, check_setup_values
from avalanche_clip.training.batching import check_composition, check_steps_per_experience

#: Scenarios that read no files (the rest need ``data_root``).
NEEDS_NO_ROOT = ("digits",)
#: Avalanche loggers a config may name (built by avalanche_clip.pipeline.run_loggers).
LOGGER_CHOICES = ("tensorboard", "csv", "wandb")
_BOOLEANS = ("zero_shot_floor", "checkpoint", "progress")
_CHOICES = (("amp", AMP_CHOICES), ("optimizer", OPTIMIZERS), ("feature_cache", FEATURE_CACHE_CHOICES))


def check_run_values(config: Any) -> None:
    """Check every value of ``config`` (a :class:`~avalanche_clip.pipeline.config_schema.RunConfig`
    being made); raises ``ConfigError`` (``ValueError`` / ``TypeError`` where a registry or a loss
    owns the rule) naming the first bad key and value."""
    _check_types(config)
    _check_names(config)
    _check_protocol(config)
    check_strategy(config.strategy, scenario_kind=scenario_kind(config.scenario),
                   mem_size=config.mem_size, hparams=config.options)
    check_hyperparameters(config.strategy, config.options)
    check_reference_apart(config)  # ZSCL's reference images are none of the retention sets'


def _check_types(config: Any) -> None:
    """Types and ranges that need no registry: the shared training values by StrategySetup's
    rule (the one each has), the rest by common.values's."""
    try:
        check_setup_values(config, lr_required=True)
        for key in ("num_workers", "seed"):
            check_int(key, getattr(config, key), 0)
        check_int("feature_views", config.feature_views, 1)
        for key in ("n_experiences", "image_size", "threads"):  # null: the scenario's / model's / torch's
            check_int(key, getattr(config, key), 1, nullable=True)
        check_int("tuned_at_mem_size", config.tuned_at_mem_size, 0, nullable=True)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for key in _BOOLEANS:
        if not isinstance(getattr(config, key), bool):
            raise ConfigError(f"{key} must be true or false, got {getattr(config, key)!r}")
    if not isinstance(config.strategy_options, dict) or not all(
        isinstance(v, dict) for v in config.strategy_options.values()
    ):
        tau = strategy_hparams("gcl")["tau"]  # the example names GCL's current default
        raise ConfigError(
            "strategy_options must map strategy names to mappings of hyper-parameters, e.g. "
            f"{{gcl: {{tau: {tau}}}}}, got {config.strategy_options!r}"
        )
    if not isinstance(config.scenario_options, dict):
        raise ConfigError(f"scenario_options must be a mapping, got {config.scenario_options!r}")
    loggers_problem = check_loggers(config.loggers)
    if loggers_problem:
        raise ConfigError(loggers_problem)


def check_loggers(value: Any) -> str | None:
    """Why ``value`` is not a valid ``loggers`` value (one line), or None when it is."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return f"loggers must be a list of logger names ({', '.join(LOGGER_CHOICES)}), got {value!r}"
    unknown = [name for name in value if name not in LOGGER_CHOICES]
    if unknown:
        return (f"unknown logger(s) {', '.join(map(repr, unknown))} in loggers; known loggers: "
                f"{', '.join(LOGGER_CHOICES)}")
    repeated = sorted({name for name in value if value.count(name) > 1})
    if repeated:
        return f"loggers lists {', '.join(map(repr, repeated))} more than once; name each logger once"
    if "wandb" in value and importlib.util.find_spec("wandb") is None:
        return "loggers: wandb needs the wandb package, which is not installed: pip install wandb"
    return None


def _check_names(config: Any) -> None:
    """Names against the registries: scenario and its options, labels, model, weights, templates."""
    check_scenario_options(config.scenario, config.scenario_options)
    if config.label is not None:  # null: the (registered, safe) scenario name
        check_safe_name(config.label, "label")
    check_safe_name(config.strategy, "strategy")
    if config.strategy_label is not None:
        check_safe_name(config.strategy_label, "strategy_label")
    check_file_name(config.run_id, "the run folder name")  # <out>/runs/<run id> in a sweep
    if config.train_epochs == 0 and strategy_info(config.strategy).trains:
        raise ConfigError(
            f"train_epochs=0 with strategy {config.strategy!r} would record an untrained model "
            f"as its result; use train_epochs >= 1 (the untrained model is strategy 'zero-shot')"
        )
    root = config.data_root
    if config.scenario not in NEEDS_NO_ROOT:
        if not root:
            raise ConfigError(f"scenario {config.scenario!r} needs data_root (a folder with its data)")
        # whether the data are there is checked with the weights (avalanche_clip.assets)
        if Path(root).exists() and not Path(root).is_dir():
            raise ConfigError(f"data_root {root!r} is a file; expected the folder holding the data "
                              f"of scenario {config.scenario!r}")
    models = list_models()
    if config.model not in models:
        close = difflib.get_close_matches(str(config.model), models, n=3)
        raise ConfigError(
            f"unknown model {config.model!r}; expected an open_clip architecture "
            f"(open_clip.list_models(), see 'avalanche-clip list') or one of {sorted(OFFLINE_MODELS)}"
            + (f"; closest: {', '.join(close)}" if close else "")
        )
    _resolve_pretrained(config.model, config.pretrained)
    parse_trainable(config.trainable)
    resolve_templates(config.templates)
    parse_heldout_sets(config.retention_sets)  # their classes against the stream's: when both are built
    try:
        for key, choices in _CHOICES:  # the owners' choices, by value and type (feature_cache=0 is not False)
            check_choice(key, getattr(config, key), choices)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config.feature_views > 1 and config.feature_cache is False:
        raise ConfigError(f"feature_views={config.feature_views} are views stored in the feature cache, "
                          "but feature_cache is false; set feature_cache to auto or true, or feature_views to 1")


def _check_protocol(config: Any) -> None:
    """The comparison-protocol keys: batch composition, head, step budget, negatives."""
    try:
        check_composition(config.replay_sampling, config.memory_share)
        check_steps_per_experience(config.steps_per_experience)
        check_choice("head", config.head, HEADS)
        check_choice("train_logits", config.train_logits, TRAIN_LOGITS)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for strategy, options in config.strategy_options.items():
        if "train_logits" in options:  # it was GCL / GDRO's own option before it was the protocol's
            raise ConfigError(
                f"strategy_options.{strategy}.train_logits={options['train_logits']!r}: train_logits is a "
                f"protocol key, the same for every method; set it at the top level (train_logits: "
                f"{' or '.join(TRAIN_LOGITS)}) instead"
            )


__all__ = ["LOGGER_CHOICES", "NEEDS_NO_ROOT", "check_loggers", "check_run_values"]
