"""write_report end to end, and the atomic writes it relies on."""

from __future__ import annotations

import re
import warnings

import pytest
from figure_checks import assert_png, assert_svg
from sweep_fakes import (
    UNFINISHED,
    n_finished_records,
    n_finished_runs,
    record,
    run_id,
    write_jsonl,
    write_sweep,
)

from avalanche_clip.common.atomic import atomic_write, atomic_write_text
from avalanche_clip.reporting import (
    NoRecordsError,
    TruncatedLineWarning,
    load_records,
    summary_table,
    to_markdown,
    write_report,
)
from avalanche_clip.strategies import strategy_roles

ROLES = strategy_roles()

ONE_SCENARIO = ("split-cifar10",)  # the one with the killed run; half the figures to draw


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("small"), ONE_SCENARIO)


@pytest.fixture(scope="module")
def report(small_sweep):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = write_report(small_sweep, roles=ROLES)
    result_warnings = [w for w in caught if issubclass(w.category, TruncatedLineWarning)]
    return result, result_warnings


def test_default_location_and_returned_paths(report, small_sweep):
    result, _ = report
    out = small_sweep / "report"
    assert result["out_dir"] == out
    assert result["summary_md"] == out / "summary.md"
    assert result["summary_csv"] == out / "summary.csv"
    assert result["report_md"] == out / "report.md"
    assert len(result["figures"]) == 8 and all(
        p.parent == out / "figures" for p in result["figures"]
    )
    for path in (
        result["summary_md"],
        result["summary_csv"],
        result["report_md"],
        *result["figures"],
    ):
        assert path.is_file() and path.stat().st_size > 0, path


def test_figures_are_valid_images(report):
    for path in report[0]["figures"]:
        assert_png(path) if path.suffix == ".png" else assert_svg(path)


def test_table_and_counts(report, small_sweep):
    result, caught = report
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedLineWarning)
        assert result["table"] == to_markdown(summary_table(load_records(small_sweep)))
    assert result["summary_md"].read_text(encoding="utf-8") == result["table"]
    assert (
        result["summary_csv"]
        .read_text(encoding="utf-8")
        .startswith("scenario,strategy,mem_size,n_seeds,")
    )
    assert result["n_runs"] == n_finished_runs(ONE_SCENARIO) == 27
    assert (
        result["n_records"] == n_finished_records(ONE_SCENARIO) == 3 * (8 * 3 + 1)
    )  # seeds x (cells x experiences + joint)
    assert result["unfinished"] == [run_id(*UNFINISHED)]
    assert len(result["skipped_lines"]) == 1 and len(caught) == 1  # warned to the caller as well


def test_report_md_embeds_the_table_and_links_existing_figures(report):
    result, _ = report
    text = result["report_md"].read_text(encoding="utf-8")
    assert result["table"] in text
    assert (
        f"Built from {n_finished_records(ONE_SCENARIO)} records of {n_finished_runs(ONE_SCENARIO)} "
        "finished runs in `..`; "
        f"1 unfinished run(s) skipped (`{run_id(*UNFINISHED)}`). 1 truncated record line(s) skipped."
    ) in text
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    links = re.findall(r"\[(?:PNG|SVG)\]\(([^)]+)\)", text)
    assert len(images) == 4 and len(links) == 8
    assert sorted(set(links)) == sorted(
        p.relative_to(result["out_dir"]).as_posix() for p in result["figures"]
    )
    assert (
        str(result["out_dir"].parent) not in text
    )  # no absolute paths: a committed report is portable


def test_explicit_out_dir_and_single_file(tmp_path):
    rows = [record("pacs", "gcl", 20, 0, e) for e in range(4)]
    path = write_jsonl(tmp_path / "runs" / "one" / "results.jsonl", rows)
    result = write_report(path, tmp_path / "elsewhere", roles=ROLES)
    assert result["out_dir"] == tmp_path / "elsewhere"
    assert result["n_runs"] == 1 and result["unfinished"] == []
    assert "0 unfinished run(s) skipped." in result["report_md"].read_text(encoding="utf-8")
    # final 0.5 + 0.02 - 0.15 + 0.05 - 0.012 = 0.408; average (0.558 + 0.508 + 0.458 + 0.408) / 4;
    # no zero-shot run of the seed to measure forgetting against: —
    assert (
        "| pacs     | gcl    |     20 |           40.8 |          48.3 |              — |       — |              — |          45.0 |     1 |"
        in result["table"]
    )
    assert not list((tmp_path / "elsewhere").rglob("*.tmp"))
    assert load_records(path)["final"].sum() == 1


def test_an_empty_sweep_fails_before_writing_anything(tmp_path):
    with pytest.raises(NoRecordsError, match=re.escape(str(tmp_path))):
        write_report(tmp_path, roles=ROLES)
    assert not (tmp_path / "report").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = atomic_write_text(tmp_path / "summary.md", "old\n")

    def half_then_crash(handle):
        handle.write(b"new, but only ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_crash)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]  # the temporary file is gone
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n" and oct(target.stat().st_mode & 0o777) == "0o644"
