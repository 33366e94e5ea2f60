"""``avalanche-clip prepare``: fetch what a config needs, or say what is missing.

On a machine with network (a cluster's login node) it downloads every missing asset that has a
download (open_clip weights into open_clip's cache, CIFAR-100 through torchvision) into the
places runs read, checks what is present (SHA-256 / MD5), and prints, for data placed by hand
(ImageNet, DomainNet, image folders), where the files go and how they are checked. Without
network (each download host is probed once, a few seconds at most; ``HF_HUB_OFFLINE=1`` counts as
none) or with ``download=False`` it only reports. The exit code is 0 when everything is present
afterwards, 1 otherwise.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from avalanche_clip.assets.checks import required_assets
from avalanche_clip.assets.core import Asset, indent_layout
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.sweep import plan_sweep

PROBE_TIMEOUT_S = 5.0


def reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds."""
    if host == "huggingface.co" and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def config_runs(config: dict[str, Any]) -> list[RunConfig]:
    """The parsed runs of a run or sweep config (no data needs to exist for this)."""
    if "strategies" in config:
        return plan_sweep(config).runs
    return [parse_run_config(config)]


def prepare_assets(config: dict[str, Any], *, download: bool = True,
                   printer: Callable[[str], Any] = print) -> int:
    """Fetch or report every asset of ``config`` (see the module docstring); the exit code."""
    runs = [run.to_dict() for run in config_runs(config)]  # the assets layer reads the mappings
    assets = required_assets(runs)
    if download and any(not a.present and a.fetch for a in assets):
        _fetch_missing(assets, printer)
        assets = required_assets(runs)  # look again: fetched files must be where runs read them
    if not assets:
        printer("this config reads no weights or data beyond what is installed with the package")
    missing = 0
    for asset in assets:
        missing += not _report(asset, printer, download)
    printer("everything is present" if not missing else
            f"{missing} asset(s) missing: runs of this config stop before training until they are here")
    return 0 if not missing else 1


def _fetch_missing(assets: list[Asset], printer: Callable[[str], Any]) -> None:
    """Download each missing asset that has a download, probing each host once."""
    online: dict[str, bool] = {}
    for asset in assets:
        if asset.present or asset.fetch is None:
            continue
        host = asset.fetch_host or ""
        if host not in online:
            online[host] = reachable(host)
            if not online[host]:
                printer(f"{host} is not reachable from here (no network?): nothing is downloaded from it")
        if not online[host]:
            continue
        printer(f"fetching {asset.kind} {asset.name} ...")
        try:
            asset.fetch()
        except Exception as err:  # report it and go on with the other assets
            printer(f"FAILED   {asset.kind} {asset.name}: {type(err).__name__}: {err}")


def _report(asset: Asset, printer: Callable[[str], Any], download: bool) -> bool:
    """Print one asset's status; whether it is present (and, where checkable, intact)."""
    title = f"{asset.kind} {asset.name}"
    if not asset.present:
        lines = [f"MISSING  {title}: {asset.missing}", f"         looked for {asset.location}"]
        if asset.layout:
            lines += ["         expected layout:", indent_layout(asset.layout, "           ")]
        if asset.fetch is not None:
            lines.append("         has a download: run prepare on a machine with network"
                         + ("" if download else " (--check downloads nothing)"))
        else:
            lines.append(f"         placed by hand; how to get it: {asset.how_to_get}")
        if asset.checked:
            lines.append(f"         checked: {asset.checked}")
        printer("\n".join(lines))
        return False
    note = ""
    if asset.verify is not None:
        try:
            note = f" ({asset.verify()})"
        except ValueError as err:
            printer(f"DAMAGED  {title}: {err}")
            return False
    printer(f"present  {title}: {asset.location}{note}")
    if asset.fetch is None and asset.kind == "data":
        printer(f"         placed by hand; checked {asset.checked}")
    return True
