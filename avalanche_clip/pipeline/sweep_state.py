"""What a sweep folder already holds, checked before a sweep runs in it again.

A sweep folder holds the results of *one* setting: every run folder under ``<out>/runs`` must
have been made with the current sweep's settings, grid keys apart (strategies, memory sizes,
seeds, scenarios may grow or shrink between re-runs; a run's own strategy, memory and seed are
its place in the grid). :func:`check_run_folders` refuses a re-run whose settings differ from
any run folder's, naming the folder and the keys, before anything is trained — so a report never
mixes runs of two settings in one table. Resume-neutral keys (``device``, ``data_root``, ...)
may differ, as for one run; whether the *data* is the same is checked by the data fingerprint.

``sweep.yaml`` is the current sweep's resolved config. When a re-run changes it (a grid key),
the previous file is kept as ``sweep-history/sweep-<k>.yaml`` (k = 1, 2, ...) and a
:class:`SweepConfigWarning` names it: no sweep's config is overwritten silently.
"""

from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path
from typing import Any

import yaml

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.pipeline.config import SCENARIO_KEYS, ConfigError, dump_yaml
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.training.checkpoint import config_differences

SWEEP_CONFIG = "sweep.yaml"
HISTORY_DIR = "sweep-history"
_GRID_POSITION = ("strategy", "mem_size", "seed")


class SweepConfigWarning(UserWarning):
    """The sweep folder's config changed; the previous one was kept (the message says where)."""


def expected_run_config(sweep: SweepConfig, saved: dict[str, Any]) -> dict[str, Any]:
    """The config the current ``sweep`` gives the run whose saved config is ``saved``: its
    scenario entry (by label; a label no longer in the grid keeps its saved scenario keys) and
    its place in the grid, everything else from the sweep."""
    base = copy.deepcopy(sweep.shared)
    label = saved.get("label") or saved.get("scenario")
    scenario = {k: saved[k] for k in SCENARIO_KEYS if k in saved}
    for candidate in sweep.scenario_configs():
        if (candidate.get("label") or candidate.get("scenario")) == label:
            scenario = {k: candidate[k] for k in SCENARIO_KEYS if k in candidate}
            break
    return {**base, **scenario, **{k: saved.get(k) for k in _GRID_POSITION}}


#: What a run owns besides its place in the grid: its strategy entry's options (tuned values,
#: variants), label and the memory size its tuned values come from. A planned run is compared
#: with its whole planned config (``run_sweep``'s ``check_same_config``); a folder the grid no
#: longer plans, on everything else.
_RUN_OWN = ("strategy_options", "strategy_label", "tuned_at_mem_size")


def check_run_folders(sweep: SweepConfig | dict[str, Any], out: Path, planned: set[str] | None = None) -> None:
    """Refuse ``sweep`` in ``out`` if a run folder there was made with other settings; folders
    whose name is in ``planned`` (run ids of the current plan) are left to the per-run check."""
    sweep = parse_sweep_config(sweep)
    for saved_path in sorted((out / "runs").glob("*/config.yaml")):
        if planned is not None and saved_path.parent.name in planned:
            continue
        try:
            saved = read_yaml(saved_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{saved_path} is unreadable ({type(err).__name__}); fix or delete "
                              "that run folder") from None
        expected = expected_run_config(sweep, saved)
        saved = {k: v for k, v in saved.items() if k not in _RUN_OWN}
        differences = config_differences(saved, {k: v for k, v in expected.items() if k not in _RUN_OWN})
        if differences:
            raise ConfigError(
                f"{out} holds run {saved_path.parent.name} made with other settings "
                f"({'; '.join(differences)}); a sweep folder holds one setting, so its report "
                "cannot mix them: choose another --out, or delete that run folder"
            )


def record_sweep_config(sweep: SweepConfig | dict[str, Any], out: Path) -> Path | None:
    """Write ``out/sweep.yaml`` (the mapping the sweep was parsed from); returns where the
    previous, different one was kept (if any)."""
    target, text = out / SWEEP_CONFIG, dump_yaml(parse_sweep_config(sweep).to_dict())
    kept = None
    if target.is_file() and target.read_text() != text:
        history = out / HISTORY_DIR
        history.mkdir(exist_ok=True)
        number = 1 + max((int(p.stem.rsplit("-", 1)[-1]) for p in history.glob("sweep-*.yaml")
                          if p.stem.rsplit("-", 1)[-1].isdigit()), default=0)
        kept = history / f"sweep-{number}.yaml"
        shutil.copy2(target, kept)
        warnings.warn(f"{target} changed; the previous sweep config is kept as {kept}",
                      SweepConfigWarning, stacklevel=2)
    atomic_write_text(target, text)
    return kept


__all__ = ["SweepConfigWarning", "check_run_folders", "expected_run_config", "record_sweep_config"]
