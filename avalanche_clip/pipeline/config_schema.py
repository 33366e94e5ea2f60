"""The run config's schema: every run key, its type, default and meaning, written once.

:class:`RunConfig` is what the pipeline passes around once a config has been parsed
(:func:`avalanche_clip.pipeline.config_parse.parse_run_config` builds it from a mapping; the
constructor runs :func:`avalanche_clip.pipeline.config_checks.check_run_values`, the one check of
its values, so every ``RunConfig`` — also one made directly or with :meth:`RunConfig.replace` —
is valid). Its fields are the keys of a run config in the order ``config.yaml`` has always listed
them; :data:`RUN_KEYS` (``key → (default, meaning)``, for ``--help`` and the YAML loader) is
derived from them, so a default or a help line cannot disagree between the two.

:meth:`RunConfig.to_dict` gives back exactly the resolved mapping the run was parsed from — the
form written to ``config.yaml``, carried by checkpoints and compared on resume — so records and
committed run folders stay byte-identical to those made before the schema existed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from avalanche_clip.pipeline.config_checks import check_run_values
from avalanche_clip.scenarios.heldout import HeldOutSet, parse_heldout_sets


def _key(default: Any, meaning: str) -> Any:
    """A field with ``default`` (mappings and lists copied per instance) and its help line."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": meaning})
    return field(default=default, metadata={"help": meaning})


@dataclass(frozen=True)
class RunConfig:
    """One run (scenario × strategy × memory × seed): see the module docstring.

    Build it with ``parse_run_config`` (a mapping: unknown keys refused), or directly, or with
    :meth:`replace`: the constructor checks every value (``ConfigError`` naming the first bad one).
    """

    # -- scenario ---------------------------------------------------------------------------
    scenario: str = _key("digits", "registered scenario name (avalanche-clip list)")
    label: str | None = _key(None, "name of the scenario in records and reports (default: the scenario name)")
    data_root: str | None = _key(None, "data root of the scenario (not needed by digits)")
    n_experiences: int | None = _key(None, "stream length (default: the scenario's)")
    domains: list[str] | None = _key(None, "domain-incremental: domain names in stream order")
    scenario_options: dict[str, Any] = _key(
        {}, "extra build_scenario options (max_train_per_class, decode_cache, ...)")
    # -- model ------------------------------------------------------------------------------
    model: str = _key("effnet-lite0-clip", "open_clip architecture or offline config")
    pretrained: str | None = _key(
        "default", "open_clip tag, offline tag or local checkpoint path (null: random "
        "init); default: the model's own (avalanche-clip list); records name the tag that ran")
    image_size: int | None = _key(None, "input resolution override")
    templates: str | list[str] = _key("photo", "prompt template set or list of '{}' templates")
    trainable: str = _key("projections", "what trains: all, image, text, projections, last:K, none")
    # -- strategy ---------------------------------------------------------------------------
    strategy: str = _key("gcl", "registered strategy name")
    strategy_label: str | None = _key(
        None, "name of the method in records and reports (default: the strategy name; sweep variants set it)")
    strategy_options: dict[str, dict[str, Any]] = _key(
        {}, "per-strategy hyper-parameters: {strategy: {name: value}}")
    tuned_at_mem_size: int | None = _key(
        None, "memory size at which the strategy's tuned values were tuned (set by a sweep applying a "
        "tuned.yaml: the tuned size nearest mem_size; null: not tuned)")
    # -- protocol: the same for every method of a comparison -----------------------------------
    mem_size: int = _key(0, "total replay memory (samples)")
    train_epochs: int = _key(
        1, "epochs per experience: passes over each experience's new data (the step budget)")
    steps_per_experience: int | None = _key(
        None, "explicit step budget per experience, the same for every method (null: train_epochs "
        "passes over the new data)")
    replay_sampling: str = _key(
        "union", "batch composition of every replay method: union (uniform over new data ∪ memory) or share")
    memory_share: float = _key(0.5, "memory fraction of each batch with replay_sampling=share")
    head: str = _key(
        "text", "classifier of every method: text (CLIP prompts over the seen classes) or linear (ablation)")
    train_logits: str = _key(
        "batch", "classes every trained method's classification or contrastive logits range over: batch "
        "(those present in the batch, new data ∪ memory) or seen (every class seen so far)")
    train_mb_size: int = _key(32, "training mini-batch size")
    eval_mb_size: int = _key(256, "evaluation mini-batch size")
    lr: float = _key(1e-3, "learning rate (same for every method)")
    weight_decay: float = _key(0.1, "weight decay (same for every method)")
    optimizer: str = _key("adamw", "adamw or sgd (same for every method)")
    amp: str = _key("fp32", "mixed precision on CUDA: fp32, bf16, fp16")
    seed: int = _key(0, "seed of the class order, initialisation and sampling")
    # -- execution: where and how the run computes -------------------------------------------
    device: str = _key("cpu", "cpu, cuda, cuda:N")
    num_workers: int = _key(0, "data-loader worker processes")
    threads: int | None = _key(
        None, "torch intra-op threads of each run (default: torch's, one per core; "
        "1 under sweep --workers auto, cores / N under --workers N); threads=1 beside other jobs")
    feature_cache: str | bool = _key(
        "auto", "reuse frozen image-trunk features across runs: auto (when the trunk is frozen), "
        "true (required), false")
    feature_views: int = _key(
        1, "views of each training image in the feature cache: 1 the un-augmented image; V > 1: V "
        "views by the model's train transform, drawn alike for every method (Co2L, CaSSLe: two per item)")
    cache_dir: str | None = _key(
        None, "feature cache folder (default: $AVALANCHE_CLIP_CACHE or ~/.cache/avalanche-clip)")
    zero_shot_floor: bool = _key(True, "record the zero-shot accuracy of the untrained model")
    retention_sets: list[dict[str, Any]] = _key(
        [], "held-out sets scored zero-shot after every experience (retention): [{name, folder | "
        "scenario (+ data_root, domains, split), classes, max_per_class}], classes disjoint from the stream's")
    checkpoint: bool = _key(True, "checkpoint at every experience boundary but the last (resumable runs)")
    progress: bool = _key(True, "progress bars")
    world_size: int | None = _key(
        None, "processes that trained the run: run writes torchrun's count (1 in one "
        "process) to config.yaml; a value given here is replaced by the launch's")
    loggers: list[str] = _key(
        [], "Avalanche loggers besides the text log, under the run folder's logs/: any of "
        "tensorboard, csv, wandb (offline unless WANDB_MODE, WANDB_API_KEY or wandb login set it up)")

    def __post_init__(self) -> None:
        check_run_values(self)

    def to_dict(self) -> dict[str, Any]:
        """The resolved mapping (a deep copy), keys in schema order: what ``config.yaml`` holds.
        A key of :data:`WRITTEN_WHEN_SET` at its default is left out, so the configs (and sweep
        folders) of runs that do not use it stay those written before it existed."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)
                if not (f.name in WRITTEN_WHEN_SET and getattr(self, f.name) == _default(f))}

    @property
    def retention(self) -> tuple[HeldOutSet, ...]:
        """``retention_sets`` typed (checked when the config was made)."""
        return parse_heldout_sets(self.retention_sets)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes``, checked as any ``RunConfig`` is when made."""
        return RunConfig(**{**self.to_dict(), **changes})

    @property
    def scenario_label(self) -> str:
        """The scenario's name in records and reports: ``label``, else the scenario name."""
        return scenario_label(self.to_scenario_keys())

    @property
    def method_label(self) -> str:
        """The method's name in records and reports: ``strategy_label`` (a sweep variant such as
        ``gcl-reset``), else the registered strategy name."""
        return self.strategy_label or self.strategy

    @property
    def run_id(self) -> str:
        """``<scenario label>__<method label>__m<mem_size>__s<seed>``: the run folder's name."""
        return f"{self.scenario_label}__{self.method_label}__m{self.mem_size}__s{self.seed}"

    @property
    def options(self) -> dict[str, Any]:
        """The options given to this run's strategy (a copy; defaults are the registry's)."""
        return copy.deepcopy(self.strategy_options.get(self.strategy, {}))

    @property
    def method_epochs(self) -> int:
        """The epochs this run's method trains: its own ``train_epochs`` option, else the run's."""
        return self.strategy_options.get(self.strategy, {}).get("train_epochs") or self.train_epochs

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """What the method ran with, for its records: its learning rate and epochs (the
        per-method value, else the run's) and every option given to it."""
        options = self.options
        options.pop("train_epochs", None)
        values = {"lr": options.pop("lr", None) or self.lr, "train_epochs": self.method_epochs, **options}
        # only when tuned: the records of untuned runs stay as they were before the key existed
        return values if self.tuned_at_mem_size is None else {**values, "tuned_at_mem_size": self.tuned_at_mem_size}

    def to_scenario_keys(self) -> dict[str, Any]:
        """The scenario keys (:data:`SCENARIO_KEYS`) of this run."""
        return {key: copy.deepcopy(getattr(self, key)) for key in SCENARIO_KEYS}


def _default(spec: Any) -> Any:
    return copy.deepcopy(spec.default) if spec.default is not MISSING else spec.default_factory()


#: Every run key: ``key → (default, meaning)``, in schema order (derived from :class:`RunConfig`).
RUN_KEYS: dict[str, tuple[Any, str]] = {spec.name: (_default(spec), spec.metadata["help"])
                                        for spec in fields(RunConfig)}
#: Keys written to ``config.yaml`` only when they differ from their default (added later).
WRITTEN_WHEN_SET = ("retention_sets",)
#: The keys that make a scenario; a sweep's ``scenarios`` entries may set only these.
SCENARIO_KEYS = ("scenario", "label", "data_root", "n_experiences", "domains", "scenario_options")


def scenario_label(scenario_keys: Mapping[str, Any]) -> str:
    """A scenario's name in records and reports: its ``label``, else its scenario name (also for
    the scenario entries of a sweep config, which are not runs yet)."""
    return scenario_keys.get("label") or scenario_keys["scenario"]


def default_run_config() -> dict[str, Any]:
    """Every run key with its default (a fresh copy)."""
    return RunConfig().to_dict()


__all__ = ["RUN_KEYS", "SCENARIO_KEYS", "WRITTEN_WHEN_SET", "RunConfig", "default_run_config", "scenario_label"]
