"""A killed tune's trials are failed so that their places are drawn again: by their process when
they name it, by their age when they were killed before naming it."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from avalanche_clip.pipeline.tune_budget import WORKER_ATTR, claimed, fail_dead_trials, mark_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study():
    return optuna.create_study(storage=optuna.storages.InMemoryStorage())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_trial_of_a_gone_process_on_this_host_is_failed_and_a_live_one_kept():
    study = _study()
    live, dead = study.ask(), study.ask()
    mark_worker(live)
    mark_worker(dead)
    study._storage.set_trial_user_attr(
        dead._trial_id, WORKER_ATTR, {**dead.user_attrs[WORKER_ATTR], "pid": _dead_pid()})
    assert fail_dead_trials(study) == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {live.number: TrialState.RUNNING, dead.number: TrialState.FAIL}


def test_an_unmarked_trial_is_failed_once_older_than_the_limit_and_kept_before():
    study = _study()
    unmarked = study.ask()  # a tune killed between the trial's creation and its mark
    assert fail_dead_trials(study, unmarked_s=3600) == [] and claimed(study) == 1
    assert fail_dead_trials(study, unmarked_s=0) == [unmarked.number]
    assert claimed(study) == 0  # its place in the budget is free again


def test_another_hosts_marked_trial_is_left_to_its_heartbeat():
    study = _study()
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR, {"host": "elsewhere", "pid": os.getpid()})
    assert fail_dead_trials(study, unmarked_s=0) == []
    assert claimed(study) == 1
