"""Retention on held-out sets: the table and the figures of a sweep with ``retention_sets``.

For a finished run ``r`` and a held-out set ``s`` (:mod:`avalanche_clip.pipeline.retention`),
its final record holds ``R_{r,s}`` (``retention[s]``: zero-shot accuracy on the set after the
last experience), ``D_{r,s} = R^0_{r,s} − R_{r,s}`` (``retention_drop[s]``) and ``R^0_{r,s}``
(``retention_zero_shot[s]``: the untrained model's). :func:`retention_table` gives, per
(scenario, set, method, memory), the mean and sample std (``ddof=1``; NaN for one seed) of ``R``
and ``D`` over the seeds, and per (scenario, set) one :data:`UNTRAINED` row: ``R^0`` averaged
over the runs of each seed, then mean ± std over the seeds (its drop is 0 by definition).

:func:`write_retention_figures` draws ``R`` against memory size per method, one figure per
(scenario, set), in the style of the final-accuracy figure
(:func:`~avalanche_clip.reporting.plots.plot_final_vs_memory`), the untrained level as its floor.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avalanche_clip.reporting.plots import (
    method_colors,
    plot_final_vs_memory,
    sanitize,
    save_figure,
)
from avalanche_clip.reporting.records import final_records
from avalanche_clip.reporting.tables import GROUP_KEYS, _mean, _std, method_rank, to_markdown

UNTRAINED = "untrained"
RETENTION_COLUMNS: tuple[str, ...] = (
    "scenario", "set", "strategy", "mem_size", "n_seeds",
    "retention_mean", "retention_std", "drop_mean", "drop_std",
)
_MARKDOWN: tuple[tuple[str, str, str, str | None, bool], ...] = (
    ("Scenario", "left", "scenario", None, False),
    ("Held-out set", "left", "set", None, False),
    ("Method", "left", "strategy", None, False),
    ("Memory", "right", "mem_size", None, False),
    ("Retention (%)", "right", "retention_mean", "retention_std", True),
    ("Drop from untrained (%)", "right", "drop_mean", "drop_std", True),
    ("Seeds", "right", "n_seeds", None, False),
)
NOTE = (
    "Zero-shot accuracy on held-out sets whose classes the stream never contains (prompt head over "
    "each set's own class names), after the last experience; mean ± std over seeds, in percent. "
    f"*Drop*: the untrained model's accuracy on the set minus the run's (positive: lost). The "
    f"*{UNTRAINED}* row is the pretrained model before any training."
)


def _per_set(runs: pd.DataFrame, key: str, name: str) -> pd.Series:
    values = runs[key].map(lambda by_set: by_set.get(name) if isinstance(by_set, dict) else None)
    return pd.to_numeric(values, errors="coerce").astype("float64")


def retention_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, set, method, memory) plus the :data:`UNTRAINED` rows (module
    docstring); columns :data:`RETENTION_COLUMNS`, fractions; empty when no run has sets."""
    finals = final_records(records)
    if "retention" not in finals or not finals["retention"].map(lambda v: isinstance(v, dict)).any():
        return pd.DataFrame(columns=list(RETENTION_COLUMNS))
    rows = []
    for scenario, runs in finals.groupby("scenario", sort=True):
        names = sorted({n for by_set in runs["retention"] if isinstance(by_set, dict) for n in by_set})
        for name in names:
            untrained = _per_set(runs, "retention_zero_shot", name).groupby(runs["seed"]).mean().dropna()
            rows.append({"scenario": scenario, "set": name, "strategy": UNTRAINED, "mem_size": None,
                         "n_seeds": len(untrained), "retention_mean": _mean(untrained),
                         "retention_std": _std(untrained), "drop_mean": 0.0 if len(untrained) else None,
                         "drop_std": None})
            for (_, strategy, mem_size), cell in runs.groupby(list(GROUP_KEYS), sort=False):
                retention = _per_set(cell, "retention", name)
                if retention.isna().all():
                    continue
                drop = _per_set(cell, "retention_drop", name)
                rows.append({"scenario": scenario, "set": name, "strategy": strategy,
                             "mem_size": int(mem_size), "n_seeds": int(cell.loc[retention.notna(), "seed"].nunique()),
                             "retention_mean": _mean(retention), "retention_std": _std(retention),
                             "drop_mean": _mean(drop), "drop_std": _std(drop)})
    table = pd.DataFrame(rows, columns=list(RETENTION_COLUMNS)).astype({"mem_size": "Int64"})  # untrained: <NA>
    rank = table["strategy"].map(lambda m: -1 if m == UNTRAINED else method_rank(m))
    order = table.assign(_rank=rank, _mem=table["mem_size"].fillna(-1))
    order = order.sort_values(["scenario", "set", "_rank", "strategy", "_mem"], kind="stable")
    return order.drop(columns=["_rank", "_mem"]).reset_index(drop=True)


def retention_markdown(table: pd.DataFrame) -> str:
    """The retention table as Markdown (percent, ``mean ± std``; the untrained row's memory —)."""
    return to_markdown(table, _MARKDOWN)


def write_retention_figures(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``retention_vs_memory__<scenario>__<set>`` (PNG and SVG) into ``out_dir``: retention
    against memory size per method, the untrained level dashed; the written paths."""
    paths: list[Path] = []
    trained = table[table["strategy"] != UNTRAINED]
    if trained.empty:
        return paths
    colors = method_colors(trained["strategy"])
    for (scenario, name), rows in trained.groupby(["scenario", "set"], sort=True):
        untrained = table[(table["scenario"] == scenario) & (table["set"] == name)
                          & (table["strategy"] == UNTRAINED)]["retention_mean"]
        summary = rows.rename(columns={"retention_mean": "final_acc_mean", "retention_std": "final_acc_std"})
        summary = summary.assign(zero_shot_mean=float(untrained.iloc[0]) if len(untrained) else None,
                                 mem_size=summary["mem_size"].astype("int64"))
        figure = plot_final_vs_memory(summary, scenario, colors, metric=f"retention on {name}")
        paths += save_figure(figure, out_dir, f"retention_vs_memory__{sanitize(scenario)}__{sanitize(name)}")
    return paths


__all__ = ["NOTE", "RETENTION_COLUMNS", "UNTRAINED", "retention_markdown", "retention_table",
           "write_retention_figures"]
