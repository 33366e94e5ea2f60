"""Weights and data a run reads from disk, checked before training (no network)::

    from avalanche_clip.assets import check_assets

    check_assets(runs)                   # MissingAssetError naming each missing asset

``avalanche-clip prepare`` fetches what has a download (:mod:`avalanche_clip.pipeline.prepare_assets`).
"""

from avalanche_clip.assets.checks import check_assets, required_assets
from avalanche_clip.assets.core import Asset, MissingAssetError

__all__ = ["Asset", "MissingAssetError", "check_assets", "required_assets"]
