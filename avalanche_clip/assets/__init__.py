"""Weights and data a run reads from disk: checked before training, fetched by ``prepare``.

    from avalanche_clip.assets import check_assets, prepare_assets

    check_assets(runs)                   # MissingAssetError naming each missing asset (no network)
    prepare_assets(config)               # download what has a download, report the rest; exit code
"""

from avalanche_clip.assets.core import Asset, MissingAssetError, check_assets, required_assets
from avalanche_clip.assets.prepare import prepare_assets, reachable

__all__ = ["Asset", "MissingAssetError", "check_assets", "prepare_assets", "reachable", "required_assets"]
