"""Result records: the JSON-lines files runs write, read back into one DataFrame.

A run writes one JSON object per line to ``results.jsonl`` after each experience it trained and
evaluated; a sweep keeps one such file per run under ``<sweep_dir>/runs/<run_id>/``. This module
finds those files (any ``results.jsonl`` below the given directory), validates each record and
returns them as a :class:`pandas.DataFrame`, one row per (run, experience).

Tolerated, with a :class:`TruncatedLineWarning`: an undecodable *last* line (the run was killed while
writing it). Refused, with a :class:`RecordError` naming file and line: a bad line elsewhere, a
missing key, a value of the wrong type or an accuracy outside [0, 1] (a percent written by
mistake would otherwise be averaged silently with fractions).

A run that wrote the same experience twice (it was resumed after writing the record but before
checkpointing) keeps the last record for that experience.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from avalanche_clip.common.values import is_finite_number, is_int

RESULTS_FILENAME = "results.jsonl"

#: Keys every record must have; everything else is optional (filled with null when absent).
REQUIRED_KEYS: tuple[str, ...] = (
    "scenario",
    "strategy",
    "mem_size",
    "seed",
    "experience",
    "n_experiences",
    "stream_accuracy",
)
#: Optional keys of the schema, in column order.
OPTIONAL_KEYS: tuple[str, ...] = (
    "run_id",
    "final",
    "accuracy_per_experience",
    "forgetting",
    "backward_transfer",
    "plasticity",
    "optimizer_steps",
    "samples_seen",
    "memory_digest",
    "wall_time_s",
    "model",
    "pretrained",
    "zero_shot_accuracy",
)
#: Retention fields (runs with ``retention_sets``): ``{set name: value}``, each value's lower bound.
RETENTION_KEYS: dict[str, float] = {"retention": 0.0, "retention_drop": -1.0, "retention_zero_shot": 0.0}
#: Bookkeeping columns added by :func:`load_records`: where each record came from.
SOURCE_COLUMNS: tuple[str, ...] = ("source", "line")
_INT_KEYS = ("mem_size", "seed", "experience", "n_experiences")
_FRACTION_KEYS = ("stream_accuracy", "zero_shot_accuracy")
#: Keys on which every record of one run must agree.
_RUN_KEYS = ("scenario", "strategy", "mem_size", "seed", "n_experiences")


class RecordError(ValueError):
    """A record that cannot be used: malformed JSON (not on the last line) or a bad value."""


class NoRecordsError(FileNotFoundError):
    """The path holds no result records."""


class RecordWarning(UserWarning):
    """Records were read but something about them deserves attention."""


class TruncatedLineWarning(RecordWarning):
    """An undecodable last line was skipped (a run killed while writing it)."""


def find_results_files(path: str | os.PathLike[str]) -> list[Path]:
    """The ``results.jsonl`` files under ``path`` (recursively, sorted), or ``[path]`` for a file."""
    root = Path(path)
    expected = f"a sweep directory with <run>/{RESULTS_FILENAME} files, or one {RESULTS_FILENAME}"
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist (expected {expected})")
    if root.is_file():
        return [root]
    files = sorted(p for p in root.rglob(RESULTS_FILENAME) if p.is_file())
    if not files:
        raise NoRecordsError(f"no {RESULTS_FILENAME} found under {root} (expected {expected})")
    return files


def _validate(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise RecordError(f"{where}: missing key(s) {', '.join(missing)}")
    for key in ("scenario", "strategy"):
        if not isinstance(record[key], str) or not record[key]:
            raise RecordError(f"{where}: {key} must be a non-empty string, got {record[key]!r}")
    for key in _INT_KEYS:
        if not is_int(record[key]) or record[key] < 0:
            raise RecordError(f"{where}: {key} must be an integer >= 0, got {record[key]!r}")
    if not 0 <= record["experience"] < record["n_experiences"]:
        raise RecordError(
            f"{where}: experience {record['experience']} is outside 0..n_experiences-1 "
            f"(n_experiences={record['n_experiences']})"
        )
    for key in _FRACTION_KEYS:
        value = record.get(key)
        if value is None and key != "stream_accuracy":
            continue
        if not is_finite_number(value) or not 0.0 <= value <= 1.0:
            raise RecordError(f"{where}: {key} must be a fraction in [0, 1], got {value!r}")
    for key in ("forgetting", "backward_transfer", "plasticity", "wall_time_s"):
        if record.get(key) is not None and not is_finite_number(record[key]):
            raise RecordError(
                f"{where}: {key} must be a finite number or null, got {record[key]!r}"
            )
    if record.get("final") is not None and not isinstance(record["final"], bool):
        raise RecordError(f"{where}: final must be true, false or null, got {record['final']!r}")
    for key, low in RETENTION_KEYS.items():  # {held-out set: accuracy, or its drop}
        value = record.get(key)
        if value is not None and not (isinstance(value, dict) and all(
                isinstance(name, str) and is_finite_number(v) and low <= v <= 1.0 for name, v in value.items())):
            raise RecordError(f"{where}: {key} must map held-out set names to numbers in [{low:g}, 1], "
                              f"got {value!r}")
    return record


def _default_run_id(file: Path, root: Path) -> str:
    """The run folder relative to the sweep root (its name when reading one file directly)."""
    if file == root or file.parent == root:
        return file.parent.resolve().name or file.stem
    return file.parent.relative_to(root).as_posix()


def read_json_lines(file: str | os.PathLike[str]) -> list[tuple[int, Any]]:
    """``[(line number, decoded JSON value), ...]`` of the non-blank lines of ``file``.

    An undecodable *last* line is skipped with a :class:`TruncatedLineWarning` naming the file
    and line; one anywhere else is a :class:`RecordError`.
    """
    # Split bytes, not text: a run killed mid-write can cut a multi-byte character, and that
    # must count as a truncated last line rather than fail the decoding of the whole file.
    lines = Path(file).read_bytes().split(b"\n")
    numbered = [(n, raw) for n, raw in enumerate(lines, start=1) if raw.strip()]
    values = []
    for position, (lineno, raw) in enumerate(numbered):
        try:
            values.append((lineno, json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            where = f"{file}:{lineno}"
            if position == len(numbered) - 1:
                warnings.warn(
                    f"{where}: skipped an undecodable last line (a run killed mid-write?): {err}",
                    TruncatedLineWarning,
                    stacklevel=3,
                )
                continue
            raise RecordError(f"{where}: not valid JSON ({err})") from err
    return values


def _read_file(file: Path, root: Path) -> list[dict[str, Any]]:
    default_run_id = _default_run_id(file, root)
    records = []
    for lineno, record in read_json_lines(file):
        where = f"{file}:{lineno}"
        record = _validate(record, where)
        if record.get("run_id") is None:
            record["run_id"] = default_run_id
        if record.get("final") is None:
            record["final"] = record["experience"] == record["n_experiences"] - 1
        record["source"], record["line"] = str(file), lineno
        records.append(record)
    return records


def _check_runs(frame: pd.DataFrame) -> None:
    sources = frame.groupby("run_id")["source"].unique()
    for run_id, files in sources.items():
        if len(files) > 1:
            raise RecordError(
                f"run_id {run_id!r} appears in several files: {', '.join(sorted(files))}"
            )
    disagree = frame.groupby("run_id")[list(_RUN_KEYS)].nunique() > 1
    for run_id, row in disagree.iterrows():
        if row.any():
            keys = ", ".join(row.index[row])
            raise RecordError(f"records of run {run_id!r} disagree on {keys}")


def load_records(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Every record under ``path`` (a sweep directory or one ``results.jsonl``) as a DataFrame.

    Columns: :data:`REQUIRED_KEYS`, :data:`OPTIONAL_KEYS`, then ``source``/``line`` and any extra
    keys the records carry. ``run_id`` defaults to the run folder's path relative to ``path``;
    ``final`` defaults to ``experience == n_experiences - 1``. Rows are sorted by scenario,
    strategy, mem_size, seed, run_id, experience.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NoRecordsError: no ``results.jsonl`` under ``path``, or only empty ones.
        RecordError: a malformed record (see the module docstring).
    """
    root = Path(path)
    records = [rec for file in find_results_files(root) for rec in _read_file(file, root)]
    if not records:
        raise NoRecordsError(
            f"no records in the {RESULTS_FILENAME} file(s) under {root} "
            f"(expected one JSON object per line)"
        )
    frame = pd.DataFrame.from_records(records)
    known = [*REQUIRED_KEYS, *OPTIONAL_KEYS, *SOURCE_COLUMNS]
    for key in known:
        if key not in frame:
            frame[key] = None
    frame = frame[known + sorted(set(frame.columns) - set(known))]
    for key in (*_INT_KEYS, "line"):
        frame[key] = frame[key].astype("int64")
    for key in ("stream_accuracy", "forgetting", "backward_transfer", "plasticity", "wall_time_s",
                "zero_shot_accuracy"):
        frame[key] = pd.to_numeric(frame[key], errors="raise").astype("float64")
    frame["final"] = frame["final"].astype(bool)
    frame["run_id"] = frame["run_id"].astype(str)
    _check_runs(frame)
    # A resumed run may have rewritten an experience; the later line is the one that counts.
    frame = frame.drop_duplicates(subset=["run_id", "experience"], keep="last")
    order = ["scenario", "strategy", "mem_size", "seed", "run_id", "experience"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def final_records(records: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: its final record (the last experience flagged ``final``)."""
    finals = records[records["final"]].sort_values(["run_id", "experience"], kind="stable")
    finals = finals.drop_duplicates(subset="run_id", keep="last")
    order = ["scenario", "strategy", "mem_size", "seed", "run_id"]
    return finals.sort_values(order, kind="stable").reset_index(drop=True)


def unfinished_runs(records: pd.DataFrame) -> list[str]:
    """The ``run_id`` of every run without a final record (still running, or killed), sorted."""
    finished = set(records.loc[records["final"], "run_id"])
    return sorted(set(records["run_id"]) - finished)
