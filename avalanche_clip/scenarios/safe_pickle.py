"""Load data pickles without running code from them.

``pickle.load`` calls whatever function a file names, so a file dropped where a data set is
expected could run anything. :func:`load_data_pickle` resolves only the globals that data
pickles of plain containers and numpy arrays need, and refuses every other one *before* it is
called (the refusal names it):

- ``numpy.ndarray``, ``numpy.dtype`` and numpy's array-rebuilding helpers (``_reconstruct`` as
  written by numpy 1 and 2, ``_frombuffer`` for protocol-5 pickles), which only build arrays
  from a shape, a dtype and raw bytes;
- ``_codecs.encode``, restricted to latin-1: Python 3 writes ``bytes`` that way in protocol-2
  pickles.

Plain containers, strings, bytes and numbers need no globals at all.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

from avalanche_clip.scenarios.errors import DataLayoutError


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    if encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


_reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own, wherever it lives


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    # numpy's pickle-5 helper does the same; ours accepts only what an array needs
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"refusing an array with order {order!r}")
    return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape, order=order)


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}


class UnsafePickleError(DataLayoutError):
    """A data pickle refers to a function or class that data never needs."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{module}.{name}") from None


def load_data_pickle(path: str | os.PathLike[str], *, encoding: str = "latin1",
                     what: str = "data") -> Any:
    """Unpickle ``path`` allowing only :data:`ALLOWED_GLOBALS` (see the module docstring).

    Raises:
        UnsafePickleError: the file names another global; nothing it names was called.
        DataLayoutError: the file is not a pickle (truncated, foreign); the message names it.
    """
    try:
        with open(path, "rb") as stream:
            return _DataUnpickler(stream, encoding=encoding).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(
            f"{path} refers to {err}, which a {what} file never needs; refusing to load it (a "
            "pickle can run code: replace the file with the official one)"
        ) from None
    except Exception as err:  # a truncated or foreign file: say which one
        raise DataLayoutError(f"{path} is not a {what} pickle ({type(err).__name__}: {err})") from err


__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load_data_pickle"]
