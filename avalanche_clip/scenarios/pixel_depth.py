"""8-bit RGB from images of any bit depth Pillow reads.

``Image.convert("RGB")`` clips instead of scaling: a 16-bit grayscale PNG (Pillow mode
``I;16``, values up to 65,535) or a 32-bit integer TIFF (mode ``I``) becomes all white, a float
TIFF in [0, 1] (mode ``F``) all black. :func:`to_rgb8` scales such images by the full range of
their sample format instead, ``v8 = round(v * 255 / full)``:

==========================  =========================================  =====================
Pillow mode                 from                                       ``full``
==========================  =========================================  =====================
``I;16``, ``I;16B`` ...     16-bit grayscale PNG / TIFF                 65,535
``I``                       TIFF with BitsPerSample b (SampleFormat)    2^b - 1 (unsigned),
                                                                        2^(b-1) - 1 (signed)
``I``                       16-bit PGM / PNG (Pillow scales to 16 bit)  65,535
``F``                       32-bit float TIFF, values in [0, 1]         1
==========================  =========================================  =====================

Negative values, float images outside [0, 1] and integer images of unknown depth cannot be
mapped without guessing and are refused with :class:`UnsupportedImageError`. 16-bit RGB(A)
PNGs are already reduced to 8 bits by Pillow (high byte) and pass through ``convert``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_TIFF_BITS_PER_SAMPLE, _TIFF_SAMPLE_FORMAT, _SIGNED = 258, 339, 2


class UnsupportedImageError(ValueError):
    """An image whose pixel values have no unambiguous 8-bit form."""


def to_rgb8(img: Image.Image) -> Image.Image:
    """``img`` as an 8-bit RGB image, scaling high-bit-depth grayscale (module docstring)."""
    if img.mode in _SIXTEEN_BIT_MODES:
        full = 65535.0
    elif img.mode == "I":
        full = _integer_full_scale(img)
    elif img.mode == "F":
        full = 1.0
    else:
        return img.convert("RGB")
    values = np.asarray(img, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > full:
        raise UnsupportedImageError(
            f"{img.mode} image with values in [{low:g}, {high:g}], outside [0, {full:g}]; "
            "convert it to 8-bit first"
        )
    eight_bit = np.rint(values * (255.0 / full)).astype(np.uint8)
    return Image.fromarray(eight_bit, mode="L").convert("RGB")


def _integer_full_scale(img: Image.Image) -> float:
    tags = getattr(img, "tag_v2", None)
    if tags is not None and _TIFF_BITS_PER_SAMPLE in tags:
        bits = _first(tags[_TIFF_BITS_PER_SAMPLE])
        signed = _first(tags.get(_TIFF_SAMPLE_FORMAT, 1)) == _SIGNED
        return float(2 ** (bits - 1) - 1 if signed else 2**bits - 1)
    if img.format in ("PNG", "PPM"):
        return 65535.0
    raise UnsupportedImageError(f"32-bit integer {img.format or 'image'} of unknown bit depth")


def _first(value: object) -> int:
    return int(value[0]) if isinstance(value, tuple) else int(value)  # type: ignore[arg-type]


__all__ = ["UnsupportedImageError", "to_rgb8"]
