"""Reading pickles from untrusted files: numpy arrays and plain containers only.

CIFAR-10 is published as Python pickles, and ``pickle.load`` runs whatever a
crafted file asks for. A checksum does not help: with ``verify = false`` or
checksums pinned by the study file, the file is whatever the user was given.
:class:`RestrictedUnpickler` resolves only the few globals a numpy array's
pickle names (as written by Python 2 and 3 and by numpy 1 and 2); any other
global, ``os.system`` for instance, stops the load before it is called. The
standard library has no such unpickler, and numpy's ``allow_pickle=False``
refuses these files outright, hence this small one (the pattern the ``pickle``
documentation recommends under "Restricting Globals").
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from numpy._core import multiarray, numeric


def _dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("arrays of Python objects are not allowed")
    return dtype


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(text, "latin1").
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
    ("_codecs", "encode"): _latin1,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, numbers, strings, bytes and containers only.

    Raises:
        pickle.UnpicklingError: From :meth:`load`, when the pickle names any
            other global (nothing it names is imported or called).
    """

    def find_class(self, module: str, name: str) -> Any:
        """The allowed global ``module.name``; refuse every other one."""
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"the pickle asks for {module}.{name}, which a data file never needs"
            ) from None


def load_restricted(stream: IO[bytes], *, encoding: str = "ASCII") -> Any:
    """``pickle.load(stream)`` restricted to arrays and plain data (see the module doc)."""
    return RestrictedUnpickler(stream, encoding=encoding).load()
