"""Python objects <-> artifact bytes, chosen by type: what ``%aeg save VAR`` and ``%aeg load ID`` use.

| object                     | stored as             | mime                             | kind      |
| -------------------------- | --------------------- | -------------------------------- | --------- |
| ``str``                    | UTF-8 text (``.txt``) | ``text/plain; charset=utf-8``    | text      |
| ``bytes`` / ``bytearray``  | raw bytes (``.bin``)  | ``application/octet-stream``     | bytes     |
| ``dict`` / ``list``        | JSON (``.json``)      | ``application/json``             | json      |
| pandas ``DataFrame``       | Parquet (``.parquet``)| ``application/vnd.apache.parquet``| dataframe |
| numpy ``ndarray``          | ``.npy``              | ``application/x-npy``            | array     |
| matplotlib ``Figure``      | PNG (``.png``)        | ``image/png``                    | plot      |
| anything else, opt-in      | pickle (``.pkl``)     | ``application/x-python-pickle``  | pickle    |

Loading is the inverse, decided by the artifact's mime type (else its file extension); a PNG
comes back as :class:`PngImage` (bytes that notebooks display), a pickle only with
``allow_pickle=True`` because unpickling runs code from the file. pandas, numpy and matplotlib are
imported only when such an object is met.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
from dataclasses import dataclass
from typing import Any

from ..base.errors import InvalidInputError, PickleNotAllowedError
from ..base.jsoncodec import loads_limited

TEXT = "text/plain; charset=utf-8"
BYTES = "application/octet-stream"
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
NPY = "application/x-npy"
PNG = "image/png"
PICKLE = "application/x-python-pickle"

_BY_EXT = {
    ".txt": TEXT, ".md": TEXT, ".csv": TEXT, ".log": TEXT, ".json": JSON, ".parquet": PARQUET, ".npy": NPY,
    ".png": PNG, ".pkl": PICKLE, ".pickle": PICKLE, ".bin": BYTES,
}  # fmt: skip
SAVABLE = "str, bytes, dict/list (JSON), a pandas DataFrame, a numpy array or a matplotlib figure"


@dataclass(frozen=True, slots=True)
class Encoded:
    """An object's bytes and how they are stored: default kind, file extension and mime type."""

    data: bytes
    kind: str
    ext: str
    mime: str


class PngImage(bytes):
    """PNG bytes that Jupyter displays as an image (what loading a saved figure returns)."""

    def _repr_png_(self) -> bytes:
        return bytes(self)

    def __repr__(self) -> str:
        return f"<PngImage {len(self)} bytes>"


def _is(obj: Any, module: str, cls: str) -> bool:
    """``isinstance(obj, module.cls)`` without importing ``module`` when the caller never did."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(obj, getattr(mod, cls))


def encode(obj: Any, *, allow_pickle: bool = False) -> Encoded:
    """Serialize ``obj`` by its type (see the module table).

    Raises:
        InvalidInputError: the type has no safe format and ``allow_pickle`` is False, or the
            object cannot be written in its format (the message says what to do).

    Example:
        >>> encode({"lr": 0.001}).mime
        'application/json'
        >>> encode("hi").data
        b'hi'
    """
    if isinstance(obj, str):
        return Encoded(obj.encode("utf-8"), "text", ".txt", TEXT)
    if isinstance(obj, bytes | bytearray | memoryview):
        return Encoded(bytes(obj), "bytes", ".bin", BYTES)
    if isinstance(obj, dict | list):
        try:
            text = json.dumps(obj, ensure_ascii=False, indent=1, allow_nan=True)
        except (TypeError, ValueError, RecursionError) as exc:
            if allow_pickle:
                return _pickle(obj)
            raise InvalidInputError(
                f"this {type(obj).__name__} is not JSON-encodable ({_short(exc)}); "
                "convert its values to str/number/list/dict, or add --pickle"
            ) from None
        return Encoded(text.encode("utf-8"), "json", ".json", JSON)
    if _is(obj, "pandas", "DataFrame"):
        buf = io.BytesIO()
        try:
            obj.to_parquet(buf)
        except Exception as exc:  # pyarrow raises several types for unsupported columns
            if allow_pickle:
                return _pickle(obj)
            raise InvalidInputError(
                f"this DataFrame cannot be stored as Parquet ({_short(exc)}); "
                "make column names strings and columns one type each, or add --pickle"
            ) from None
        return Encoded(buf.getvalue(), "dataframe", ".parquet", PARQUET)
    if _is(obj, "numpy", "ndarray"):
        import numpy as np

        buf = io.BytesIO()
        try:
            np.save(buf, obj, allow_pickle=False)
        except ValueError:
            if allow_pickle:
                return _pickle(obj)
            raise InvalidInputError(
                "this numpy array holds Python objects, which .npy stores only by pickling; "
                "convert it with .astype(...) or add --pickle"
            ) from None
        return Encoded(buf.getvalue(), "array", ".npy", NPY)
    if _is(obj, "matplotlib.figure", "Figure"):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", bbox_inches="tight")
        return Encoded(buf.getvalue(), "plot", ".png", PNG)
    if allow_pickle:
        return _pickle(obj)
    raise InvalidInputError(
        f"aeg saves {SAVABLE} by type; this {type(obj).__name__} needs --pickle (loading a pickle later runs code from it)"
    )


def _pickle(obj: Any) -> Encoded:
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # pickling raises whatever the object's __reduce__ raises
        raise InvalidInputError(f"cannot pickle this {type(obj).__name__}: {_short(exc)}") from None
    return Encoded(data, "pickle", ".pkl", PICKLE)


def mime_of(mime: str | None, name: str | None) -> str:
    """The format to decode with: the stored mime (parameters dropped), else the name's extension."""
    base = (mime or "").split(";")[0].strip().lower()
    if base and base != BYTES:
        return TEXT if base.startswith("text/") else base
    ext = os.path.splitext(name or "")[1].lower()
    return _BY_EXT.get(ext, base or BYTES)


def is_pickle(mime: str | None, name: str | None) -> bool:
    """True when :func:`decode` would unpickle (so it needs ``allow_pickle=True``)."""
    return mime_of(mime, name) == PICKLE


def decode(data: bytes, *, mime: str | None, name: str | None = None, allow_pickle: bool = False) -> Any:
    """The Python object for stored bytes: the inverse of :func:`encode`.

    Unknown formats come back as ``bytes``.

    Raises:
        PickleNotAllowedError: the bytes are a pickle and ``allow_pickle`` is False.

    Example:
        >>> decode(b'{"a": 1}', mime="application/json")
        {'a': 1}
    """
    fmt = mime_of(mime, name)
    if fmt == TEXT:
        return data.decode("utf-8")
    if fmt == JSON:
        try:
            return loads_limited(data)
        except ValueError:  # not JSON, or nested too deeply to walk safely: the text
            return data.decode("utf-8", errors="replace")
    if fmt == PARQUET:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if fmt == NPY:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == PNG:
        return PngImage(data)
    if fmt == PICKLE:
        if not allow_pickle:
            raise PickleNotAllowedError(
                "this artifact is a pickle and unpickling runs code from it; "
                "load it only if you trust where it came from, with --allow-pickle"
            )
        return pickle.loads(data)
    return data


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


__all__ = ["SAVABLE", "Encoded", "PngImage", "decode", "encode", "is_pickle", "mime_of"]
