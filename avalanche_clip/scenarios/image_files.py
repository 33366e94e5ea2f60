"""Plain torch datasets over image files and over decoded image arrays.

Both return ``(PIL.Image in RGB, label)`` items, so torchvision / open_clip transforms apply
unchanged, and both support ``subset(indices)`` so a scenario can subsample before any image is
decoded. Reading errors name the file: a missing file raises :class:`MissingDataError`, an
undecodable one :class:`ImageReadError`.

Example::

    ds = ImageFileDataset(["a/0.jpg", "b/1.jpg"], [0, 1])
    img, label = ds[0]
    ds.verify()                 # decode every file now; one error listing the bad ones
    fast = ds.decode()          # ArrayImageDataset: all pixels in memory, same items
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .errors import DataLayoutError, ImageReadError, MissingDataError
from .pixel_depth import UnsupportedImageError, to_rgb8

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def is_image_file(name: str) -> bool:
    """Whether ``name`` has one of the (case-insensitive) image extensions torchvision accepts."""
    return name.lower().endswith(IMG_EXTENSIONS)


def read_image(path: str) -> Image.Image:
    """Decode ``path`` into an RGB PIL image; errors name the file and say what to do."""
    try:
        with Image.open(path) as img:
            return to_rgb8(img)
    except UnsupportedImageError as e:
        raise ImageReadError(f"cannot use image {path!r}: {e}") from None
    except Image.DecompressionBombError as e:  # checked from the header, before any decoding
        raise ImageReadError(
            f"cannot use image {path!r}: {str(e).rstrip('.')}; Pillow refuses images of more than "
            f"twice PIL.Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS}) pixels. Downscale or remove "
            "it (a script that trusts its images may raise PIL.Image.MAX_IMAGE_PIXELS)."
        ) from None
    except FileNotFoundError as e:
        raise MissingDataError(
            f"image file {path!r} does not exist; the data set's file list names it. "
            "Re-extract the data set or fix its split files."
        ) from e
    except (OSError, ValueError, SyntaxError) as e:  # UnidentifiedImageError is an OSError
        raise ImageReadError(
            f"cannot decode image {path!r}: {e}. The file is corrupt or truncated; "
            "re-extract it from the original archive (or remove it and its split-file line)."
        ) from e


class ImageFileDataset(Dataset):
    """Images read from files on every access.

    Args:
        paths: image file paths, one per sample.
        targets: integer class label per sample.
    """

    def __init__(self, paths: Sequence[str], targets: Sequence[int]) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} paths but {len(targets)} targets")
        self.paths = [str(p) for p in paths]
        self.targets = [int(t) for t in targets]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return read_image(self.paths[i]), self.targets[i]

    def subset(self, indices: Sequence[int]) -> ImageFileDataset:
        return ImageFileDataset(
            [self.paths[i] for i in indices], [self.targets[i] for i in indices]
        )

    def verify(self) -> None:
        """Decode every file once; raise one :class:`ImageReadError` naming the bad files."""
        bad: list[str] = []
        for p in self.paths:
            try:
                read_image(p)
            except (MissingDataError, ImageReadError) as e:
                bad.append(str(e))
        if bad:
            shown = "\n  ".join(bad[:5])
            more = f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ImageReadError(
                f"{len(bad)} of {len(self)} images cannot be read:\n  {shown}{more}"
            )

    def decode(
        self, cache_dir: str | os.PathLike | None = None, num_workers: int = 0
    ) -> ArrayImageDataset:
        """All images decoded once into one uint8 array ``(N, H, W, 3)`` (see ``decode_cache``)."""
        from .decode_cache import decode_images

        images = decode_images(self.paths, cache_dir=cache_dir, num_workers=num_workers)
        return ArrayImageDataset(images, self.targets)


class ArrayImageDataset(Dataset):
    """Images held as a uint8 array ``(N, H, W, 3)`` or ``(N, H, W)`` (grayscale, made RGB).

    ``subset`` keeps a view (an index list), so a memory-mapped array is never copied.
    """

    def __init__(
        self, images: np.ndarray, targets: Sequence[int], indices: Sequence[int] | None = None
    ) -> None:
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"expected a uint8 array (N, H, W[, 3]), got {images.dtype} {images.shape}"
            )
        self.images = images
        self.indices = list(range(len(images))) if indices is None else [int(i) for i in indices]
        all_targets = [int(t) for t in targets]
        if len(all_targets) == len(images) and indices is not None:
            all_targets = [all_targets[i] for i in self.indices]
        if len(all_targets) != len(self.indices):
            raise ValueError(f"{len(self.indices)} images but {len(all_targets)} targets")
        self.targets = all_targets

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        img = Image.fromarray(np.asarray(self.images[self.indices[i]]))
        if img.mode != "RGB":
            img = img.convert("RGB")
        return img, self.targets[i]

    def subset(self, indices: Sequence[int]) -> ArrayImageDataset:
        return ArrayImageDataset(
            self.images, [self.targets[i] for i in indices], [self.indices[i] for i in indices]
        )


class _ArrayReader(Dataset):
    """Index → decoded uint8 array; used to decode with DataLoader worker processes."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(read_image(self.paths[i]))


def _as_list(batch: list[Any]) -> list[Any]:
    return batch


def iter_decoded(paths: Sequence[str], num_workers: int = 0):
    """Yield ``(index, HxWx3 uint8 array)`` for ``paths`` in order, decoding in worker processes."""
    if num_workers <= 0:
        for i, p in enumerate(paths):
            yield i, np.asarray(read_image(p))
        return
    loader = DataLoader(
        _ArrayReader(paths), batch_size=256, num_workers=num_workers, collate_fn=_as_list
    )
    i = 0
    for batch in loader:
        for arr in batch:
            yield i, arr
            i += 1


def check_same_shape(
    shape: tuple[int, ...], first: tuple[int, ...], path: str, first_path: str
) -> None:
    if shape != first:
        raise DataLayoutError(
            f"decode_cache needs images of one size: {path!r} is {shape}, {first_path!r} is {first}. "
            "Resize the data set first or build the scenario with decode_cache=False."
        )


__all__ = [
    "IMG_EXTENSIONS",
    "ArrayImageDataset",
    "ImageFileDataset",
    "is_image_file",
    "read_image",
]
