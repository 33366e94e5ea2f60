"""A serial sweep hashes each scenario's data once (issue 25): the first run that finishes hands
its records' data fingerprint to the later runs of the same data."""

from __future__ import annotations

import contextlib
import io

from cli_fixtures import main, sweep_records, tiny_sweep_config, write_config

import avalanche_clip.pipeline.run as run_module
import avalanche_clip.pipeline.sweep as sweep_module


def test_a_sweep_fingerprints_its_data_once_and_every_record_carries_it(tmp_path, monkeypatch):
    computed: list[str] = []
    for module in (run_module, sweep_module):
        original = module.run_data_fingerprint

        def counting(config, _original=original):  # type: ignore[no-untyped-def]
            computed.append(config.run_id)
            return _original(config)

        monkeypatch.setattr(module, "run_data_fingerprint", counting)
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(
        tmp_path / "cache", strategies=["naive", "gcl"], mem_sizes=[0, 10], seeds=[0, 1]))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sweep", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    records = sweep_records(tmp_path / "out")
    assert len(records) == 6  # naive m0, gcl m0 and m10, for seeds 0 and 1
    assert len(computed) == 1, computed  # the first run only
    fingerprints = {r["data_fingerprint"] for runs in records.values() for r in runs}
    assert len(fingerprints) == 1 and None not in fingerprints
