"""Which assets a set of runs needs, and whether they are all on disk (no network)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from avalanche_clip.assets.core import Asset, MissingAssetError
from avalanche_clip.assets.data import data_asset
from avalanche_clip.assets.weights import weight_asset


def required_assets(runs: Iterable[dict[str, Any]]) -> list[Asset]:
    """The distinct assets of ``runs`` (resolved, validated run configs), in first-use order."""
    assets: dict[tuple[str, str, str], Asset] = {}
    for run in runs:
        for asset in (weight_asset(run["model"], run["pretrained"]), data_asset(run)):
            if asset is not None:
                assets.setdefault((asset.kind, asset.name, asset.location), asset)
    return list(assets.values())


def check_assets(runs: Iterable[dict[str, Any]]) -> None:
    """Raise :class:`MissingAssetError` if any asset of ``runs`` is missing (disk reads only)."""
    missing = [asset for asset in required_assets(runs) if not asset.present]
    if missing:
        raise MissingAssetError(missing)
