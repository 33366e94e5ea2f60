"""Figures: what is drawn (checked on the Figure objects) and valid PNG/SVG files on disk."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from figure_checks import assert_png, assert_svg
from sweep_fakes import N_EXPERIENCES, SEEDS, stream_acc, zero_shot_acc

from avalanche_clip.reporting import (
    experience_table,
    memory_grid,
    memory_independent,
    plot_accuracy_per_experience,
    plot_final_vs_memory,
    plots,
    sanitize,
    save_figure,
    summary_table,
    write_figures,
)


@pytest.fixture(scope="module")
def summary(records):
    return summary_table(records)


def mean_pct(scenario, strategy, mem, exp):
    return 100 * np.mean([stream_acc(scenario, strategy, mem, s, exp) for s in SEEDS])


def lines_by_label(ax):
    return {
        line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")
    }


def test_memory_independent_methods_and_grid(summary):
    assert memory_independent(summary, "pacs") == ["zero-shot", "ewc", "joint"]
    assert memory_grid(summary, "pacs") == [0, 20, 100]
    only_zero = summary[summary["mem_size"] == 0]
    assert memory_independent(only_zero, "pacs") == []  # one size in all: nothing is "flat"
    no_gcl_at_zero = summary[
        ~((summary["strategy"].isin(["gcl", "gdro"])) & (summary["mem_size"] == 0))
    ]
    assert memory_grid(no_gcl_at_zero, "pacs") == [20, 100]  # 0 only from flat methods: no column


def test_final_vs_memory_draws_lines_points_and_floor(summary):
    figure = plot_final_vs_memory(summary, "split-cifar10")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "20", "100"]
    lines = lines_by_label(ax)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["ewc", "gcl", "gdro", "joint", "zero-shot"]  # method order; floor last, once
    floor = lines["zero-shot"]
    assert floor.get_linestyle() == "--" and floor.get_color() == "0.45"
    expected_floor = 100 * np.mean([zero_shot_acc("split-cifar10", s) for s in SEEDS])
    np.testing.assert_allclose(np.asarray(floor.get_ydata(), float), [expected_floor] * 2)
    last = N_EXPERIENCES["split-cifar10"] - 1
    for method in ("ewc", "joint"):  # horizontal across the whole memory range
        np.testing.assert_allclose(np.asarray(lines[method].get_xdata(), float), [-0.5, 2.5])
        expected_line = [mean_pct("split-cifar10", method, 0, last)] * 2
        np.testing.assert_allclose(np.asarray(lines[method].get_ydata(), float), expected_line)
    containers = {c.get_label(): c for c in ax.containers}
    gcl_points = containers["gcl"].lines[0]
    expected = [mean_pct("split-cifar10", "gcl", m, last) for m in (0, 20, 100)]
    np.testing.assert_allclose(gcl_points.get_ydata(), expected)
    xs = gcl_points.get_xdata()
    assert np.allclose(np.diff(xs), 1) and -0.5 < xs[0] < 0.5  # one category per size, dodged
    assert containers["gcl"].has_yerr


def test_a_zero_shot_run_disagreeing_with_the_floor_is_drawn(summary):
    shifted = summary.copy()
    is_zero_shot = shifted["strategy"] == "zero-shot"
    shifted.loc[is_zero_shot, "final_acc_mean"] += 0.05
    ax = plot_final_vs_memory(shifted, "pacs").axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["zero-shot (runs)", "ewc", "gcl", "gdro", "joint", "zero-shot"]
    no_floor = summary.assign(zero_shot_mean=float("nan"))  # floor from the zero-shot runs instead
    lines = lines_by_label(plot_final_vs_memory(no_floor, "pacs").axes[0])
    expected = 100 * np.mean([zero_shot_acc("pacs", s) for s in SEEDS])
    np.testing.assert_allclose(np.asarray(lines["zero-shot"].get_ydata(), float), [expected] * 2)
    assert "zero-shot (runs)" not in lines


def test_accuracy_per_experience_curves(records):
    curves = experience_table(records)
    figure = plot_accuracy_per_experience(curves, "pacs", 20)
    ax = figure.axes[0]
    lines = lines_by_label(ax)
    assert set(lines) == {
        "zero-shot",
        "ewc",
        "gcl",
        "gdro",
        "joint",
    }  # flat methods in every memory
    np.testing.assert_allclose(lines["gdro"].get_xdata(), [0, 1, 2, 3])
    np.testing.assert_allclose(
        lines["gdro"].get_ydata(), [mean_pct("pacs", "gdro", 20, e) for e in range(4)]
    )
    np.testing.assert_allclose(lines["joint"].get_xdata(), [3])  # a final record only
    assert lines["ewc"].get_linestyle() == "--" and lines["gcl"].get_linestyle() == "-"
    assert len(ax.collections) >= 4  # a std band per multi-point curve
    with pytest.raises(ValueError, match="no curves for scenario 'nope'"):
        plot_accuracy_per_experience(curves, "nope", 20)


def test_sanitize():
    assert sanitize("split-cifar10") == "split-cifar10"
    assert sanitize("domain net/6 (img)") == "domain-net-6-img"
    assert sanitize("../..") == "unnamed"


def test_figure_files_are_named_per_scenario_and_memory(summary, records, tmp_path, monkeypatch):
    stems = []
    monkeypatch.setattr(
        plots, "save_figure", lambda figure, out_dir, stem: stems.append(stem) or []
    )
    write_figures(summary, experience_table(records), tmp_path)
    assert stems == [
        f"{kind}__{scenario}{suffix}"
        for scenario in ("pacs", "split-cifar10")
        for kind, suffix in [
            ("final_vs_memory", ""),
            *(("accuracy_per_experience", f"__mem{m}") for m in (0, 20, 100)),
        ]
    ]
    stems.clear()  # two scenarios that sanitise alike must not overwrite each other
    renamed = {"pacs": "a/b", "split-cifar10": "a b"}
    write_figures(summary.replace(renamed), experience_table(records).replace(renamed), tmp_path)
    assert stems[0] == "final_vs_memory__a-b" and stems[4] == "final_vs_memory__a-b-2"
    assert len(set(stems)) == 8


def test_saved_figures_are_valid_deterministic_and_atomic(summary, tmp_path):
    png, svg = save_figure(plot_final_vs_memory(summary, "pacs"), tmp_path, "fig")
    assert (png.name, svg.name) == ("fig.png", "fig.svg")
    assert_png(png)
    assert_svg(svg)
    first = (png.read_bytes(), svg.read_bytes())
    assert b"<dc:date>" not in first[1]
    # a report rebuilt from the same records gives the same bytes (fresh figure, same files)
    save_figure(plot_final_vs_memory(summary, "pacs"), tmp_path, "fig")
    assert (png.read_bytes(), svg.read_bytes()) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "fig.svg"]  # no temp files


def test_importing_the_package_does_not_import_matplotlib():
    code = (
        "import sys, avalanche_clip, avalanche_clip.reporting; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
