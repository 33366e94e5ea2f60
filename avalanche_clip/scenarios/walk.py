"""List the image files below a folder, following symbolic links but never around a loop.

Links are followed (data sets are often assembled from links into other disks), but a link to a
folder that is already being walked — the folder itself or one of its ancestors, as in
``cat/loop -> ..`` — or to one already listed would repeat images, and under a class folder
would pull every other class's images into that class. Such links are skipped, each with a
:class:`DataLayoutWarning` naming the link and where it points.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from avalanche_clip.scenarios.errors import DataLayoutWarning
from avalanche_clip.scenarios.image_files import is_image_file


def image_files_under(folder: str | os.PathLike[str]) -> list[str]:
    """Image files below ``folder`` (sorted within each folder, folders depth-first in name
    order), skipping links to folders already on the walk (see the module docstring)."""
    top = os.fspath(folder)
    visited = {os.path.realpath(top)}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real_here = os.path.realpath(dirpath)
        kept = []
        for name in sorted(dirnames):
            path = os.path.join(dirpath, name)
            target = os.path.realpath(path)
            if _loops(target, real_here, visited):
                shown = f"the link {path} -> {os.readlink(path)}" if os.path.islink(path) else path
                warnings.warn(
                    f"skipped {shown}: it leads to {target}, which is already being read "
                    "(following it would repeat images)", DataLayoutWarning, stacklevel=2,
                )
                continue
            visited.add(target)
            kept.append(name)
        dirnames[:] = kept
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_image_file(f))
    return found


def _loops(target: str, here: str, visited: set[str]) -> bool:
    """Whether walking ``target`` from ``here`` revisits a folder: an ancestor or itself, or one
    already walked."""
    inside = Path(here) == Path(target) or Path(target) in Path(here).parents
    return inside or target in visited


__all__ = ["image_files_under"]
