"""Reading result records: discovery, validation, truncated lines, duplicates, clear errors."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from sweep_fakes import (
    UNFINISHED,
    experience_acc,
    n_finished_records,
    n_finished_runs,
    record,
    run_id,
    stream_acc,
    write_jsonl,
)

from avalanche_clip.reporting import (
    NoRecordsError,
    RecordError,
    TruncatedLineWarning,
    final_records,
    load_records,
    unfinished_runs,
)


def test_sweep_is_read_whole_and_typed(records):
    assert len(records) == n_finished_records() + 2  # + the two whole records of the killed run
    assert records["run_id"].nunique() == n_finished_runs() + 1
    assert str(records["mem_size"].dtype) == "int64" and str(records["experience"].dtype) == "int64"
    assert records["final"].dtype == bool
    joint = records[records["strategy"] == "joint"]
    assert set(joint["experience"]) == {2, 3}  # joint runs: final records only
    assert joint["forgetting"].isna().all()
    row = records[
        (records["run_id"] == run_id("pacs", "gdro", 100, 2)) & (records["experience"] == 1)
    ]
    assert row["stream_accuracy"].item() == pytest.approx(stream_acc("pacs", "gdro", 100, 2, 1))
    assert row["accuracy_per_experience"].item() == [
        experience_acc("pacs", "gdro", 100, 2, j, 1) for j in (0, 1)
    ]


def test_truncated_last_line_is_skipped_with_a_warning(sweep_dir):
    with pytest.warns(
        TruncatedLineWarning, match=r"results\.jsonl:3: skipped an undecodable last line"
    ):
        frame = load_records(sweep_dir)
    killed = frame[frame["run_id"] == run_id(*UNFINISHED)]
    assert list(killed["experience"]) == [0, 1]


def test_unfinished_runs_are_found_and_left_out_of_finals(records):
    assert unfinished_runs(records) == [run_id(*UNFINISHED)]
    finals = final_records(records)
    assert len(finals) == n_finished_runs()
    assert run_id(*UNFINISHED) not in set(finals["run_id"])
    assert (finals["experience"] == finals["n_experiences"] - 1).all()


def test_a_truncated_multibyte_character_counts_as_a_truncated_line(tmp_path):
    path = write_jsonl(tmp_path / "r" / "results.jsonl", [record("pacs", "ewc", 0, 0, 0)])
    with path.open("ab") as handle:
        handle.write('{"model": "é'.encode()[:-1])  # cut inside the 2-byte "é"
    with pytest.warns(TruncatedLineWarning):
        assert len(load_records(path)) == 1


def test_a_bad_line_before_the_last_is_an_error(tmp_path):
    path = tmp_path / "run" / "results.jsonl"
    write_jsonl(
        path,
        [record("pacs", "ewc", 0, 0, 0)],
        tail='{"cut\n' + json.dumps(record("pacs", "ewc", 0, 0, 1)) + "\n",
    )
    with pytest.raises(RecordError, match=re.escape(f"{path}:2: not valid JSON")):
        load_records(tmp_path)


def test_empty_directory_error_names_the_path_and_what_was_expected(tmp_path):
    with pytest.raises(
        NoRecordsError, match=re.escape(f"no results.jsonl found under {tmp_path}")
    ) as err:
        load_records(tmp_path)
    assert "sweep directory" in str(err.value)


def test_missing_path_and_empty_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nope'} does not exist")):
        load_records(tmp_path / "nope")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.jsonl").write_text("\n\n")
    with pytest.raises(NoRecordsError, match="no records in the results.jsonl"):
        load_records(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stream_accuracy": 61.3}, "stream_accuracy must be a fraction in [0, 1], got 61.3"),
        ({"zero_shot_accuracy": -0.1}, "zero_shot_accuracy must be a fraction in [0, 1]"),
        ({"mem_size": "200"}, "mem_size must be an integer >= 0, got '200'"),
        ({"seed": True}, "seed must be an integer >= 0, got True"),
        ({"experience": 3}, "experience 3 is outside 0..n_experiences-1 (n_experiences=3)"),
        ({"forgetting": "high"}, "forgetting must be a finite number or null"),
        ({"final": "yes"}, "final must be true, false or null"),
    ],
)
def test_bad_values_are_errors_naming_file_line_and_key(tmp_path, change, message):
    path = write_jsonl(
        tmp_path / "run" / "results.jsonl", [{**record("split-cifar10", "gcl", 20, 0, 0), **change}]
    )
    with pytest.raises(RecordError, match=re.escape(f"{path}:1: {message}")):
        load_records(tmp_path)


def test_missing_required_key_is_named(tmp_path):
    bad = record("pacs", "ewc", 0, 0, 0)
    del bad["strategy"], bad["seed"]
    write_jsonl(tmp_path / "run" / "results.jsonl", [bad])
    with pytest.raises(RecordError, match="missing key\\(s\\) strategy, seed"):
        load_records(tmp_path)


def test_single_file_and_defaults_for_optional_keys(tmp_path):
    rows = [
        {k: v for k, v in record("pacs", "gdro", 20, 1, e).items() if k not in ("run_id", "final")}
        for e in range(4)
    ]
    path = write_jsonl(tmp_path / "runs" / "my-run" / "results.jsonl", rows)
    frame = load_records(path)
    assert set(frame["run_id"]) == {"my-run"}
    assert list(frame["final"]) == [False, False, False, True]
    assert set(load_records(tmp_path)["run_id"]) == {"runs/my-run"}


def test_a_rewritten_experience_keeps_the_last_record(tmp_path):
    first = record("pacs", "gcl", 20, 0, 0)
    again = {**first, "stream_accuracy": 0.123}
    write_jsonl(tmp_path / "run" / "results.jsonl", [first, again, record("pacs", "gcl", 20, 0, 1)])
    frame = load_records(tmp_path)
    assert list(frame["experience"]) == [0, 1]
    assert frame.loc[0, "stream_accuracy"] == 0.123


def test_the_same_run_in_two_files_is_an_error(tmp_path):
    write_jsonl(tmp_path / "a" / "results.jsonl", [record("pacs", "gcl", 20, 0, 0)])
    write_jsonl(tmp_path / "b" / "results.jsonl", [record("pacs", "gcl", 20, 0, 1)])
    with pytest.raises(RecordError, match="appears in several files"):
        load_records(tmp_path)


def test_records_of_one_run_must_agree(tmp_path):
    rows = [record("pacs", "gcl", 20, 0, 0), {**record("pacs", "gcl", 20, 0, 1), "mem_size": 100}]
    write_jsonl(tmp_path / "run" / "results.jsonl", rows)
    with pytest.raises(RecordError, match="disagree on mem_size"):
        load_records(tmp_path)


def test_clean_files_give_no_warning(tmp_path):
    write_jsonl(
        tmp_path / "run" / "results.jsonl", [record("pacs", "gcl", 20, 0, e) for e in range(4)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_records(tmp_path)) == 4
