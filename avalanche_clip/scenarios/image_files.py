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

from collections.abc import Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from avalanche_clip.scenarios.errors import ImageReadError, MissingDataError
from avalanche_clip.scenarios.pixel_depth import UnsupportedImageError, to_rgb8

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


__all__ = [
    "IMG_EXTENSIONS",
    "ArrayImageDataset",
    "ImageFileDataset",
    "is_image_file",
    "read_image",
]
