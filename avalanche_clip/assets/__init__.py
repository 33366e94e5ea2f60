"""Weights and data a run reads from disk, checked before training (no network)::

    from avalanche_clip.assets import check_assets

    check_assets(runs)                   # MissingAssetError naming each missing asset

``avalanche-clip prepare`` fetches what has a download (:mod:`avalanche_clip.pipeline.prepare_assets`).

``check_assets`` and ``required_assets`` are imported on first use: they read the scenario
catalog, which imports Avalanche (~10 s), and the command line imports this package for its
error type in every command, ``report`` and ``list`` included.
"""

from typing import Any

from avalanche_clip.assets.core import Asset, MissingAssetError


def __getattr__(name: str) -> Any:
    if name in ("check_assets", "required_assets"):
        from avalanche_clip.assets import checks

        return getattr(checks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Asset", "MissingAssetError", "check_assets", "required_assets"]
