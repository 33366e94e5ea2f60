"""The report's protocol checks catch unequal budgets, different exemplars and a short joint."""

from __future__ import annotations

import pandas as pd

from avalanche_clip.reporting.protocol import protocol_checks
from avalanche_clip.strategies import strategy_roles

ROLES = strategy_roles()


def _records(steps_ce=3, digest_der="a", joint_steps=6, digest_icarl="h"):
    rows = []
    for strategy, mem, steps, digest in (("ce", 20, steps_ce, "a"), ("gcl", 20, 3, "a"),
                                         ("der", 20, 3, digest_der), ("icarl", 20, 3, digest_icarl),
                                         ("ewc", 0, 3, "e"), ("zero-shot", 0, 0, "e")):
        for experience in (0, 1):
            rows.append({"scenario": "s", "strategy": strategy, "mem_size": mem, "seed": 0,
                         "experience": experience, "optimizer_steps": steps, "memory_digest": digest})
    rows.append({"scenario": "s", "strategy": "joint", "mem_size": 0, "seed": 0, "experience": 1,
                 "optimizer_steps": joint_steps, "memory_digest": "e"})
    return pd.DataFrame(rows)


def test_a_fair_sweep_passes_every_check():
    (line,) = protocol_checks(_records(), ROLES)
    assert "equal optimizer steps for all 5 trained continual methods (3, 3 per experience)" in line
    assert "identical exemplars after every experience across ce, der, gcl" in line
    assert "joint took the continual total of 6 steps" in line
    assert "**" not in line.replace("**s**", "")


def test_each_violation_is_named():
    assert "**unequal optimizer steps** in 2" in protocol_checks(_records(steps_ce=4), ROLES)[0]
    assert "**different exemplars**" in protocol_checks(_records(digest_der="x"), ROLES)[0]
    assert "**joint took [5] steps" in protocol_checks(_records(joint_steps=5), ROLES)[0]


def test_old_records_say_there_is_nothing_to_check():
    old = _records().assign(optimizer_steps=None)
    assert "nothing to check" in protocol_checks(old, ROLES)[0]


def test_icarls_own_exemplars_are_not_compared_with_the_shared_memory():
    # its herded exemplars' digest ("h") differs from the shared memory's ("a"), as it should;
    # records written before iCaRL had a digest carry none: the same check either way
    for digest in ("h", None):
        line = protocol_checks(_records(digest_icarl=digest), ROLES)[0]
        assert "identical exemplars after every experience across ce, der, gcl;" in line
    # a role table without the flag (an older caller): no method keeps its own exemplars
    old_roles = {name: {"trains": r["trains"], "joint": r["joint"]} for name, r in ROLES.items()}
    assert "**different exemplars** across ce, der, gcl, icarl" in protocol_checks(_records(), old_roles)[0]
    assert ROLES["icarl"]["own_exemplars"] and not ROLES["der"]["own_exemplars"]
def test_the_negatives_of_the_trained_methods_are_named_and_a_difference_is_flagged():
    records = _records().assign(train_logits="batch")
    (line,) = protocol_checks(records, ROLES)
    assert "train_logits=batch for all 6 trained methods" in line  # 5 continual and joint; not zero-shot
    records.loc[records["strategy"] == "zero-shot", "train_logits"] = "seen"  # trains nothing: not checked
    assert "train_logits=batch for all 6" in protocol_checks(records, ROLES)[0]
    records.loc[records["strategy"] == "gcl", "train_logits"] = "seen"
    assert "**different train_logits** across trained methods (ce: batch, der: batch, ewc: batch, gcl: seen" in (
        protocol_checks(records, ROLES)[0])
    assert "no train_logits recorded" in protocol_checks(_records(), ROLES)[0]
