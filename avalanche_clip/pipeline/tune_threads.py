"""Torch's thread count in tuning: what a re-score must match.

On a CPU torch splits a sum (a matrix product, a reduction) across its intra-op threads, so the
last bits of a result depend on how many there are, and a run that amplifies such a difference (a
high learning rate, many steps) ends at another accuracy: a study's score is reproducible on one
machine *and thread count*. Measured on the PACS proxy (``gcl`` at memory 200, lr 5.0e-3): one
thread scores 0.75422 on validation, as the tune's run did; two threads 0.74609, the runs
agreeing until their third experience. So every study records the count it ended under
(``threads`` in ``tuned.yaml``, :class:`~avalanche_clip.pipeline.tuned_values.TunedStudy`) and
``check-optimum`` re-scores under it, refusing a mismatch before any run and a finished re-score
run of another count instead of reusing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.pipeline.config import ConfigError


def refuse_other_threads(studies: dict[str, dict[str, Any]], threads: int) -> None:
    """``ConfigError`` naming the first study (``{name: study}``) that records another torch
    thread count than ``threads`` (a study without one, from an older tune, passes)."""
    for name, study in studies.items():
        recorded = study.get("threads")
        if recorded is not None and recorded != threads:
            raise ConfigError(
                f"study {name} was tuned with {recorded} torch threads and this check runs with {threads}: "
                f"CPU sums depend on the thread count, so its score would not reproduce; pass threads={recorded} "
                "(or leave threads unset: the command line then applies the tune's)")


def record_threads(config: Any, studies: dict[str, dict[str, Any]]) -> Any:
    """The sweep ``config`` with torch's current thread count as its ``threads`` (so every re-score
    run records it), after :func:`refuse_other_threads` on ``studies`` (``{name: study}``)."""
    import torch

    threads = torch.get_num_threads()
    refuse_other_threads(studies, threads)
    return config.replace(shared={**config.shared, "threads": threads})


def tuned_threads(document: dict[str, Any]) -> int | None:
    """The torch thread count the studies of a ``tuned.yaml`` document record, when they all
    record the same one (None: none recorded, or several counts)."""
    counts = {study.get("threads") for entry in document["strategies"].values()
              for study in entry["by_mem_size"].values()}
    return counts.pop() if len(counts) == 1 and None not in counts else None


def refuse_reused_runs(folder: Path, threads: int) -> None:
    """``ConfigError`` when ``folder`` holds a re-score run made under another torch thread count
    than ``threads`` (its score would be another count's, not this check's)."""
    for path in sorted(folder.glob("*/config.yaml")):
        saved = (read_yaml(path.read_text()) or {}).get("threads")
        if saved != threads:
            raise ConfigError(f"{path.parent} holds a re-score run made with threads={saved!r}, and this check "
                              f"runs with {threads}: its score is not this thread count's; remove it or choose "
                              "another --out")


__all__ = ["record_threads", "refuse_other_threads", "refuse_reused_runs", "tuned_threads"]
