"""An exact trial budget for a study that several ``tune`` processes share, and trials of dead
processes failed at once.

A study's budget is ``B`` finished trials. Each process counts the study's COMPLETE and RUNNING
trials before it asks for a new one (:func:`claimed`) and waits while they reach ``B``; two
processes can still both pass that count at the same instant, so every new trial also checks its
*place*: the COMPLETE or RUNNING trials numbered below it (the storage numbers a study's trials
one after another, atomically). A trial whose place is ``B`` or more was one too many: it stops
before drawing anything (:func:`holds_a_place`), and the study ends with exactly ``B`` finished
trials however the processes interleave (a trial below it that fails later leaves a place that
is drawn again).

Each trial records the process that runs it (:data:`WORKER_ATTR`: host and pid). A RUNNING
trial of this host whose process is gone (a killed tune) is failed as soon as a tune looks at the
study (:func:`fail_dead_trials`), instead of holding its place until its heartbeat goes stale;
trials of other hosts are left to Optuna's heartbeat. A trial exists in the storage a moment
before its runner marks it; one killed in that moment carries no mark and possibly no heartbeat
(Optuna never fails a trial without one), so an unmarked RUNNING trial older than
:data:`UNMARKED_S` is failed too: a live runner marks its trial within milliseconds.
"""

from __future__ import annotations

import datetime
import os
import socket
from typing import Any

from optuna.trial import TrialState

#: User attribute of a trial: ``{"host": ..., "pid": ...}`` of the process running it (host: the
#: machine's name and, on Linux, its pid namespace).
WORKER_ATTR = "worker"
#: States that hold a place in the budget.
HOLDING = (TrialState.COMPLETE, TrialState.RUNNING)
#: Seconds after its start at which a RUNNING trial still without :data:`WORKER_ATTR` is dead.
UNMARKED_S = 60.0


def claimed(study: Any) -> int:
    """How many places of the budget are taken: COMPLETE and RUNNING trials."""
    return len(study.get_trials(deepcopy=False, states=HOLDING))


def mark_worker(trial: Any) -> None:
    """Record this process as ``trial``'s runner (read by :func:`fail_dead_trials`)."""
    trial.set_user_attr(WORKER_ATTR, {"host": _host(), "pid": os.getpid()})


def _host() -> str:
    """This machine, and on Linux its pid namespace: two containers with one host name do not
    see each other's processes, so neither may judge the other's pids."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()


def holds_a_place(study: Any, trial: Any, budget: int) -> bool:
    """Whether fewer than ``budget`` COMPLETE or RUNNING trials are numbered below ``trial``."""
    below = [t for t in study.get_trials(deepcopy=False, states=HOLDING) if t.number < trial.number]
    return len(below) < budget


def fail_dead_trials(study: Any, unmarked_s: float | None = None) -> list[int]:
    """Fail the RUNNING trials whose process, on this host, no longer exists, and those still
    unmarked ``unmarked_s`` seconds (default :data:`UNMARKED_S`) after their start (on any host);
    their numbers."""
    unmarked_s = UNMARKED_S if unmarked_s is None else unmarked_s
    host = _host()
    failed = []
    now = datetime.datetime.now()  # Optuna stamps datetime_start in local time, without a zone
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if not isinstance(worker, dict):  # killed between its creation and its mark, or about to be marked
            start = trial.datetime_start
            if start is not None and (now - start).total_seconds() >= unmarked_s:
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.append(trial.number)
            continue
        if worker.get("host") != host:
            continue  # another machine's: its heartbeat tells
        if not _alive(worker.get("pid")):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed


def _alive(pid: Any) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return True  # unreadable: not ours to judge
    if pid == os.getpid() or os.name != "posix":  # on Windows os.kill would end the process
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


__all__ = ["HOLDING", "UNMARKED_S", "WORKER_ATTR", "claimed", "fail_dead_trials", "holds_a_place", "mark_worker"]
