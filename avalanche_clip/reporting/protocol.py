"""Checks, from the records alone, that a comparison was run under one protocol.

A report states for every scenario whether

- **the budget is equal**: within each (seed, experience), every trained continual method took
  the same ``optimizer_steps`` (zero-shot trains nothing; joint bounds train once, on the total);
- **the exemplars are shared**: within each (seed, memory size, experience), every method with a
  ``memory_digest`` of the shared memory reports the same one (iCaRL, whose herding chooses its
  own exemplars, records the digest of those, or none in records written before it did; the
  role ``own_exemplars`` leaves it out);
- **the joint bound got the continual total** (``joint``: the sum of a continual method's steps);
- **the negatives are the same**: every trained method (continual and joint) recorded the same
  ``train_logits`` (``batch``: its classification or contrastive logits range over the batch's
  classes; ``seen``: over all seen classes), which the line names.

Records written before these fields existed have none, and the check says so rather than pass.

Which records are trained continual methods is each strategy's role, passed in as ``roles``
(``{name: {"trains": bool, "joint": bool, "own_exemplars": bool}}``,
:func:`avalanche_clip.strategies.strategy_roles`), so
that reading records needs no strategy code (nor Avalanche).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

#: ``{strategy name: {"trains": bool, "joint": bool, "own_exemplars": bool}}``: what each
#: registered strategy is.
StrategyRoles = Mapping[str, Mapping[str, bool]]


def _methods(frame: pd.DataFrame) -> pd.Series:
    """The registered strategy of each record (``method``; the label for old records)."""
    if "method" in frame:
        return frame["method"].fillna(frame["strategy"])
    return frame["strategy"]


def _flag(frame: pd.DataFrame, flag: str, roles: StrategyRoles) -> pd.Series:
    """A role flag (``joint``, ``trains``, ``own_exemplars``) of each record's strategy (unknown
    names, or roles without the flag: its default), so a renamed variant is classified by what it
    runs."""
    default = {"joint": False, "trains": True, "own_exemplars": False}[flag]
    return _methods(frame).map(lambda m: bool(roles[m].get(flag, default)) if m in roles else default)


def _continual(frame: pd.DataFrame, roles: StrategyRoles) -> pd.DataFrame:
    """The records of trained continual methods (not the untrained floor, not joint bounds)."""
    return frame[_flag(frame, "trains", roles) & ~_flag(frame, "joint", roles)]


def protocol_checks(records: pd.DataFrame, roles: StrategyRoles) -> list[str]:
    """One Markdown bullet per scenario and check (see the module docstring); ``roles`` says
    which strategies train and which are joint bounds."""
    lines = []
    for scenario, rows in records.groupby("scenario", sort=True):
        if "optimizer_steps" not in rows or rows["optimizer_steps"].isna().all():
            lines.append(f"- **{scenario}**: the records carry no optimizer_steps / memory_digest "
                         "(written before the protocol recorded them); nothing to check.")
            continue
        lines.append(f"- **{scenario}**: {_budget(rows, roles)}; {_memory(rows, roles)}; {_joint(rows, roles)}; "
                     f"{_negatives(rows, roles)}.")
    return lines


def _budget(rows: pd.DataFrame, roles: StrategyRoles) -> str:
    continual = _continual(rows, roles)
    steps = continual.groupby(["seed", "experience"])["optimizer_steps"].nunique()
    unequal = steps[steps > 1]
    if unequal.empty:
        per_experience = continual.groupby("experience")["optimizer_steps"].first().astype(int).tolist()
        return (f"equal optimizer steps for all {continual['strategy'].nunique()} trained continual "
                f"methods ({', '.join(map(str, per_experience))} per experience)")
    seed, experience = unequal.index[0]
    return (f"**unequal optimizer steps** in {len(unequal)} (seed, experience) cell(s), e.g. "
            f"seed {seed}, experience {experience}")


def _memory(rows: pd.DataFrame, roles: StrategyRoles) -> str:
    shared = rows[(rows["mem_size"] > 0) & rows["memory_digest"].notna() & ~_flag(rows, "own_exemplars", roles)]
    if shared.empty:
        return "no shared replay memory"
    digests = shared.groupby(["seed", "mem_size", "experience"])["memory_digest"].nunique()
    methods = ", ".join(sorted(shared["strategy"].unique()))
    if (digests > 1).any():
        seed, mem_size, experience = digests[digests > 1].index[0]
        return (f"**different exemplars** across {methods}, e.g. seed {seed}, memory {mem_size}, "
                f"experience {experience}")
    return f"identical exemplars after every experience across {methods}"


def _joint(rows: pd.DataFrame, roles: StrategyRoles) -> str:
    # the equal-budget bound (joint-converged trains a multiple of it)
    joint = rows[_methods(rows) == "joint"]
    continual = _continual(rows, roles)
    if joint.empty or continual.empty:
        return "no joint bound"
    totals = continual.groupby(["strategy", "mem_size", "seed"])["optimizer_steps"].sum()
    expected = set(totals.astype(int))
    got = set(joint["optimizer_steps"].dropna().astype(int))
    if got <= expected and len(expected) == 1:
        return f"joint took the continual total of {expected.pop()} steps"
    return f"**joint took {sorted(got)} steps against continual totals {sorted(expected)}**"


def _negatives(rows: pd.DataFrame, roles: StrategyRoles) -> str:
    trained = rows[_flag(rows, "trains", roles)]
    if "train_logits" not in trained or trained["train_logits"].isna().all():
        return "no train_logits recorded (records written before the protocol recorded it)"
    values = trained.groupby("strategy")["train_logits"].agg(lambda v: "/".join(sorted(set(v.fillna("none")))))
    if values.nunique() == 1 and "/" not in values.iloc[0]:
        return f"train_logits={values.iloc[0]} for all {len(values)} trained methods"
    detail = ", ".join(f"{strategy}: {value}" for strategy, value in values.items())
    return f"**different train_logits** across trained methods ({detail})"
