"""Figures of the paper's views, drawn from the summary tables.

- :func:`plot_final_vs_memory`: final accuracy vs memory size per method, one figure per
  scenario (the paper's Figure 1); error bars are the std over seeds. Memory-independent methods
  (only ``mem_size`` 0 records while others have several sizes: zero-shot, fine-tuning, EWC,
  joint) are horizontal lines with a std band across the memory range; the zero-shot floor is a
  dashed gray line. The memory axis is categorical, so 0 and sizes decades apart all show.
- :func:`plot_accuracy_per_experience`: ``stream_accuracy`` after each experience, mean over
  seeds with a shaded std, one figure per (scenario, mem_size); memory-independent methods are
  drawn (dashed) in every memory's figure, since their runs are the same at every size.

matplotlib is imported inside the functions, and figures are drawn on an Agg canvas attached to
a bare :class:`~matplotlib.figure.Figure`, never through ``pyplot``: importing the package
stays free of matplotlib, no global backend is switched under a caller (a notebook keeps its
own), and no figure lingers in pyplot's registry.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from avalanche_clip.common.atomic import atomic_write
from avalanche_clip.reporting.tables import sort_methods

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")
ZERO_SHOT = "zero-shot"
FLOOR_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.5}
_DODGE = 0.6  # at most this horizontal spread of the methods' points within one memory category
_DODGE_STEP = 0.12  # and at most this between two methods' points
#: A zero-shot run's final accuracy this close to the recorded floor (a fraction) is the floor.
SAME_AS_FLOOR = 0.001


def _new_figure(width: float = 7.2, height: float = 4.4) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def method_colors(methods: list[str] | pd.Series) -> dict[str, tuple[float, float, float, float]]:
    """A fixed colour per method (in method order), so a method looks the same in every figure."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(set(methods)) <= 10 else "tab20"]
    return {m: palette(i % palette.N) for i, m in enumerate(sort_methods(methods))}


def memory_independent(table: pd.DataFrame, scenario: str) -> list[str]:
    """Methods of ``scenario`` with only ``mem_size`` 0 while the scenario has several sizes."""
    rows = table[table["scenario"] == scenario]
    if rows["mem_size"].nunique() < 2:
        return []
    sizes = rows.groupby("strategy")["mem_size"].unique()
    return sort_methods([m for m, s in sizes.items() if set(s) == {0}])


def memory_grid(table: pd.DataFrame, scenario: str) -> list[int]:
    """The memory sizes of ``scenario``'s memory-dependent methods (all sizes when none is)."""
    rows = table[table["scenario"] == scenario]
    dependent = rows[~rows["strategy"].isin(memory_independent(table, scenario))]
    return sorted(int(m) for m in dependent["mem_size"].unique())


def _pct(value: float) -> float:
    return value * 100 if not pd.isna(value) else math.nan


def _floor(rows: pd.DataFrame) -> float:
    """The scenario's zero-shot floor: the records' ``zero_shot_accuracy``, else the final
    accuracy of a ``zero-shot`` run (the same quantity: zero-shot on the full test set)."""
    floor = rows["zero_shot_mean"].dropna()
    if len(floor):
        return float(floor.mean())
    zero_shot = rows.loc[rows["strategy"] == ZERO_SHOT, "final_acc_mean"].dropna()
    return float(zero_shot.mean()) if len(zero_shot) else math.nan


def _is_the_floor(rows: pd.DataFrame, method: str, floor: float) -> bool:
    """Whether ``method`` is a zero-shot run that the floor line already shows (within
    :data:`SAME_AS_FLOOR`): drawing both would show one number twice. A zero-shot run that
    disagrees with the recorded floor is drawn, so the disagreement is visible."""
    if method != ZERO_SHOT or pd.isna(floor):
        return False
    final = rows.loc[rows["strategy"] == ZERO_SHOT, "final_acc_mean"].dropna()
    return bool(len(final)) and abs(float(final.mean()) - floor) <= SAME_AS_FLOOR


def plot_final_vs_memory(
    summary: pd.DataFrame, scenario: str, colors: Mapping[str, object] | None = None,
    metric: str = "final accuracy",
) -> Figure:
    """Final accuracy (%) vs memory size per method for one scenario (see the module docstring);
    ``metric`` names what ``final_acc_*`` hold in the title and axis (retention on a held-out
    set, :mod:`avalanche_clip.reporting.retention`, with its untrained level as the floor)."""
    rows = summary[summary["scenario"] == scenario]
    if rows.empty:
        raise ValueError(f"no summary rows for scenario {scenario!r}")
    colors = colors or method_colors(summary["strategy"])
    grid = memory_grid(summary, scenario)
    flat = memory_independent(summary, scenario)
    floor = _floor(rows)
    methods = [m for m in sort_methods(rows["strategy"]) if not _is_the_floor(rows, m, floor)]
    dependent = [m for m in methods if m not in flat]
    figure = _new_figure()
    ax = figure.add_subplot()
    left, right = -0.5, len(grid) - 0.5
    handles = []  # in method order: matplotlib would list lines before error-bar containers
    for method in methods:
        cells = rows[rows["strategy"] == method]
        label = f"{method} (runs)" if method == ZERO_SHOT else method
        if method in flat:
            mean, std = _pct(cells["final_acc_mean"].iloc[0]), _pct(cells["final_acc_std"].iloc[0])
            handles += ax.plot([left, right], [mean] * 2, color=colors[method], lw=1.8, label=label)
            if not pd.isna(std):
                ax.fill_between(
                    [left, right], mean - std, mean + std, color=colors[method], alpha=0.12
                )
            continue
        step = min(_DODGE_STEP, _DODGE / len(dependent))  # side by side, never into the next size
        shift = (dependent.index(method) - (len(dependent) - 1) / 2) * step
        xs = np.array([grid.index(int(m)) + shift for m in cells["mem_size"]], dtype=float)
        handles.append(
            ax.errorbar(
                xs,
                cells["final_acc_mean"].to_numpy(dtype=float) * 100,
                yerr=cells["final_acc_std"].fillna(0).to_numpy(dtype=float) * 100,
                color=colors[method],
                marker="o",
                markersize=5,
                capsize=3,
                linewidth=1.5,
                label=label,
            )
        )
    if not pd.isna(floor):
        handles += ax.plot([left, right], [_pct(floor)] * 2, label=ZERO_SHOT, **FLOOR_STYLE)
    ax.set_xlim(left, right)
    ax.set_xticks(range(len(grid)), [str(m) for m in grid])
    title = f"{scenario}: {metric} vs memory"
    _finish(ax, title, "memory size (samples)", f"{metric} (%)", handles)
    return figure


def plot_accuracy_per_experience(
    curves: pd.DataFrame, scenario: str, mem_size: int, colors: Mapping[str, object] | None = None
) -> Figure:
    """Accuracy (%) on everything seen so far after each experience, per method, for one memory
    size of one scenario: mean over seeds, shaded ± std (``curves`` from ``experience_table``)."""
    flat = memory_independent(curves, scenario)
    rows = curves[curves["scenario"] == scenario]
    rows = rows[(rows["mem_size"] == mem_size) | rows["strategy"].isin(flat)]
    if rows.empty:
        raise ValueError(f"no curves for scenario {scenario!r} at memory {mem_size}")
    colors = colors or method_colors(curves["strategy"])
    figure = _new_figure()
    ax = figure.add_subplot()
    handles = []
    for method in sort_methods(rows["strategy"]):
        curve = rows[rows["strategy"] == method].sort_values("experience")
        xs = curve["experience"].to_numpy(dtype=float)
        mean = curve["acc_mean"].to_numpy(dtype=float) * 100
        std = curve["acc_std"].fillna(0).to_numpy(dtype=float) * 100
        style = "--" if method in flat else "-"
        # A joint run has only its final record: a single point, not a line.
        handles += ax.plot(xs, mean, style, marker="o", ms=4, color=colors[method], label=method)
        if len(xs) > 1:
            ax.fill_between(
                xs, mean - std, mean + std, color=colors[method], alpha=0.15, linewidth=0
            )
        elif std.any():
            ax.errorbar(xs, mean, yerr=std, fmt="none", ecolor=colors[method], capsize=3)
    n_experiences = int(rows["experience"].max()) + 1
    ax.set_xticks(range(n_experiences))
    ax.set_xlim(-0.3, n_experiences - 0.7)
    title = f"{scenario}, memory {mem_size}: accuracy after each experience"
    _finish(ax, title, "experience trained (index)", "accuracy on seen test data (%)", handles)
    return figure


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str, handles: list[Artist]) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    # Outside the axes: bands span the whole width, so no corner inside is reliably free.
    ax.legend(
        handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False
    )


def sanitize(name: str) -> str:
    """A file-name-safe form of ``name``: runs of other than ``[A-Za-z0-9._-]`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "unnamed"


def save_figure(figure: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``figure`` as ``<stem>.png`` and ``<stem>.svg`` in ``out_dir``, each atomically.

    SVGs carry no date and use a fixed id salt, so re-running a report gives identical files.
    """
    from matplotlib import rc_context

    # Constrained layout settles on the second draw; draw once so every format gets that layout.
    figure.draw_without_rendering()
    paths = []
    for fmt in FIGURE_FORMATS:
        buffer = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        with rc_context({"svg.hashsalt": "avalanche-clip"}):
            figure.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
        paths.append(
            atomic_write(Path(out_dir) / f"{stem}.{fmt}", lambda f, b=buffer: f.write(b.getvalue()))
        )
    return paths


def write_figures(summary: pd.DataFrame, curves: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Every figure of the report (PNG and SVG) into ``out_dir``; the written paths.

    Names: ``final_vs_memory__<scenario>`` and ``accuracy_per_experience__<scenario>__mem<M>``,
    sanitised; a suffix keeps two scenarios that sanitise alike apart.
    """
    colors = method_colors(summary["strategy"])
    paths: list[Path] = []
    names: set[str] = set()
    for scenario in sorted(summary["scenario"].unique()):
        name, n = sanitize(scenario), 2
        while name in names:  # two scenarios that sanitise alike must not overwrite each other
            name, n = f"{sanitize(scenario)}-{n}", n + 1
        names.add(name)
        figure = plot_final_vs_memory(summary, scenario, colors)
        paths += save_figure(figure, out_dir, f"final_vs_memory__{name}")
        for mem_size in memory_grid(curves, scenario):
            figure = plot_accuracy_per_experience(curves, scenario, mem_size, colors)
            paths += save_figure(figure, out_dir, f"accuracy_per_experience__{name}__mem{mem_size}")
    return paths
