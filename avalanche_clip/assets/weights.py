"""The weights asset of a (model, pretrained) pair.

- ``None``: random initialisation, nothing to read;
- an offline tag (``effnet-lite0-clip`` / ``imagenet``): shipped in installed pip packages;
- a local checkpoint file: must exist;
- an open_clip tag: its file in open_clip's download cache (:mod:`avalanche_clip.models.hub`),
  fetched by ``prepare`` with open_clip's own downloader and checked by SHA-256 (the Hub stores
  large files under their SHA-256; open_clip's URL downloads carry it in the URL).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

from avalanche_clip.assets.core import Asset
from avalanche_clip.models import OFFLINE_MODELS
from avalanche_clip.models.factory import (
    CHECKPOINT_SUFFIXES,
    DEFAULT_PRETRAINED,
    default_pretrained,
)
from avalanche_clip.models.hub import fetch_pretrained, locate_pretrained, pretrained_location

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def weight_asset(model: str, pretrained: str | None) -> Asset | None:
    """The asset of ``model`` loaded with ``pretrained`` (None when nothing is read)."""
    if pretrained == DEFAULT_PRETRAINED:
        pretrained = default_pretrained(model)
    if pretrained is None or pretrained == "":
        return None
    text = str(pretrained)
    name = f"{model} {text!r}"
    if model in OFFLINE_MODELS and text in OFFLINE_MODELS[model]:
        return Asset("weights", name, "installed Python packages (offline tag)", present=True,
                     checked="shipped with the package 'avalanche-clip[offline]'; nothing to download")
    path = Path(text).expanduser()
    if path.is_file() or "/" in text or os.sep in text or text.endswith(CHECKPOINT_SUFFIXES):
        return Asset("weights", name, f"local checkpoint {path}", present=path.is_file(),
                     missing="" if path.is_file() else "the file does not exist",
                     checked="loaded with torch.load(weights_only=True) into the architecture")
    location = pretrained_location(model, text)
    found = locate_pretrained(model, text)
    return Asset(
        "weights", name, location.describe(), present=found is not None,
        missing="" if found else "not in open_clip's download cache",
        checked="SHA-256 of the file (prepare)",
        fetch=lambda: _fetch(model, text),
        fetch_host=urlparse(location.url).hostname if location.url else _hub_host(),
        verify=(lambda: _verify_sha256(found, location.url)) if found else None,
    )


def _fetch(model: str, tag: str) -> Path:
    return fetch_pretrained(model, tag)


def _hub_host() -> str:
    from huggingface_hub import constants

    return urlparse(constants.ENDPOINT).hostname or "huggingface.co"


def _verify_sha256(path: Path, url: str | None) -> str:
    """Check the file against the SHA-256 its cache records (the Hub's blob name for large files,
    or the prefix open_clip's URLs carry); a note saying what was checked."""
    blob = Path(os.path.realpath(path))
    expected = blob.name if _SHA256.match(blob.name) else None
    if expected is None and url and "openaipublic" in url:
        expected = url.split("/")[-2]
    if expected is None:
        return "no recorded SHA-256 to check against"
    digest = hashlib.sha256()
    with open(blob, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 22), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected):
        raise ValueError(f"{blob} has SHA-256 {digest.hexdigest()}, expected {expected}: a damaged "
                         "download; delete it and run prepare again")
    return "SHA-256 matches"
