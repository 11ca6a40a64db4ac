"""Arrow arrays and scalars built from buffers, for the paths that open a store.

NOTE: pyarrow (26) imports pandas the first time ``pa.array``, ``pa.scalar`` or a compute function
given a Python value converts anything (it asks whether the value is a pandas object): 0.5-2 s on
this machine, more than the whole cold-open budget of a format-2 store (``docs/format2.md``). The
constructors here build the same values from raw buffers, which never asks. Writes (building whole
tables from rows) use ``pa.Table.from_pydict`` as usual: they happen after the open.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_DTYPES = {
    pa.float64(): np.dtype(np.float64),
    pa.int64(): np.dtype(np.int64),
    pa.int32(): np.dtype(np.int32),
    pa.uint8(): np.dtype(np.uint8),
}


def string_array(values: Sequence[str]) -> pa.Array:
    """A ``string`` array of ``values`` (no nulls).

    Example:
        >>> string_array(["a", "bc"]).to_pylist()
        ['a', 'bc']
    """
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    return pa.StringArray.from_buffers(len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data)))


def repeated_string(value: str, n: int) -> pa.Array:
    """``value`` ``n`` times, as a ``string`` array (a partition column)."""
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(raw))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def int64_array(values: np.ndarray | Sequence[int]) -> pa.Array:
    """An ``int64`` array (row indices for ``take``)."""
    arr = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(arr), [None, pa.py_buffer(arr)])


def numpy_view(arr: pa.Array) -> np.ndarray:
    """A fixed-width Arrow array without nulls as a numpy view of its data buffer (no copy).

    Example:
        >>> numpy_view(int64_array([1, 2])).tolist()
        [1, 2]
    """
    if arr.null_count:
        raise ValueError("numpy_view needs an array without nulls (fill them first)")
    dtype = np.dtype(np.int64) if pa.types.is_timestamp(arr.type) else _DTYPES[arr.type]
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def string_scalar(value: str) -> pa.Scalar:
    """A ``string`` scalar."""
    return string_array([value])[0]


def float_scalar(value: float) -> pa.Scalar:
    """A ``double`` scalar."""
    return pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(np.array([value], np.float64))])[0]


def bool_scalar(value: bool) -> pa.Scalar:
    """A ``bool`` scalar."""
    return pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(bytes([1 if value else 0]))])[0]


__all__ = [
    "bool_scalar",
    "float_scalar",
    "int64_array",
    "numpy_view",
    "repeated_string",
    "string_array",
    "string_scalar",
]
