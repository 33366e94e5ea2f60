"""Class- and domain-incremental Avalanche streams whose items carry a global sample index.

One entry point::

    from avalanche_clip.scenarios import build_scenario, seen_test_experiences

    bm = build_scenario("digits", n_experiences=5, seed=0)          # offline, bundled data
    bm.class_names, bm.num_classes, bm.num_train_samples, bm.scenario_kind
    for t, exp in enumerate(bm.train_stream):
        exp.classes_in_this_experience        # CIL; DIL experiences have exp.domain
        ...
        strategy.eval(seen_test_experiences(bm, t))                   # test_stream[:t+1]

Registered scenarios (``list_scenarios()``): ``split-cifar100``, ``split-imagenet``,
``split-imagefolder``, ``domainnet``, ``domain-folder``, ``digits``.

Mini-batch layout (the task-label trap: Avalanche reads the task label from ``mbatch[-1]``)::

    with_index=True  -> (x, y, idx, t)   idx = mbatch[SAMPLE_INDEX_POSITION] (== 2)
    with_index=False -> (x, y, t)        same samples, same order, for Avalanche's baselines

``idx`` is the position in the benchmark's full train set (test streams: in the full test set);
it is the Avalanche DataAttribute ``SAMPLE_INDEX_ATTR`` (``"sample_idx"``), kept through subsets
and replay buffers.

Layers: *sources* (:class:`DataSource`: plain torch datasets of ``(input, label)`` + targets,
domain ids, class names) and *stream builders* (:func:`build_streams`). The benchmark keeps
both (``bm.source``, ``bm.stream_options``), so :func:`rebuild_scenario` rebuilds the identical
streams over replacement data (e.g. cached features computed on
``unaugmented_dataset(bm, "train")``, the train set with the eval transform in index order).
"""

from typing import Any

from avalanche_clip.scenarios import catalog, cifar100, digits  # noqa: F401  (register the scenarios)
from avalanche_clip.scenarios.catalog import DOMAINNET_DOMAINS, imagenet_class_names
from avalanche_clip.scenarios.errors import DataLayoutError, ImageReadError, MissingDataError
from avalanche_clip.scenarios.image_files import ArrayImageDataset, ImageFileDataset, read_image
from avalanche_clip.scenarios.registry import (
    COMMON_OPTIONS,
    SCENARIOS,
    build_source,
    check_scenario_options,
    list_scenarios,
    scenario_kind,
    source_options,
)
from avalanche_clip.scenarios.source import (
    CLASS_INCREMENTAL,
    DOMAIN_INCREMENTAL,
    DataSource,
    SplitData,
    prepare_source,
    subsample_source,
)

#: Names whose modules import Avalanche (``import avalanche`` alone costs ~10 s): each is imported
#: from its module of this package on first access (PEP 562), so that reading the registry above
#: (``avalanche-clip list``, config checks) does not pay for it.
_LAZY = {
    "build_scenario": "build", "default_transform": "build", "scenario_source": "build",
    "SAMPLE_INDEX_ATTR": "indexing", "SAMPLE_INDEX_POSITION": "indexing",
    "TASK_LABEL_POSITION": "indexing", "has_sample_index": "indexing",
    "make_stream_dataset": "indexing", "sample_index": "indexing",
    "TensorInputs": "rebuild", "augmented_dataset": "rebuild", "rebuild_scenario": "rebuild",
    "unaugmented_dataset": "rebuild",
    "StreamOptions": "streams", "build_streams": "streams", "seeded_class_order": "streams",
    "seen_test_experiences": "streams",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from avalanche_clip.scenarios import build, indexing, rebuild, streams

        modules = {"build": build, "indexing": indexing, "rebuild": rebuild, "streams": streams}
        value = getattr(modules[_LAZY[name]], name)
        globals()[name] = value  # later lookups find it without this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLASS_INCREMENTAL",
    "COMMON_OPTIONS",
    "DOMAINNET_DOMAINS",
    "DOMAIN_INCREMENTAL",
    "SAMPLE_INDEX_ATTR",
    "SAMPLE_INDEX_POSITION",
    "SCENARIOS",
    "TASK_LABEL_POSITION",
    "ArrayImageDataset",
    "DataLayoutError",
    "DataSource",
    "ImageFileDataset",
    "ImageReadError",
    "MissingDataError",
    "SplitData",
    "StreamOptions",
    "TensorInputs",
    "augmented_dataset",
    "build_scenario",
    "build_source",
    "build_streams",
    "check_scenario_options",
    "default_transform",
    "has_sample_index",
    "imagenet_class_names",
    "list_scenarios",
    "make_stream_dataset",
    "prepare_source",
    "read_image",
    "rebuild_scenario",
    "sample_index",
    "scenario_kind",
    "scenario_source",
    "seeded_class_order",
    "seen_test_experiences",
    "source_options",
    "subsample_source",
    "unaugmented_dataset",
]
