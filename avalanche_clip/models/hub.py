"""Where open_clip keeps a pretrained tag's weights, found without any network call.

open_clip downloads a tag's weights on first use, from the Hugging Face Hub (``hf_hub`` in the
tag's pretrained config, into the Hub cache: ``$HF_HUB_CACHE``, default
``~/.cache/huggingface/hub``) or, for the few tags without a Hub repository, from a URL (into
``~/.cache/clip``). Without network each first use costs about a minute of retries before it
fails, so runs look the file up here instead, and load it as a local file when it is there:

    path = locate_pretrained("ViT-B-16", "laion2b_s34b_b88k")    # Path, or None if not cached
    location = pretrained_location("ViT-B-16", "laion2b_s34b_b88k")
    location.describe()     # "Hugging Face repo laion/... file open_clip_model.safetensors or ... in ..."
    fetch_pretrained("ViT-B-16", "laion2b_s34b_b88k")            # open_clip's own download

The lookup follows open_clip 3.3's ``download_pretrained``: a Hub repository is preferred when the
tag has one (and ``huggingface_hub`` is installed), and a ``.safetensors`` sibling of the named file
is tried before it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


@dataclass(frozen=True)
class PretrainedLocation:
    """Where one tag's weights are cached: a Hub repo and candidate files, or a URL's file."""

    model: str
    tag: str
    cache_dir: Path
    repo_id: str | None = None
    filenames: tuple[str, ...] = ()
    url: str | None = None

    def describe(self) -> str:
        if self.repo_id:
            return (f"Hugging Face repo {self.repo_id}, file {' or '.join(self.filenames)}, "
                    f"in the Hub cache {self.cache_dir}")
        return f"{self.url} as {self.cache_dir / os.path.basename(self.url or '')}"


def _hub_available() -> bool:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return False
    return True


def _candidate_files(filename: str) -> tuple[str, ...]:
    """The safetensors sibling first (open_clip prefers it when it exists), then the file."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if filename == HF_WEIGHTS_NAME:
        return HF_SAFE_WEIGHTS_NAME, filename
    stem, suffix = os.path.splitext(filename)
    if suffix in (".bin", ".pth"):
        return stem + ".safetensors", filename
    return (filename,)


def pretrained_location(model: str, tag: str, cache_dir: str | os.PathLike | None = None) -> PretrainedLocation:
    """Where open_clip caches the weights of ``model`` / ``tag`` (a known open_clip tag)."""
    import open_clip
    from open_clip.constants import HF_WEIGHTS_NAME

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        raise ValueError(f"{tag!r} is not an open_clip pretrained tag of {model!r}")
    if cfg.get("hf_hub") and _hub_available():
        from huggingface_hub import constants

        repo_id, filename = os.path.split(cfg["hf_hub"])
        return PretrainedLocation(
            model, tag, Path(cache_dir or constants.HF_HUB_CACHE), repo_id=repo_id,
            filenames=_candidate_files(filename or HF_WEIGHTS_NAME),
        )
    if cfg.get("url"):
        return PretrainedLocation(model, tag, Path(cache_dir or Path("~/.cache/clip").expanduser()),
                                  url=cfg["url"])
    raise ValueError(f"open_clip tag {tag!r} of {model!r} names neither a Hub repository nor a URL")


def locate_pretrained(model: str, tag: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The cached weight file of ``model`` / ``tag``, or None; reads the disk only."""
    location = pretrained_location(model, tag, cache_dir)
    if location.repo_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in location.filenames:
            found = try_to_load_from_cache(location.repo_id, filename, cache_dir=location.cache_dir)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
        return None
    path = location.cache_dir / os.path.basename(location.url or "")
    return path if path.is_file() else None


def tag_preprocess(model: str, tag: str) -> dict[str, object]:
    """The preprocessing a tag was trained with (what open_clip merges in when it loads a tag),
    for loading the tag's cached file as a local checkpoint."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    return {key: cfg[key] for key in _PREPROCESS_KEYS if cfg.get(key) is not None}


def fetch_pretrained(model: str, tag: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Download ``model`` / ``tag`` with open_clip's own downloader (needs network); returns the
    cached file, which :func:`locate_pretrained` then finds."""
    import open_clip

    target = open_clip.download_pretrained(open_clip.get_pretrained_cfg(model, tag),
                                           cache_dir=None if cache_dir is None else str(cache_dir))
    if not target or not Path(target).is_file():
        raise FileNotFoundError(f"open_clip returned no file for {model} {tag!r} ({target!r})")
    return Path(target)
