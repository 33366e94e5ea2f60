"""Avalanche's loggers named by a run config (``loggers: [tensorboard, csv, wandb]``; the names
are checked with the other config keys, :func:`avalanche_clip.pipeline.config_parse.check_loggers`).

A run always writes Avalanche's text log (``<out>/avalanche.log``); the config key ``loggers``
adds any of Avalanche's own loggers, each writing under the run folder, so a user follows the
curves in the tools they already use::

    <out>/logs/tensorboard/   TensorboardLogger event files (``tensorboard --logdir <out>/logs``)
    <out>/logs/csv/           CSVLogger's training_results.csv and eval_results.csv
    <out>/logs/wandb/         WandBLogger's local run files

Avalanche's CSVLogger truncates its files when it starts, so a run that continues (``--resume``)
writes its CSV files to the first free ``logs/csv-2``, ``logs/csv-3``, ... instead of
overwriting what the interrupted run logged (TensorBoard and W&B start new files by themselves).
W&B runs offline unless the user configured it (``WANDB_MODE`` or ``WANDB_API_KEY`` set, or a
``wandb login`` entry in ``~/.netrc``); ``wandb sync <out>/logs/wandb/wandb/offline-run-*``
uploads an offline run later.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from avalanche.logging import CSVLogger, TensorboardLogger

from avalanche_clip.evaluation.wandb_logger import WandBScalarLogger
from avalanche_clip.pipeline.config_schema import RunConfig

LOGS_FOLDER = "logs"


def wandb_configured() -> bool:
    """Whether the user set W&B up (environment or ``wandb login``): then its own mode applies."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _free_folder(base: Path) -> Path:
    """``base`` if it holds no file yet, else the first ``base-2``, ``base-3``, ... that does not."""
    candidate, n = base, 1
    while candidate.is_dir() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _make_logger(name: str, folder: Path, config: dict[str, Any], run_name: str) -> Any:
    if name == "tensorboard":
        return TensorboardLogger(tb_log_dir=str(folder / "tensorboard"))
    if name == "csv":
        return CSVLogger(log_folder=str(_free_folder(folder / "csv")))
    (folder / "wandb").mkdir(parents=True, exist_ok=True)
    # An id of our own: Avalanche 0.6 draws one with wandb.util.generate_id, gone from wandb 0.2x+.
    params: dict[str, Any] = {"id": secrets.token_hex(4)}
    if not wandb_configured():
        params["mode"] = "offline"
    return WandBScalarLogger(project_name="avalanche-clip", run_name=run_name, save_code=False,
                             config=config, dir=str(folder / "wandb"), params=params)


def close_logger(logger: Any) -> None:
    """Flush and close what ``logger`` holds open (files, an event writer, a W&B run)."""
    writer = getattr(logger, "writer", None)  # TensorboardLogger
    if writer is not None:
        writer.close()
    if hasattr(logger, "wandb"):  # WandBLogger: end the run, so the next one starts cleanly
        logger.wandb.finish()
    elif hasattr(logger, "close"):  # CSVLogger
        logger.close()


@contextlib.contextmanager
def config_loggers(config: RunConfig, out: str | os.PathLike, *, run_name: str,
                   enabled: bool = True) -> Iterator[list[Any]]:
    """The loggers ``config.loggers`` names, writing under ``<out>/logs`` (none when not
    ``enabled``, e.g. on the processes other than rank 0); closed when the block ends."""
    names = list(config.loggers) if enabled else []
    folder = Path(out) / LOGS_FOLDER
    loggers: list[Any] = []
    try:
        for name in names:
            loggers.append(_make_logger(name, folder, config.to_dict(), run_name))
        yield loggers
    finally:
        for logger in loggers:
            close_logger(logger)


__all__ = ["LOGS_FOLDER", "close_logger", "config_loggers", "wandb_configured"]
