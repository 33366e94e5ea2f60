"""What a run needs on disk before it trains, and the one error when some of it is missing.

An :class:`Asset` is a file or folder a run reads that this package does not ship: the weights of
an open_clip tag (in open_clip's download cache) or a data set (under ``data_root``). Runs and
sweeps call :func:`check_assets` before the first run starts; it only reads the disk (no network
call) and raises :class:`MissingAssetError` naming every missing asset, where it was looked for,
and the ``avalanche-clip prepare`` command that fetches (or says how to place) it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: The prepare command named in errors raised outside the CLI (the CLI names the real one).
GENERIC_PREPARE = "avalanche-clip prepare --config <this run or sweep config>"


@dataclass(frozen=True)
class Asset:
    """One file set a run reads.

    Attributes:
        kind: ``"weights"`` or ``"data"``.
        name: what it is, e.g. ``"ViT-B-16 'laion2b_s34b_b88k'"``.
        location: where it is looked for (a cache folder and file names, or a data root).
        layout: for data, what the root must hold (one line per path pattern).
        present: whether it was found (reading the disk only).
        missing: what exactly is absent (empty when present).
        checked: how its content is checked (MD5 / SHA-256 / layout at build time).
        fetch: downloads it into ``location`` (needs network); None when it is placed by hand.
        fetch_host: the host ``fetch`` contacts (``prepare`` probes it once before fetching).
        how_to_get: for assets placed by hand, where to get them and how to lay them out.
        verify: checks a present asset's content (``prepare`` only; slow for large files);
            returns a note, or raises ValueError when the content is wrong.
    """

    kind: str
    name: str
    location: str
    present: bool
    layout: str = ""
    missing: str = ""
    checked: str = ""
    fetch: Callable[[], Any] | None = field(default=None, compare=False)
    fetch_host: str | None = None
    how_to_get: str = ""
    verify: Callable[[], str] | None = field(default=None, compare=False)


class MissingAssetError(FileNotFoundError):
    """Assets a run or sweep needs are not on this machine; raised before any training."""

    def __init__(self, assets: Iterable[Asset], prepare_command: str = GENERIC_PREPARE) -> None:
        self.assets = list(assets)
        self.prepare_command = prepare_command
        super().__init__(self.assets)

    def __str__(self) -> str:
        lines = [f"{len(self.assets)} asset(s) this config needs are not on this machine "
                 "(checked before any run started; nothing was run):"]
        for asset in self.assets:
            lines.append(f"  - {asset.kind} {asset.name}: {asset.missing}; looked for {asset.location}")
            if asset.layout:
                lines.append(indent_layout(asset.layout, "      "))
        lines.append(f"Fetch them on a machine with network with: {self.prepare_command}")
        lines.append("(it downloads what has a download and says where to place the rest; copy the "
                     "caches here unless they are on a shared file system: HF_HOME or HF_HUB_CACHE "
                     "choose the Hugging Face cache)")
        return "\n".join(lines)


def indent_layout(layout: str, prefix: str) -> str:
    """``layout``'s lines, each indented by ``prefix`` (whatever indentation they had)."""
    return "\n".join(prefix + line.strip() for line in layout.splitlines())
