"""Run a strategy over a benchmark: train each experience, evaluate, record, checkpoint.

After training experience ``t`` the strategy is evaluated on the test data of everything seen
so far (``seen_test_experiences``); one JSON record is written per evaluation, then (for
checkpointable strategies) one checkpoint. Records hold the accuracy on each seen test
experience, so forgetting is computed from them:

    A[t][e]      accuracy on test experience e after training experience t    (e ≤ t)
    F_t = mean_{e<t} ( max_{t'∈[e, t−1]} A[t'][e] − A[t][e] )                (None for t = 0)

and, with ``a[j][j]`` the accuracy on experience ``j`` right after training it,

    BWT_t        = mean_{j<t} ( A[t][j] − A[j][j] )      backward transfer (None for t = 0)
    plasticity_t = mean_{j≤t} A[j][j]                    accuracy on each task just after it

Every record also carries what the experience cost and held: ``optimizer_steps`` and
``samples_seen`` (this experience), and ``memory_digest``, the SHA-256 of the sorted global ids
in the replay memory after it (comma-separated decimals; the digest of the empty string for an
empty memory; for a method with its own exemplars, such as iCaRL's herded ones, the digest of
those; None for a strategy outside the protocol), and, for a run trained by several processes,
``world_size``, their number (absent for one process, so one-process records equal those written
before the field existed). A strategy with an ``extra_record_fields()`` method adds the fields it
returns (iCaRL: its nearest-mean classifier's ``ncm_stream_accuracy`` and
``ncm_accuracy_per_experience`` beside the prompt head's accuracies); they may not replace a field
of the record. A run with ``retention_sets`` adds ``retention``, ``retention_drop`` and
``retention_zero_shot`` (:mod:`avalanche_clip.pipeline.retention`); other runs' records do not
hold them.

Under several processes (``torchrun``, :mod:`avalanche_clip.training.distributed`) every process trains
and evaluates; rank 0 alone writes the records and checkpoints.

A run resumes from its checkpoint: records after the checkpointed experience are dropped and
regenerated; a run whose final record exists is finished and never touched again. Strategies
that cannot be checkpointed restart from the first experience, which reproduces the same
records because runs are deterministic.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training.plugins import EvaluationPlugin
from tqdm.auto import tqdm

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.reporting.records import read_json_lines
from avalanche_clip.scenarios import seen_test_experiences
from avalanche_clip.training.checkpoint import (
    check_records_cover,
    checkpoint_payload,
    load_checkpoint,
    write_checkpoint,
)
from avalanche_clip.training.checkpoint_writer import BackgroundWriter
from avalanche_clip.training.distributed import barrier, gather_rng_states, is_main, world_size

ACCURACY_KEY = "Top1_Acc_Exp/eval_phase/test_stream/Exp{:03d}"
STREAM_ACCURACY_KEY = "Top1_Acc_Stream/eval_phase/test_stream"


def make_evaluator(loggers: Sequence[Any] = ()) -> EvaluationPlugin:
    """Avalanche's EvaluationPlugin with the metrics the records are built from (the loss over
    visible samples: :mod:`avalanche_clip.evaluation.loss`)."""
    return EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        loss_metrics(stream=True),
        forgetting_metrics(experience=True, stream=True),
        loggers=list(loggers),
    )


def forgetting(accuracy_history: Sequence[Sequence[float]]) -> float | None:
    """``F_t`` of the module docstring for the last row of ``accuracy_history`` (``A[0..t]``)."""
    t = len(accuracy_history) - 1
    if t < 1:
        return None
    drops = [
        max(accuracy_history[s][e] for s in range(e, t)) - accuracy_history[t][e]
        for e in range(t)
    ]
    return sum(drops) / len(drops)


def backward_transfer(accuracy_history: Sequence[Sequence[float]]) -> float | None:
    """``BWT_t`` of the module docstring for the last row of ``accuracy_history``."""
    t = len(accuracy_history) - 1
    if t < 1:
        return None
    return sum(accuracy_history[t][j] - accuracy_history[j][j] for j in range(t)) / t


def plasticity(accuracy_history: Sequence[Sequence[float]]) -> float | None:
    """``plasticity_t`` of the module docstring (mean accuracy on each task just after it)."""
    if not accuracy_history:
        return None
    return sum(row[j] for j, row in enumerate(accuracy_history)) / len(accuracy_history)


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records in a ``results.jsonl`` (empty if the file does not exist); a truncated last
    line (a run killed mid-write) is skipped with a warning naming the file, as reports do."""
    path = Path(path)
    if not path.is_file():
        return []
    return [record for _, record in read_json_lines(path)]


def write_records(path: str | os.PathLike, records: Sequence[dict[str, Any]]) -> None:
    """Replace ``path`` with ``records`` as JSON lines, atomically (temp file + rename)."""
    text = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
    atomic_write_text(path, text)


@dataclass
class ContinualRun:
    """One strategy over one benchmark, with records and checkpoints.

    Args:
        strategy: an Avalanche strategy whose evaluator has :func:`make_evaluator`'s metrics.
        benchmark: from :func:`~avalanche_clip.scenarios.build_scenario`.
        identity: fields copied into every record (scenario, strategy, mem_size, seed, model,
            pretrained, zero_shot_accuracy, ...).
        records_path: ``results.jsonl`` to write (None: keep records in memory only).
        checkpoint_path: where to checkpoint after each experience (None: never).
        config: the resolved run config, stored in checkpoints and checked on resume.
        joint: train on the whole stream at once (an upper bound), then evaluate once.
        checkpointable: whether the strategy's state can be checkpointed exactly (the
            registry's ``StrategyInfo.checkpointable``); if not, no checkpoint is written.
        final_checkpoint: checkpoint after the last experience too (False where the caller
            deletes a finished run's checkpoint anyway, as ``execute_run`` does: the final
            record marks the run finished, and a resume returns its records untouched).
        progress: show a progress bar over experiences.
        on_record: called with each new record.
        retention: the held-out sets' record fields of the model as it is, after each
            evaluation (:meth:`avalanche_clip.pipeline.retention.RetentionProbe.record_fields`);
            None: records without them.
    """

    strategy: Any
    benchmark: Any
    identity: dict[str, Any] = field(default_factory=dict)
    records_path: str | os.PathLike | None = None
    checkpoint_path: str | os.PathLike | None = None
    config: dict[str, Any] = field(default_factory=dict)
    joint: bool = False
    checkpointable: bool = True
    final_checkpoint: bool = True
    progress: bool = True
    on_record: Callable[[dict[str, Any]], None] | None = None
    retention: Callable[[], dict[str, Any]] | None = None

    @property
    def n_experiences(self) -> int:
        return len(self.benchmark.train_stream)

    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train and evaluate every remaining experience; returns all records of the run."""
        records = read_records(self.records_path) if self.records_path else []
        if records and records[-1].get("final"):
            return records
        start = 0
        if resume and self.checkpoint_path and Path(self.checkpoint_path).is_file():
            done = load_checkpoint(self.checkpoint_path, strategy=self.strategy,
                                   train_stream=self.benchmark.train_stream, config=self.config)
            records = [r for r in records if r["experience"] <= done]
            check_records_cover(records, done, records_path=self.records_path,
                                checkpoint_path=self.checkpoint_path)
            start = done + 1
        else:
            records = []
        if self.joint:
            return self._run_joint(records)
        elapsed = records[-1]["wall_time_s"] if records else 0.0
        experiences = range(start, self.n_experiences)
        bar = tqdm(experiences, desc=self._label(), disable=not self.progress or not is_main(), leave=False)
        writer = BackgroundWriter()  # checkpoint files: written while the next experience trains
        try:
            for t in bar:
                began = time.perf_counter()
                self.strategy.train(self.benchmark.train_stream[t], eval_streams=[])
                metrics = self.strategy.eval(seen_test_experiences(self.benchmark, t))
                elapsed += time.perf_counter() - began
                writer.wait()  # the checkpoint of t - 1 is on disk (or its error raised) before record t
                records.append(self._record(t, metrics, records, elapsed))
                self._commit(records)
                if self.checkpoint_path and self.checkpointable and (
                        self.final_checkpoint or t < self.n_experiences - 1):
                    rng = gather_rng_states()  # every process's (a collective: all processes call it)
                    if is_main():  # copies taken now; the next experience changes the originals
                        payload = checkpoint_payload(strategy=self.strategy, experience=t,
                                                     config=self.config, rng_states=rng)
                        writer.submit(lambda path=self.checkpoint_path, p=payload: write_checkpoint(path, p))
                barrier()  # several processes: rank 0 has taken its snapshot
        except BaseException:
            writer.close(raise_error=False)
            raise
        writer.close()  # the last checkpoint is on disk before the run returns
        return records

    def _run_joint(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        began = time.perf_counter()
        self.strategy.train(self.benchmark.train_stream, eval_streams=[])
        last = self.n_experiences - 1
        metrics = self.strategy.eval(seen_test_experiences(self.benchmark, last))
        records = [self._record(last, metrics, [], time.perf_counter() - began)]
        self._commit(records)
        return records

    def _record(self, t: int, metrics: dict[str, float], previous: list[dict[str, Any]],
                elapsed: float) -> dict[str, Any]:
        per_experience = [float(metrics[ACCURACY_KEY.format(e)]) for e in range(t + 1)]
        history = [r["accuracy_per_experience"] for r in previous] + [per_experience]
        step_budget = getattr(self.strategy, "budget", None)  # StepBudget (a plain Avalanche strategy: none)
        budget = step_budget.record() if step_budget is not None else {}
        digest = getattr(self.strategy, "memory_digest", lambda: None)()
        extra = getattr(self.strategy, "extra_record_fields", dict)()
        record = {
            **self.identity,
            "experience": t,
            "n_experiences": self.n_experiences,
            "stream_accuracy": float(metrics[STREAM_ACCURACY_KEY]),
            "accuracy_per_experience": per_experience,
            "forgetting": None if self.joint else forgetting(history),
            "backward_transfer": None if self.joint else backward_transfer(history),
            "plasticity": None if self.joint else plasticity(history),
            "optimizer_steps": budget.get("optimizer_steps"),
            "samples_seen": budget.get("samples_seen"),
            "memory_digest": digest,
            # processes that trained it (torchrun); absent for one process, as in records before it
            **({"world_size": world_size()} if world_size() > 1 else {}),
            "wall_time_s": round(elapsed, 3),
            # held-out sets scored zero-shot (after the wall time: it counts training and evaluation)
            **(self.retention() if self.retention is not None else {}),
            "final": t == self.n_experiences - 1,
        }
        clash = sorted(set(extra) & set(record))
        if clash:
            raise ValueError(f"{type(self.strategy).__name__}.extra_record_fields() returned {clash}, "
                             "fields the record already has; expected new field names")
        return {**record, **extra}

    def _commit(self, records: list[dict[str, Any]]) -> None:
        if self.records_path and is_main():  # several processes: every one has the records, one writes
            write_records(self.records_path, records)
        if self.on_record:
            self.on_record(records[-1])

    def _label(self) -> str:
        parts = [str(self.identity.get(k)) for k in ("strategy", "mem_size", "seed") if k in self.identity]
        return " ".join(parts) or "experiences"
