"""Sources over image files on disk: the ImageFolder layout and DomainNet's split-file layout.

ImageFolder (``split-imagefolder``, ``split-imagenet``)::

    root/train/<class>/<image>      label = index of <class> among the sorted class folders
    root/test/<class>/<image>       (ImageNet: root/val/<wnid>/<image>)

DomainNet layout (``domain-folder``, ``domainnet``)::

    root/<domain>/<class>/<image>
    root/<domain>_train.txt         lines "<domain>/<class>/<image> <label>"
    root/<domain>_test.txt

Only file names are read here (no image is decoded), so building a source is cheap; images are
decoded on access (or all at once with ``decode_cache``). Every file a split file names must exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from avalanche_clip.scenarios.errors import DataLayoutError, MissingDataError, missing_root_message
from avalanche_clip.scenarios.image_files import IMG_EXTENSIONS, ImageFileDataset
from avalanche_clip.scenarios.source import (
    CLASS_INCREMENTAL,
    DOMAIN_INCREMENTAL,
    DataSource,
    SplitData,
)
from avalanche_clip.scenarios.walk import image_files_under

IMAGEFOLDER_LAYOUT = "  <root>/{train}/<class>/<image>.jpg\n  <root>/{test}/<class>/<image>.jpg"
DOMAIN_LAYOUT = (
    "  <root>/<domain>/<class>/<image>.jpg\n"
    "  <root>/<domain>_train.txt and <root>/<domain>_test.txt, lines '<domain>/<class>/<image>.jpg <label>'"
)


def require_root(root: str | os.PathLike | None, what: str, layout: str, how_to_get: str) -> Path:
    """``root`` as a Path; a clear error if it is missing or not given."""
    if root is None:
        raise ValueError(
            f"{what} needs root=<data directory>. Expected layout:\n{layout}\n{how_to_get}"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingDataError(missing_root_message(what, path, layout, how_to_get))
    return path


def folder_text(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 (Linux allows them) as ``\\xNN``
    escapes, which, unlike ``U+FFFD``, keep two such class names (and their prompts) apart."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def scan_image_folder(split_dir: Path) -> tuple[list[str], list[str], list[int]]:
    """``(classes, paths, targets)`` of an ImageFolder split; files sorted within each class."""
    classes = sorted(
        e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")
    )
    if not classes:
        raise DataLayoutError(
            f"{split_dir} has no class folders; expected {split_dir}/<class>/<image>"
        )
    paths: list[str] = []
    targets: list[int] = []
    for label, cls in enumerate(classes):
        found = image_files_under(split_dir / cls)
        if not found:
            raise DataLayoutError(
                f"class folder {split_dir / cls} has no image files (extensions {', '.join(IMG_EXTENSIONS)})"
            )
        paths.extend(found)
        targets.extend([label] * len(found))
    return classes, paths, targets


def image_folder_source(
    root: str | os.PathLike | None,
    *,
    name: str,
    train_dir: str = "train",
    test_dir: str = "test",
    class_name_fn: Callable[[list[str]], list[str]] | None = None,
    how_to_get: str = "arrange the images as shown (torchvision ImageFolder layout).",
    default_n_experiences: int | None = None,
    train_only: bool = False,
) -> DataSource:
    """A class-incremental source from ``root/<train_dir>`` and ``root/<test_dir>`` ImageFolders.

    ``class_name_fn`` maps the sorted folder names to readable class names (default: the folder
    names with underscores as spaces). ``train_only``: the test folder is not read (it need not
    exist); the source has no test split.
    """
    layout = IMAGEFOLDER_LAYOUT.format(train=train_dir, test=test_dir)
    base = require_root(root, name, layout, how_to_get)
    splits = {}
    for split in (train_dir,) if train_only else (train_dir, test_dir):
        d = base / split
        if not d.is_dir():
            raise DataLayoutError(
                f"{name}: {d} is missing. Expected layout:\n{layout}\n{how_to_get}"
            )
        try:
            splits[split] = scan_image_folder(d)
        except DataLayoutError as e:
            raise DataLayoutError(
                f"{name}: {e}. Expected layout:\n{layout}\n{how_to_get}"
            ) from None
    train_classes, train_paths, train_targets = splits[train_dir]
    test_classes, test_paths, test_targets = splits.get(test_dir, (train_classes, None, None))
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataLayoutError(
            f"{name}: {train_dir}/ and {test_dir}/ must have the same class folders; "
            f"only in {train_dir}: {only_train[:5]}, only in {test_dir}: {only_test[:5]}"
        )
    names = (
        class_name_fn(train_classes)
        if class_name_fn
        else [c.replace("_", " ") for c in train_classes]
    )
    names = [folder_text(n) for n in names]
    return DataSource(
        name=name,
        kind=CLASS_INCREMENTAL,
        train=SplitData(ImageFileDataset(train_paths, train_targets), train_targets),
        test=None if train_only else SplitData(ImageFileDataset(test_paths, test_targets), test_targets),
        class_names=names,
        default_n_experiences=default_n_experiences,
        root=str(base),
        extra={"class_folders": train_classes},
    )


def discover_domains(root: Path) -> list[str]:
    """Domains with a ``<domain>_train.txt`` in ``root``, sorted."""
    return sorted(p.name[: -len("_train.txt")] for p in root.glob("*_train.txt") if p.is_file())


def read_split_file(path: Path) -> list[tuple[str, int]]:
    """``[(relative path, label), ...]`` from a DomainNet split file."""
    if not path.is_file():
        raise MissingDataError(
            f"split file {path} does not exist; expected lines '<domain>/<class>/<image> <label>'"
        )
    rows = []
    # surrogateescape: a listed name that is not UTF-8 is read as the bytes of the file it names
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DataLayoutError(
                    f"{path}:{lineno}: expected '<relative/path.jpg> <label>', got {line!r}"
                )
            rows.append((parts[0], int(parts[1])))
    if not rows:
        raise DataLayoutError(f"split file {path} lists no images")
    return rows


def check_files_exist(paths: Sequence[str], listed_in: str) -> None:
    """Raise :class:`MissingDataError` naming the missing files (one directory listing per folder)."""
    listing: dict[str, set[str]] = {}
    missing = []
    for p in paths:
        parent, fname = os.path.split(p)
        if parent not in listing:
            listing[parent] = set(os.listdir(parent)) if os.path.isdir(parent) else set()
        if fname not in listing[parent]:
            missing.append(p)
    if missing:
        shown = "\n  ".join(missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise MissingDataError(
            f"{len(missing)} image(s) named in {listed_in} do not exist:\n  {shown}{more}\n"
            "Re-extract the data set's image archives next to its split files."
        )


def select_domains(available: list[str], domains: Sequence[str] | None, what: str) -> list[str]:
    if domains is None:
        return list(available)
    if isinstance(domains, str):
        domains = [d.strip() for d in domains.split(",") if d.strip()]
    chosen = list(domains)
    unknown = [d for d in chosen if d not in available]
    if unknown:
        raise ValueError(f"{what}: unknown domain(s) {unknown}; available: {available}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"{what}: domains {chosen} repeat a domain")
    if not chosen:
        raise ValueError(f"{what}: domains is empty; available: {available}")
    return chosen


def domain_folder_source(
    root: str | os.PathLike | None,
    domains: Sequence[str] | None = None,
    *,
    name: str = "domain-folder",
    expected_domains: Sequence[str] | None = None,
    how_to_get: str = "arrange the images and split files as shown (DomainNet's layout).",
    check_files: bool = True,
    train_only: bool = False,
) -> DataSource:
    """A domain-incremental source from a DomainNet-layout root.

    Args:
        root: the data root.
        domains: which domains, in stream order (default: ``expected_domains`` if given, else
            every ``<domain>_train.txt`` found, sorted). The full train set is the train files
            of these domains concatenated in this order, so global indices follow it.
        expected_domains: domains that must all be present (DomainNet's six).
        check_files: check that every listed image exists (one directory listing per folder).
        train_only: the test split files are not read (they need not exist); no test split.
    """
    base = require_root(root, name, DOMAIN_LAYOUT, how_to_get)
    available = discover_domains(base)
    if not available:
        raise DataLayoutError(
            f"{name}: no <domain>_train.txt in {base}. Expected layout:\n{DOMAIN_LAYOUT}\n{how_to_get}"
        )
    if expected_domains is not None:
        absent = [d for d in expected_domains if d not in available]
        if absent:
            raise DataLayoutError(
                f"{name}: split files for domains {absent} are missing in {base} (found {available}). "
                f"Expected layout:\n{DOMAIN_LAYOUT}\n{how_to_get}"
            )
        available = list(expected_domains) + [d for d in available if d not in expected_domains]
    chosen = select_domains(available, domains if domains is not None else expected_domains, name)

    label_to_folder: dict[int, str] = {}
    labels_of: dict[tuple[str, str], set[int]] = {}  # (domain, split) -> labels listed
    splits: dict[str, tuple[list[str], list[int], list[int]]] = {}
    for split in ("train",) if train_only else ("train", "test"):
        paths: list[str] = []
        targets: list[int] = []
        dom_ids: list[int] = []
        for d_id, dom in enumerate(chosen):
            split_file = base / f"{dom}_{split}.txt"
            rows = read_split_file(split_file)
            labels_of[dom, split] = {label for _, label in rows}
            for rel, label in rows:
                folder = Path(rel).parent.name
                if label < 0:
                    raise DataLayoutError(f"{split_file}: negative label {label} for {rel}")
                prev = label_to_folder.setdefault(label, folder)
                if prev != folder:
                    raise DataLayoutError(
                        f"{split_file}: label {label} is class folder {folder!r} here but {prev!r} elsewhere"
                    )
            file_paths = [str(base / rel) for rel, _ in rows]
            if check_files:
                check_files_exist(file_paths, str(split_file))
            paths.extend(file_paths)
            targets.extend(label for _, label in rows)
            dom_ids.extend([d_id] * len(rows))
        splits[split] = (paths, targets, dom_ids)

    for dom in [] if train_only else chosen:  # as for ImageFolder roots: every domain's test split has its train classes
        only_train = sorted(labels_of[dom, "train"] - labels_of[dom, "test"])
        only_test = sorted(labels_of[dom, "test"] - labels_of[dom, "train"])
        if only_train or only_test:
            raise DataLayoutError(
                f"{name}: {dom}_train.txt and {dom}_test.txt must list the same classes; only in "
                f"train: {[label_to_folder[c] for c in only_train][:5]}, only in test: "
                f"{[label_to_folder[c] for c in only_test][:5]}"
            )
    num_classes = max(label_to_folder) + 1
    unnamed = [c for c in range(num_classes) if c not in label_to_folder]
    if unnamed:
        raise DataLayoutError(
            f"{name}: labels {unnamed[:5]} never appear in the split files of {chosen}"
        )
    folders = [label_to_folder[c] for c in range(num_classes)]
    train_p, train_t, train_d = splits["train"]
    test = None
    if not train_only:
        test_p, test_t, test_d = splits["test"]
        test = SplitData(ImageFileDataset(test_p, test_t), test_t, test_d)
    return DataSource(
        name=name,
        kind=DOMAIN_INCREMENTAL,
        train=SplitData(ImageFileDataset(train_p, train_t), train_t, train_d),
        test=test,
        class_names=[folder_text(f).replace("_", " ") for f in folders],
        domain_names=chosen,
        default_n_experiences=len(chosen),
        root=str(base),
        extra={"class_folders": folders},
    )


__all__ = [
    "DOMAIN_LAYOUT",
    "IMAGEFOLDER_LAYOUT",
    "discover_domains",
    "domain_folder_source",
    "image_folder_source",
    "read_split_file",
    "scan_image_folder",
]
