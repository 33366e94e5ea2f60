"""Which data a run learned from: a fingerprint in every record and checkpoint.

``data_root`` says where the data is, not what it is, so it does not enter a run's identity
(moving the data, or cloning the repository elsewhere, must keep finished runs reusable). What
does is :func:`run_data_fingerprint`: a digest of the samples the run's scenario serves — file
contents (not paths) or pixel arrays, labels, domains, order, class and domain names — after
subsampling. Every record carries it as ``data_fingerprint`` and every checkpoint in its config,
and a finished or interrupted run is reused only by a run of the same data:
:func:`check_same_data` refuses other data, naming the run folder.

Runs made before fingerprints existed (the records committed under ``experiments/results`` up
to this change) carry none: their data is *unknown*. They are reused as they are — refusing
them would throw away finished results that are very likely right — with one
:class:`DataFingerprintWarning` naming them; delete such a run folder to recompute it on the
current data. A checkpoint without a fingerprint is resumed the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from avalanche_clip.common.errors import AvalancheClipError
from avalanche_clip.features import default_cache_dir
from avalanche_clip.features.fingerprint import source_fingerprint
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.scenarios import scenario_source

FIELD = "data_fingerprint"


class DataMismatchError(AvalancheClipError):
    """A run folder holds results of other data than the run would read now."""


class DataFingerprintWarning(UserWarning):
    """Results without a data fingerprint (made before fingerprints) were reused unchecked."""


def run_data_fingerprint(config: RunConfig) -> str:
    """The fingerprint of the data ``config``'s scenario serves (module docstring)."""
    source = scenario_source(config.scenario, root=config.data_root, domains=config.domains,
                             **config.scenario_options)
    return source_fingerprint(source, memo_dir=config.cache_dir or default_cache_dir())


def check_same_data(records: Sequence[dict[str, Any]], fingerprint: str, where: Any) -> bool:
    """Whether ``records`` carry ``fingerprint`` (False: they carry none, their data is unknown).

    Raises:
        DataMismatchError: a record carries another fingerprint.
    """
    recorded = {record.get(FIELD) for record in records}
    other = sorted(f for f in recorded if f is not None and f != fingerprint)
    if other:
        raise DataMismatchError(
            f"{where} holds results of other data (data fingerprint {other[0][:16]}… there, "
            f"{fingerprint[:16]}… in the data read now); choose another --out, or delete that run "
            "folder to recompute it on this data"
        )
    return None not in recorded


def warn_unknown_data(run_folders: Iterable[Any]) -> None:
    """One :class:`DataFingerprintWarning` naming runs reused without a fingerprint."""
    folders = [str(f) for f in run_folders]
    if folders:
        shown = ", ".join(folders[:3]) + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")
        warnings.warn(
            f"{len(folders)} finished or interrupted run(s) predate data fingerprints and were "
            f"reused without checking their data: {shown}; delete a run folder to recompute it "
            "on the current data", DataFingerprintWarning, stacklevel=3,
        )


__all__ = ["FIELD", "DataFingerprintWarning", "DataMismatchError", "check_same_data",
           "run_data_fingerprint", "warn_unknown_data"]
