"""The range rule of every registered method's own options, in one light module.

The constructors apply them (``check_options``) and the pipeline reads them through the registry
before any training. They live here, not beside each strategy class, so that the registry's
metadata (names, roles, rules, search spaces) loads without Avalanche: ``avalanche-clip report``
and ``list`` need the metadata only, and ``import avalanche`` costs ~10 s
(``benchmarks/README.md``). The strategy modules re-export their rules under the old names.
"""

from __future__ import annotations

from typing import Any

from avalanche_clip.common.values import (
    Rule,
    check_non_negative,
    check_open_fraction,
    check_positive,
    check_unit_interval,
)

#: Views of each image the two-view methods (Co2L, CaSSLe) take: both papers' losses are defined
#: on two augmented views of each image.
TWO_VIEWS = 2

#: EWC (Avalanche's plugin does not check its lambda: the factory applies this).
EWC_RULES: dict[str, Rule] = {"ewc_lambda": check_non_negative}
#: DER's two loss weights.
DER_RULES: dict[str, Rule] = {"alpha": check_non_negative, "beta": check_non_negative}
#: The option every decoupled method shares (Co2L's and CaSSLe's rules extend it).
DECOUPLED_RULES: dict[str, Rule] = {"classifier_fraction": check_open_fraction}
CO2L_RULES: dict[str, Rule] = {
    **DECOUPLED_RULES,
    **dict.fromkeys(("tau", "base_temperature", "kappa", "kappa_past"), check_positive),
    "ird_lambda": check_non_negative,
}
CASSLE_RULES: dict[str, Rule] = {
    **DECOUPLED_RULES,
    **dict.fromkeys(("tau", "distill_temperature"), check_positive),
    "distill_lambda": check_non_negative,
}
#: FOSTER: the effective-number betas in [0, 1), the compression's share of the step budget in (0, 1).
FOSTER_RULES: dict[str, Rule] = {
    "beta1": check_unit_interval, "beta2": check_unit_interval, "lambda_okd": check_non_negative,
    "temperature": check_positive, "compression_fraction": check_open_fraction,
}
#: The joint bound trained towards convergence.
JOINT_RULES: dict[str, Rule] = {"budget_scale": check_positive}


def check_reference(key: str, value: Any) -> Any:
    """ZSCL's ``reference`` option (:func:`avalanche_clip.strategies.reference_sets.check_reference`,
    imported when a value is checked: reading a reference set's config needs the scenarios)."""
    from avalanche_clip.strategies.reference_sets import check_reference as check

    return check(key, value)


ZSCL_RULES: dict[str, Rule] = {
    "distill_lambda": check_non_negative,
    "ensemble_fraction": check_open_fraction,
    "temperature": check_positive,
    "reference_fraction": check_open_fraction,
    "reference": check_reference,
}

__all__ = ["CASSLE_RULES", "CO2L_RULES", "DECOUPLED_RULES", "DER_RULES", "EWC_RULES", "FOSTER_RULES",
           "JOINT_RULES", "TWO_VIEWS", "ZSCL_RULES", "check_reference"]
