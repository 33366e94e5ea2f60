"""One run from a resolved config: validate, build, train, record.

:func:`~avalanche_clip.pipeline.config_parse.parse_run_config` checks every name and value before
anything heavy happens and gives the typed :class:`RunConfig` this module reads (a mapping given
to ``prepare_run`` or ``execute_run`` is parsed there, once); ``prepare_run`` builds the model, the stream (through the feature cache when the image trunk is
frozen), the classifier and the strategy; ``execute_run`` trains with records and checkpoints in
a run folder::

    <out>/config.yaml      the resolved config
    <out>/results.jsonl    one record per evaluation (see avalanche_clip.pipeline.run_loop)
    <out>/checkpoint.pt    the last experience boundary (deleted once the run has finished)
    <out>/avalanche.log    Avalanche's text log of every metric
    <out>/logs/            the loggers the config names (:mod:`avalanche_clip.pipeline.run_loggers`)

Records and checkpoints carry the data's fingerprint (:mod:`avalanche_clip.pipeline.data_identity`): a
finished or interrupted run is reused only for the same data. Training stops with a clear error
when it diverges (:mod:`avalanche_clip.training.plugins.finite_guard`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avalanche_clip.assets import check_assets
from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.common.device import check_device
from avalanche_clip.common.errors import check_writable_dir, writing
from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.evaluation.zero_shot import prompt_head_accuracy
from avalanche_clip.features import apply_feature_cache, default_cache_dir
from avalanche_clip.models import CLIPClassifier
from avalanche_clip.pipeline.built_models import fresh_clip
from avalanche_clip.pipeline.config import ConfigError, dump_yaml
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.data_identity import (
    FIELD,
    check_same_data,
    run_data_fingerprint,
    warn_unknown_data,
)
from avalanche_clip.pipeline.retention import RetentionProbe, build_retention_probe
from avalanche_clip.pipeline.run_lock import job_folder_lock
from avalanche_clip.pipeline.run_loggers import config_loggers
from avalanche_clip.pipeline.run_loop import ContinualRun, make_evaluator, read_records
from avalanche_clip.pipeline.zscl_reference import build_zscl_reference
from avalanche_clip.scenarios import build_scenario
from avalanche_clip.strategies import STRATEGIES, StrategySetup, build_strategy, strategy_info
from avalanche_clip.training.checkpoint import config_differences
from avalanche_clip.training.distributed import barrier, is_main, reseed_for_rank, world_size
from avalanche_clip.training.plugins.finite_guard import FiniteGuardPlugin
from avalanche_clip.training.seeding import seed_everything


class MemorySizeWarning(UserWarning):
    """``mem_size`` exceeds what the memory can ever hold."""


@dataclass
class PreparedRun:
    """Everything one run needs, built and ready to train."""

    config: RunConfig
    strategy: Any
    benchmark: Any
    classifier: CLIPClassifier
    identity: dict[str, Any]
    retention: RetentionProbe | None = None  # the held-out sets (config.retention_sets), if any


def build_benchmark_and_classifier(config: RunConfig, *, with_index: bool,
                                   augment: bool = True) -> tuple[Any, CLIPClassifier]:
    """The (possibly feature-cached) stream and a fresh zero-shot classifier for ``config``
    (``feature_views`` cached views per training image, as many per item as the strategy asks).

    ``augment=False`` trains on eval-transformed images, as training on the feature cache
    does (which encodes each image once, with the eval transform); for comparing the two.
    """
    return _build_run(config, with_index=with_index, augment=augment)[:2]


def _build_run(config: RunConfig, *, with_index: bool,
               augment: bool) -> tuple[Any, CLIPClassifier, Any, Any]:
    """:func:`build_benchmark_and_classifier`'s stream and classifier, then the model's eval
    transform and tokenizer (what the retention sets' heads are built with)."""
    # seeded, then built (or copied from this process's first build of the same model and seed)
    model, train_tf, eval_tf, tokenizer = fresh_clip(
        config.model, config.pretrained, device=config.device, image_size=config.image_size,
        seed=config.seed, trainable=config.trainable,
    )
    benchmark = build_scenario(
        config.scenario, root=config.data_root, n_experiences=config.n_experiences,
        seed=config.seed, domains=config.domains, with_index=with_index,
        train_transform=train_tf if augment else eval_tf, eval_transform=eval_tf,
        **config.scenario_options,
    )
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names, config.templates)
    benchmark = apply_feature_cache(
        benchmark, classifier, mode=config.feature_cache, trainable=config.trainable,
        cache_dir=config.cache_dir or default_cache_dir(), device=config.device,
        batch_size=config.eval_mb_size, num_workers=config.num_workers,
        progress=config.progress, views=config.feature_views,
        views_per_item=strategy_info(config.strategy).views_per_item,
    )
    return benchmark, classifier.to(config.device), eval_tf, tokenizer


def view_fields(benchmark: Any) -> dict[str, int]:
    """``feature_views`` and ``views_per_item`` for the records of a run on cached augmented
    views (``feature_views > 1``); empty otherwise, so records of one un-augmented view equal
    those written before the fields existed."""
    cache = getattr(benchmark, "feature_cache", None) or {}
    if cache.get("views", 1) == 1:
        return {}
    return {"feature_views": cache["views"], "views_per_item": cache["views_per_item"]}


def zero_shot_accuracy(classifier: CLIPClassifier, benchmark: Any, *, device: str,
                       batch_size: int, num_workers: int = 0) -> float:
    """Accuracy of the untrained classifier on the whole test stream, every class visible
    (:func:`~avalanche_clip.evaluation.zero_shot.prompt_head_accuracy`)."""
    return prompt_head_accuracy(classifier, benchmark, device=device, batch_size=batch_size,
                                num_workers=num_workers)


def prepare_run(config: Mapping[str, Any] | RunConfig, *, loggers: tuple = (), plugins: tuple = (),
                zero_shot: float | None = None, augment: bool = True,
                data_fingerprint: str | None = None) -> PreparedRun:
    """Build the strategy of ``config`` (parsed here when given as a mapping; see the module
    docstring; ``augment``: see :func:`build_benchmark_and_classifier`; ``data_fingerprint``: see
    :mod:`avalanche_clip.pipeline.data_identity`, computed when not given)."""
    config = parse_run_config(config)
    if data_fingerprint is None:
        data_fingerprint = run_data_fingerprint(config)
    info = strategy_info(config.strategy)
    benchmark, classifier, eval_tf, tokenizer = _build_run(config, with_index=info.uses_index,
                                                           augment=augment)
    if config.mem_size > benchmark.num_train_samples:
        warnings.warn(
            f"mem_size={config.mem_size} is larger than the training set "
            f"({benchmark.num_train_samples} samples): the memory never fills, and the run is "
            "one with a memory holding every training sample", MemorySizeWarning, stacklevel=2,
        )
    if config.zero_shot_floor and zero_shot is None:
        zero_shot = zero_shot_accuracy(classifier, benchmark, device=config.device,
                                       batch_size=config.eval_mb_size, num_workers=config.num_workers)
    retention = build_retention_probe(config, classifier.clip, tokenizer, eval_tf, benchmark.class_names)
    options = config.options
    reference = build_zscl_reference(config, classifier.clip, tokenizer, eval_tf)
    if reference is not None:  # the config's entry, built (ZSCL's reference images and texts)
        options["reference"] = reference
    setup = StrategySetup(
        classifier=classifier, benchmark=benchmark, device=config.device,
        mem_size=config.mem_size, train_mb_size=config.train_mb_size,
        eval_mb_size=config.eval_mb_size, train_epochs=config.train_epochs,
        lr=config.lr, weight_decay=config.weight_decay, optimizer=config.optimizer,
        amp=config.amp, plugins=[FiniteGuardPlugin(), *plugins], evaluator=make_evaluator(loggers),
        seed=config.seed, replay_sampling=config.replay_sampling,
        memory_share=config.memory_share, steps_per_experience=config.steps_per_experience,
        head=config.head, train_logits=config.train_logits,
    )
    seed_everything(config.seed)
    strategy = build_strategy(config.strategy, setup, **options)
    reseed_for_rank(config.seed)  # several processes: their own augmentation streams
    identity = {
        "run_id": config.run_id, "scenario": config.scenario_label,
        "scenario_name": config.scenario, "strategy": config.method_label,
        "method": config.strategy,
        "mem_size": config.mem_size, "seed": config.seed, "model": config.model,
        "pretrained": config.pretrained, "trainable": config.trainable,
        "train_logits": config.train_logits,  # the protocol's, recorded for every method (zero-shot too)
        "hyperparameters": config.hyperparameters,
        "zero_shot_accuracy": zero_shot, "data_fingerprint": data_fingerprint,
        **view_fields(benchmark),
    }
    if config.tuned_at_mem_size is not None:  # a tuned sweep's run; others' records stay as they were
        identity["tuned_at_mem_size"] = config.tuned_at_mem_size
    return PreparedRun(config, strategy, benchmark, classifier, identity, retention)


def execute_run(config: Mapping[str, Any] | RunConfig, out_dir: str | Path, *, resume: bool = False,
                zero_shot: float | None = None,
                data_fingerprint: str | None = None) -> list[dict[str, Any]]:
    """Run ``config`` in ``out_dir`` (see the module docstring); returns its records.

    A finished run is returned as is. An unfinished one continues only with ``resume=True``
    (from its checkpoint, or from the start when the strategy cannot be checkpointed); without
    it, an existing unfinished run is an error rather than something silently overwritten. Either
    is reused only for the same data (``data_fingerprint``: computed when not given). While it
    runs, another process in ``out_dir`` stops with :class:`~avalanche_clip.pipeline.run_lock.RunFolderBusyError`.
    """
    out = Path(out_dir)
    config = parse_run_config(config)
    check_assets([config.to_dict()])  # missing weights or data: one error now, not minutes of retries later
    with job_folder_lock(out):  # one process (or torchrun job) at a time in a folder
        return _execute_in_folder(config, out, resume=resume, zero_shot=zero_shot,
                                  data_fingerprint=data_fingerprint)


def _execute_in_folder(config: RunConfig, out: Path, *, resume: bool, zero_shot: float | None,
                       data_fingerprint: str | None) -> list[dict[str, Any]]:
    """:func:`execute_run` once the run folder is held: nothing else writes it meanwhile."""
    records_path, config_path = out / "results.jsonl", out / "config.yaml"
    existing = read_records(records_path)
    if config_path.is_file():  # before returning a finished run: it must be the same run
        check_same_config(config_path, config)
    fingerprint = data_fingerprint or run_data_fingerprint(config)
    if existing and not check_same_data(existing, fingerprint, out):
        warn_unknown_data([out])
    if existing and existing[-1].get("final"):
        return existing
    if config_path.is_file():
        if not resume and (existing or (out / "checkpoint.pt").is_file()):
            raise ConfigError(f"{out} holds an unfinished run; pass --resume to continue it or choose another --out")
    check_device(config.device)  # here, not in parse_run_config: a GPU sweep plans anywhere
    check_distributed_strategy(config.strategy)
    check_writable_dir(out)  # a read-only or full folder: one clear error before any work
    from avalanche.logging import TextLogger

    # several processes: rank 0 writes the log, the config, the records and the checkpoints
    log_path = out / "avalanche.log" if is_main() else Path(os.devnull)
    with writing(out), log_path.open("a") as log, \
            config_loggers(config, out, run_name=config.run_id, enabled=is_main()) as loggers:
        prepared = prepare_run(config, loggers=(TextLogger(log), *loggers) if is_main() else (),
                               zero_shot=zero_shot, data_fingerprint=fingerprint)
        if is_main():  # written once the run is built, so a config that fails to build can be corrected
            atomic_write_text(config_path, dump_yaml({**config.to_dict(), "world_size": world_size()}))
        info = strategy_info(config.strategy)
        checkpoint = out / "checkpoint.pt" if config.checkpoint else None
        run = ContinualRun(
            prepared.strategy, prepared.benchmark, identity=prepared.identity,
            records_path=records_path, checkpoint_path=checkpoint,
            config={**config.to_dict(), FIELD: fingerprint},  # checkpoints refuse other data on resume
            joint=info.joint, checkpointable=info.checkpointable, final_checkpoint=False,
            progress=config.progress,
            retention=prepared.retention.record_fields if prepared.retention else None,
        )
        records = run.run(resume=resume)
    if checkpoint is not None and records and records[-1]["final"] and is_main():
        checkpoint.unlink(missing_ok=True)  # the records are the result; checkpoints are large
    barrier()
    return records


def check_distributed_strategy(name: str) -> None:
    """Under several processes, refuse a strategy that would not train as in one process."""
    if world_size() > 1 and not strategy_info(name).distributed:
        supported = [n for n in STRATEGIES.list() if strategy_info(n).distributed]
        raise ConfigError(
            f"strategy {name!r} does not support distributed training ({world_size()} processes); "
            f"supported: {', '.join(supported)}; run it in one process"
        )


def check_same_config(path: Path, config: RunConfig) -> None:
    """Refuse a run folder whose ``config.yaml`` holds another config than ``config``."""
    saved = read_yaml(path.read_text()) or {}
    differences = config_differences(saved, config.to_dict())
    if differences:
        raise ConfigError(
            f"{path.parent} holds a run with another config ({'; '.join(differences)}); "
            "choose another --out"
        )
