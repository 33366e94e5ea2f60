"""Summary tables over seeds: final accuracy, average incremental accuracy, forgetting.

Notation, for one run over experiences ``0..T-1``: ``A_t`` is its ``stream_accuracy`` after
training experience ``t`` (accuracy on the test data of experiences ``0..t``), and ``a_{t,j}``
is its accuracy on test experience ``j`` after training experience ``t``.

- final accuracy ``A_{T-1}``: the ``stream_accuracy`` of the run's final record;
- average incremental accuracy ``(1/|R|) * sum_{t in R} A_t`` over the experiences ``R`` the run
  recorded (all ``T`` for a continual learner; only the last for a ``joint`` run, whose average
  is then its final accuracy);
- forgetting (``forgetting_*``): against the untrained model, from each run's accuracies per
  experience and those of the zero-shot run of the same seed (:mod:`.floor`): with the gain
  ``g_{t,j} = a_{t,j} - z_{t,j}`` over the zero-shot run's ``z_{t,j}``,
  ``(1/(T-1)) * sum_{j<T-1} (max_{j<=t<T-1} g_{t,j} - g_{T-1,j})``; exactly 0 for a model that
  never trains; NaN when ``T == 1`` or the records hold no matching zero-shot run;
- backward transfer (``bwt_*``): ``(1/(T-1)) * sum_{j<T-1} (g_{T-1,j} - g_{j,j})`` (negative:
  forgetting), against the same floor;
- Avalanche's forgetting and backward transfer (``avalanche_forgetting_*``,
  ``avalanche_bwt_*``): the same formulas over ``a_{t,j}`` itself, i.e. the final record's
  ``forgetting`` and ``backward_transfer`` fields as the run computed them (in a
  class-incremental stream they also count the fall that a growing set of seen classes causes
  in an untrained model's accuracy); in the CSV, not in the Markdown table;
- plasticity: the final record's ``plasticity``, ``(1/T) * sum_j a_{j,j}``, the accuracy on each
  experience right after training it.

Each is aggregated over the seeds of a (scenario, strategy, mem_size) cell as a mean and a
sample standard deviation (``ddof=1``; undefined, NaN, for a single seed). Only finished runs
(those with a final record) enter any table. Values stay fractions in [0, 1] in the DataFrames;
the rendered Markdown and the CSV are in percent.
"""

from __future__ import annotations

import math
import warnings

import pandas as pd

from avalanche_clip.reporting.floor import floor_metrics
from avalanche_clip.reporting.records import RecordWarning, final_records

#: Row and legend order of methods within a scenario. ``"*"`` stands for every method not named
#: here, alphabetically: the zero-shot floor first, then the baselines, then the paper's two
#: methods, then the joint upper bound last.
METHOD_ORDER: tuple[str, ...] = ("zero-shot", "*", "gcl", "gdro", "joint")

GROUP_KEYS: tuple[str, str, str] = ("scenario", "strategy", "mem_size")
SUMMARY_COLUMNS: tuple[str, ...] = (
    *GROUP_KEYS,
    "n_seeds",
    "final_acc_mean",
    "final_acc_std",
    "avg_acc_mean",
    "avg_acc_std",
    "forgetting_mean",
    "forgetting_std",
    "bwt_mean",
    "bwt_std",
    "plasticity_mean",
    "plasticity_std",
    "zero_shot_mean",
    "avalanche_forgetting_mean",
    "avalanche_forgetting_std",
    "avalanche_bwt_mean",
    "avalanche_bwt_std",
)
CURVE_COLUMNS: tuple[str, ...] = (*GROUP_KEYS, "experience", "acc_mean", "acc_std", "n_runs")
MISSING = "—"

#: Rendered columns: header, alignment, summary column of the mean, of the std (or None), and
#: whether the value is a fraction shown in percent.
_MARKDOWN_COLUMNS: tuple[tuple[str, str, str, str | None, bool], ...] = (
    ("Scenario", "left", "scenario", None, False),
    ("Method", "left", "strategy", None, False),
    ("Memory", "right", "mem_size", None, False),
    ("Final acc. (%)", "right", "final_acc_mean", "final_acc_std", True),
    ("Avg. acc. (%)", "right", "avg_acc_mean", "avg_acc_std", True),
    ("Forgetting (%)", "right", "forgetting_mean", "forgetting_std", True),
    ("BWT (%)", "right", "bwt_mean", "bwt_std", True),
    ("Plasticity (%)", "right", "plasticity_mean", "plasticity_std", True),
    ("Zero-shot (%)", "right", "zero_shot_mean", None, True),
    ("Seeds", "right", "n_seeds", None, False),
)


def method_rank(name: str) -> int:
    """Position of ``name`` in :data:`METHOD_ORDER` (ties among ``"*"`` methods break by name);
    a variant ``<method>-<suffix>`` of a listed method (``gcl-reset``, ``joint-converged``)
    sorts with that method."""
    if name in METHOD_ORDER:
        return METHOD_ORDER.index(name)
    for listed in METHOD_ORDER:
        if listed != "*" and name.startswith(f"{listed}-"):
            return METHOD_ORDER.index(listed)
    return METHOD_ORDER.index("*")


def sort_methods(names: list[str] | set[str] | pd.Series) -> list[str]:
    """``names`` without duplicates, in :data:`METHOD_ORDER`."""
    return sorted(set(names), key=lambda name: (method_rank(name), name))


def _sorted(frame: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    ranked = frame.assign(_rank=frame["strategy"].map(method_rank))
    by = ["scenario", "_rank", "strategy", "mem_size", *extra]
    return ranked.sort_values(by, kind="stable").drop(columns="_rank").reset_index(drop=True)


def _std(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def summary_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, strategy, mem_size) over finished runs: see the module docstring.

    Columns: :data:`SUMMARY_COLUMNS`, fractions in [0, 1]; rows in scenario, :data:`METHOD_ORDER`,
    mem_size order. Several finished runs sharing a seed in one cell (e.g. two models) are all
    averaged, with a :class:`RecordWarning`.
    """
    finals = final_records(records)
    if finals.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    finished = records[records["run_id"].isin(finals["run_id"])]
    average = finished.groupby("run_id")["stream_accuracy"].mean()
    floor = floor_metrics(finished)
    per_run = finals.assign(
        avg_acc=finals["run_id"].map(average),
        floor_forgetting=finals["run_id"].map(floor["forgetting"]),
        floor_bwt=finals["run_id"].map(floor["backward_transfer"]),
    )
    rows = []
    for (scenario, strategy, mem_size), runs in per_run.groupby(list(GROUP_KEYS), sort=False):
        if runs["seed"].duplicated().any():
            warnings.warn(
                f"{scenario}/{strategy}/mem {mem_size}: {len(runs)} finished runs share "
                f"{runs['seed'].nunique()} seed(s); all of them are averaged",
                RecordWarning,
                stacklevel=2,
            )
        rows.append(
            {
                "scenario": scenario,
                "strategy": strategy,
                "mem_size": int(mem_size),
                "n_seeds": int(runs["seed"].nunique()),
                "final_acc_mean": _mean(runs["stream_accuracy"]),
                "final_acc_std": _std(runs["stream_accuracy"]),
                "avg_acc_mean": _mean(runs["avg_acc"]),
                "avg_acc_std": _std(runs["avg_acc"]),
                "forgetting_mean": _mean(runs["floor_forgetting"]),
                "forgetting_std": _std(runs["floor_forgetting"]),
                "bwt_mean": _mean(runs["floor_bwt"]),
                "bwt_std": _std(runs["floor_bwt"]),
                "plasticity_mean": _mean(runs["plasticity"]),
                "plasticity_std": _std(runs["plasticity"]),
                "zero_shot_mean": _mean(runs["zero_shot_accuracy"]),
                "avalanche_forgetting_mean": _mean(runs["forgetting"]),
                "avalanche_forgetting_std": _std(runs["forgetting"]),
                "avalanche_bwt_mean": _mean(runs["backward_transfer"]),
                "avalanche_bwt_std": _std(runs["backward_transfer"]),
            }
        )
    return _sorted(pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)))


def experience_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over finished runs of ``stream_accuracy`` after each experience.

    One row per (scenario, strategy, mem_size, experience); columns :data:`CURVE_COLUMNS`.
    """
    finished = records[records["run_id"].isin(final_records(records)["run_id"])]
    if finished.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    grouped = finished.groupby([*GROUP_KEYS, "experience"], sort=False)["stream_accuracy"]
    curves = grouped.agg(acc_mean=_mean, acc_std=_std, n_runs="count").reset_index()
    return _sorted(curves[list(CURVE_COLUMNS)], extra=("experience",))


def format_percent(mean: float, std: float | None = None, digits: int = 1) -> str:
    """``"61.3 ± 0.8"`` from fractions; ``"61.3"`` when ``std`` is None or NaN (one seed);
    :data:`MISSING` when ``mean`` is missing."""

    def fmt(value: float) -> str:
        text = f"{value * 100:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0"

    if mean is None or pd.isna(mean):
        return MISSING
    if std is None or pd.isna(std):
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(std)}"


def _cell(row: pd.Series, mean_col: str, std_col: str | None, percent: bool) -> str:
    value = row[mean_col]
    if percent:
        return format_percent(value, row[std_col] if std_col else None)
    if value is None or pd.isna(value):
        return MISSING
    # Pipes would split the cell and newlines the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(summary: pd.DataFrame,
                columns: tuple[tuple[str, str, str, str | None, bool], ...] | None = None) -> str:
    """The summary as a GitHub-flavoured Markdown table (accuracies in percent, ``mean ± std``);
    ``columns``: (header, alignment, mean column, std column or None, in percent) of each column
    (default: the summary's; the retention table passes its own).

    Written by hand (no ``tabulate``); columns are padded so the raw text reads as a table too.
    """
    specs = _MARKDOWN_COLUMNS if columns is None else columns
    header = [spec[0] for spec in specs]
    body = [[_cell(row, *spec[2:]) for spec in specs] for _, row in summary.iterrows()]
    widths = [max(3, *(len(r[i]) for r in [header, *body])) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if spec[1] == "left" else cell.rjust(width)
            for cell, width, spec in zip(cells, widths, specs, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        ":" + "-" * (w - 1) if spec[1] == "left" else "-" * (w - 1) + ":"
        for w, spec in zip(widths, specs, strict=True)
    ]
    return "\n".join([line(header), line(rule), *(line(cells) for cells in body)]) + "\n"


def to_csv(summary: pd.DataFrame) -> str:
    """The summary as CSV text in percent (columns ``*_pct_mean``/``*_pct_std``; empty = missing)."""
    out = summary.copy()
    renamed = {}
    for column in SUMMARY_COLUMNS:
        if column.endswith(("_mean", "_std")) and column in out:
            out[column] = out[column].astype("float64") * 100
            stem, stat = column.rsplit("_", 1)
            renamed[column] = f"{stem}_pct_{stat}"
    return out.rename(columns=renamed).to_csv(index=False, float_format="%.4f", lineterminator="\n")
