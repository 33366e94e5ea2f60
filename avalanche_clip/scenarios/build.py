""":func:`build_scenario`, the one entry point: a registered scenario
(:mod:`avalanche_clip.scenarios.registry`) as an Avalanche benchmark.

:func:`build_scenario` builds the source, subsamples / verifies / decodes it as asked, and hands
it to the stream builder.

Example::

    bm = build_scenario("split-imagefolder", root=data_root / "cifar10", n_experiences=5, seed=0,
                        train_transform=preprocess_train, eval_transform=preprocess_val)
    for t, exp in enumerate(bm.train_stream):
        strategy.train(exp)
        strategy.eval(seen_test_experiences(bm, t))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from avalanche.benchmarks.scenarios.generic_scenario import CLScenario

from avalanche_clip.scenarios.registry import (
    COMMON_OPTIONS,
    build_source,
    check_scenario_options,
    scenario_kind,
)
from avalanche_clip.scenarios.source import (
    CLASS_INCREMENTAL,
    DataSource,
    prepare_source,
    subsample_source,
)
from avalanche_clip.scenarios.streams import (
    StreamOptions,
    build_streams,
    check_class_order,
    seeded_class_order,
)
from avalanche_clip.scenarios.validation import carve_validation


def default_transform() -> Callable:
    """``ToTensor()``: PIL image → float tensor in [0, 1], what a stream uses when given none."""
    from torchvision.transforms import ToTensor

    return ToTensor()


def _subsampled(source: DataSource, common: dict[str, Any]) -> DataSource:
    """``source`` subsampled as the common options say (the subsampling keys are popped)."""
    return subsample_source(
        source,
        max_train_per_class=common.pop("max_train_per_class", None),
        max_test_per_class=common.pop("max_test_per_class", None),
        seed=int(common.pop("subsample_seed", 0)),
    )


def scenario_source(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    domains: Sequence[str] | None = None,
    **options: Any,
) -> DataSource:
    """The samples ``build_scenario(name, root=..., domains=..., **options)`` serves, before any
    image is decoded: the source, subsampled. Options that only change how images are read
    (``verify``, ``decode_cache``, ...) or the stream order (``class_order``) are ignored."""
    check_scenario_options(name, options)
    common = {k: options.pop(k) for k in list(options) if k in COMMON_OPTIONS}
    train_only = common.get("validation_fraction") is not None  # the test split is never read
    return _subsampled(build_source(name, root=root, domains=domains, train_only=train_only,
                                    **options), common)


def build_scenario(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    n_experiences: int | None = None,
    seed: int = 0,
    domains: Sequence[str] | None = None,
    with_index: bool = True,
    train_transform: Callable | None = None,
    eval_transform: Callable | None = None,
    **options: Any,
) -> CLScenario:
    """Build the registered scenario ``name`` as an Avalanche benchmark.

    Args:
        name: a registered scenario (``list_scenarios()``).
        root: the data root (not used by ``digits``).
        n_experiences: stream length (class-incremental: must divide the classes; default per
            scenario; domain-incremental: the number of domains, the only accepted value).
        seed: draws the class order of class-incremental streams (private ``torch.Generator``;
            the global RNG is untouched). Domain-incremental streams follow ``domains``.
        domains: domain-incremental only: which domains, in stream order (names).
        with_index: items ``(x, y, idx, t)`` (True) or ``(x, y, t)`` (False, for Avalanche's
            baselines); otherwise the streams are identical sample for sample.
        train_transform: applied to training items (PIL images); None: ``eval_transform`` if
            given, else ``ToTensor()``.
        eval_transform: applied to test items and to training items in eval mode; None:
            ``ToTensor()``.
        **options: :data:`COMMON_OPTIONS` and the scenario's own (``source_options(name)``).

    Returns:
        A ``CLScenario`` with ``train_stream`` / ``test_stream`` and the attributes listed in
        :mod:`avalanche_clip.scenarios.streams` (``class_names``, ``num_classes``,
        ``num_train_samples``, ``scenario_kind``, ``source``, ``stream_options``, ...).
    """
    kind = scenario_kind(name)
    check_scenario_options(name, options)
    common = {k: options.pop(k) for k in list(options) if k in COMMON_OPTIONS}
    class_order = common.pop("class_order", None)
    if class_order is not None and kind != CLASS_INCREMENTAL:
        raise ValueError(f"class_order applies to class-incremental scenarios; {name!r} is {kind}")

    validation = common.pop("validation_fraction", None)
    source = _subsampled(build_source(name, root=root, domains=domains,
                                      train_only=validation is not None, **options), common)
    if validation is not None:
        source = carve_validation(source, float(validation), seed)
    source = prepare_source(source, **common)

    if kind == CLASS_INCREMENTAL:
        n_exp = n_experiences if n_experiences is not None else source.default_n_experiences
        if n_exp is None:
            raise ValueError(
                f"scenario {name!r} needs n_experiences (it has {source.num_classes} classes)"
            )
        order = (
            check_class_order(class_order, source.num_classes)
            if class_order is not None
            else seeded_class_order(source.num_classes, seed)
        )
    else:
        n_exp = n_experiences if n_experiences is not None else len(source.domain_names or [])
        order = list(range(source.num_classes))

    if eval_transform is None:
        eval_transform = default_transform()
    if train_transform is None:
        train_transform = eval_transform
    stream_options = StreamOptions(
        kind=kind,
        n_experiences=int(n_exp),
        seed=int(seed),
        class_order=tuple(order),
        with_index=bool(with_index),
        train_transform=train_transform,
        eval_transform=eval_transform,
    )
    return build_streams(source, stream_options)


__all__ = ["build_scenario", "default_transform", "scenario_source"]
