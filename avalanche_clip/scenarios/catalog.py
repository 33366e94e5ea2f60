"""Registered scenarios over image files: the generic folder scenarios and the two paper data sets
that are served by exactly the same code.

- ``split-imagefolder``: any ``train/`` + ``test/`` ImageFolder root, class-incremental
  (default 5 experiences; e.g. CIFAR-10 as JPEGs: 5 x 2).
- ``split-imagenet``: ImageNet-1K from ``train/<wnid>`` + ``val/<wnid>``, 10 x 100 by default,
  with readable class names (first WordNet lemma, from timm's offline ``ImageNetInfo``; the wnid
  where timm or the synset is unavailable).
- ``domain-folder``: any DomainNet-layout root, domain-incremental; domains discovered from
  ``*_train.txt`` (sorted) unless ``domains`` is given (e.g. PACS: 4 domains x 7 classes).
- ``domainnet``: DomainNet (Peng et al., ICCV 2019), the six domains in the canonical order
  clipart, infograph, painting, quickdraw, real, sketch (``domains`` reorders / selects), 345 classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from avalanche_clip.scenarios.folders import domain_folder_source, image_folder_source
from avalanche_clip.scenarios.registry import SCENARIOS
from avalanche_clip.scenarios.source import CLASS_INCREMENTAL, DOMAIN_INCREMENTAL, DataSource

DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
DOMAINNET_HOW_TO_GET = (
    "download the six domain zips and their <domain>_train.txt / <domain>_test.txt split files "
    "from the official DomainNet page http://ai.bu.edu/M3SDA/ "
    "(files under http://csr.bu.edu/ftp/visda/2019/multi-source/) and extract them all into root."
)
IMAGENET_HOW_TO_GET = (
    "download ILSVRC2012 (https://image-net.org/download.php, registration required), extract the "
    "train archives into train/<wnid>/ and sort the validation images into val/<wnid>/ "
    "(e.g. with the widely used valprep.sh)."
)


# Two ImageNet-1K synset pairs share their first lemma; these names (as in OpenAI CLIP's curated
# ImageNet class names) keep every class distinguishable by its prompt.
IMAGENET_NAME_OVERRIDES = {
    "n02012849": "crane bird",
    "n03126707": "construction crane",
    "n03710637": "maillot",
    "n03710721": "tank suit",
}


def imagenet_class_names(wnids: Sequence[str]) -> list[str]:
    """Readable names for ImageNet synset ids: the first WordNet lemma ("tench" for n01440764).

    Uses timm's bundled synset → lemma table (offline), with :data:`IMAGENET_NAME_OVERRIDES`
    for the two first-lemma collisions (crane, maillot), so the 1,000 names are unique; falls
    back to the wnid itself when timm is not installed or does not know the synset.
    """
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo("imagenet-1k")
    except Exception:  # timm missing or its layout changed: wnids are still valid names
        return list(wnids)
    names = []
    for w in wnids:
        if w in IMAGENET_NAME_OVERRIDES:
            names.append(IMAGENET_NAME_OVERRIDES[w])
            continue
        try:
            names.append(info.label_name_to_description(w).split(",")[0].strip() or w)
        except KeyError:
            names.append(w)
    return names


@SCENARIOS.register(
    "split-imagefolder",
    kind=CLASS_INCREMENTAL,
    description="any train/ + test/ ImageFolder root, class-incremental (default 5 experiences)",
)
def split_imagefolder_source(
    root: str | os.PathLike | None, *, train_dir: str = "train", test_dir: str = "test",
    train_only: bool = False,
) -> DataSource:
    """Any ImageFolder root (class folder names, underscores as spaces, are the class names)."""
    return image_folder_source(
        root,
        name="split-imagefolder",
        train_only=train_only,
        train_dir=train_dir,
        test_dir=test_dir,
        default_n_experiences=5,
    )


@SCENARIOS.register(
    "split-imagenet",
    kind=CLASS_INCREMENTAL,
    description="ImageNet-1K from train/<wnid> + val/<wnid>, 10 experiences of 100 classes",
)
def split_imagenet_source(root: str | os.PathLike | None, *, train_only: bool = False) -> DataSource:
    """ImageNet-1K in the ImageFolder layout with readable class names."""
    return image_folder_source(
        root,
        name="split-imagenet",
        train_only=train_only,
        train_dir="train",
        test_dir="val",
        class_name_fn=imagenet_class_names,
        how_to_get=IMAGENET_HOW_TO_GET,
        default_n_experiences=10,
    )


@SCENARIOS.register(
    "domain-folder",
    kind=DOMAIN_INCREMENTAL,
    description="any DomainNet-layout root (<domain>/<class>/*, <domain>_{train,test}.txt), one experience per domain",
)
def domain_folder(
    root: str | os.PathLike | None, domains: Sequence[str] | None = None, *,
    train_only: bool = False,
) -> DataSource:
    """Any DomainNet-layout root; domains from ``*_train.txt`` (sorted) unless given."""
    return domain_folder_source(root, domains, name="domain-folder", train_only=train_only)


@SCENARIOS.register(
    "domainnet",
    kind=DOMAIN_INCREMENTAL,
    description="DomainNet: 6 domains (clipart, infograph, painting, quickdraw, real, sketch), 345 classes",
)
def domainnet_source(
    root: str | os.PathLike | None, domains: Sequence[str] | None = None, *,
    train_only: bool = False,
) -> DataSource:
    """DomainNet in its official layout; all six domains' split files must be present."""
    return domain_folder_source(
        root,
        domains,
        name="domainnet",
        train_only=train_only,
        expected_domains=DOMAINNET_DOMAINS,
        how_to_get=DOMAINNET_HOW_TO_GET,
    )


__all__ = [
    "DOMAINNET_DOMAINS",
    "domain_folder",
    "domainnet_source",
    "imagenet_class_names",
    "split_imagefolder_source",
    "split_imagenet_source",
]
