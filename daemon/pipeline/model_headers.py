"""What a model file holds, read without its tensor data: key names, dtypes and shapes.

A ``.safetensors`` file is an 8-byte little-endian header length, a JSON header (each tensor's dtype,
shape and byte range in the data that follows, plus optional ``__metadata__`` strings), then the data.
:func:`read_safetensors_header` reads the first two with the standard library and checks the ranges
against the file's size, so a 4 GB checkpoint is read in microseconds and a truncated download is told
apart from a whole one without reading it.

A pickled checkpoint (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) is opened by :func:`read_pickle_tensors`
with ``torch.load(weights_only=True, mmap=True)``: torch's restricted unpickler builds only tensors and
plain containers (never arbitrary objects), and memory-mapping leaves the tensor data on disk. torch is
imported there, and only there, so listing a library of safetensors files never imports it.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_HEADER_BYTES",
    "HeaderError",
    "SafetensorsHeader",
    "TensorInfo",
    "read_pickle_tensors",
    "read_safetensors_header",
]

MAX_HEADER_BYTES = 100_000_000
"""The safetensors format's own limit on a header (the reference reader refuses larger ones)."""

_ITEM_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a file: its dtype name (``F16``, or torch's ``torch.float16``) and shape."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class SafetensorsHeader:
    """A safetensors file's tensors (``tensors``), its ``__metadata__`` strings, how many bytes of it were
    read (``header_bytes``: the length field and the JSON), and what is wrong with the data that follows
    (``problem``: truncated, or bytes after the last tensor), if anything."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    header_bytes: int
    problem: str | None = None


class HeaderError(ValueError):
    """The file is not what its suffix says, or is cut short; the message says why (the caller names the file)."""


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """The header of the safetensors file ``path``, checked against the file's length; reads nothing else.

    Raises :class:`HeaderError` for a file too short for a header, a header that is not a JSON object of
    tensors, and byte ranges that do not match the shapes or do not tile the data; ``OSError`` when it
    cannot be read at all. A whole header over data that runs past the end of the file (``truncated``) or
    stops short of it is returned with its ``problem``: what the file was meant to be is still known.
    """
    with open(path, "rb") as file:  # the builtin, looked up here: tests count the bytes read through it
        size = file.seek(0, 2)
        file.seek(0)
        if size < 8:
            raise HeaderError(f"too short for a safetensors file ({size} bytes)")
        (length,) = struct.unpack("<Q", file.read(8))
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise HeaderError(
                f"not a safetensors file: it declares a header of {length} bytes in a file of {size} bytes"
            )
        raw = file.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HeaderError(f"not a safetensors file: its header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise HeaderError("not a safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise HeaderError("corrupt safetensors header: __metadata__ is not an object")
    tensors, data_bytes = _tensors(header)
    available = size - 8 - length
    problem = None
    if data_bytes > available:
        problem = (
            f"truncated: the header declares {data_bytes} bytes of tensor data, the file holds {available} "
            "(an unfinished download or copy); download it again"
        )
    elif data_bytes < available:
        problem = f"corrupt: {available - data_bytes} bytes after the last tensor (not a valid safetensors file)"
    strings = {str(key): str(value) for key, value in metadata.items()}
    return SafetensorsHeader(tensors, strings, 8 + length, problem)


def _tensors(header: Mapping[str, Any]) -> tuple[dict[str, TensorInfo], int]:
    """The header's tensors and the length of the data they tile (each range right after the previous)."""
    tensors: dict[str, TensorInfo] = {}
    ranges: list[tuple[int, int, str]] = []
    for key, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            valid = (
                isinstance(dtype, str)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (*shape, begin, end))
                and begin <= end
            )
        except (TypeError, KeyError, ValueError):
            valid = False
        if not valid:
            raise HeaderError(f"corrupt safetensors header: tensor {key!r} has no valid dtype, shape and data_offsets")
        count = 1
        for dimension in shape:
            count *= dimension
        bits = _ITEM_BITS.get(dtype)
        if bits is not None and end - begin != (count * bits + 7) // 8:
            raise HeaderError(
                f"corrupt safetensors header: tensor {key!r} spans {end - begin} bytes, not {dtype}{shape}"
            )
        tensors[key] = TensorInfo(dtype, tuple(shape))
        ranges.append((begin, end, key))
    position = 0
    for begin, end, key in sorted(ranges):
        if begin != position:
            raise HeaderError(f"corrupt safetensors header: tensor {key!r} does not start where the previous one ends")
        position = end
    return tensors, position


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_pickle_tensors(path: Path) -> dict[str, TensorInfo] | None:
    """The named tensors of a pickled checkpoint (a ``state_dict`` inside is unwrapped), read with
    ``torch.load(weights_only=True, mmap=True)``: the data stays on disk.

    Returns ``None`` for a pickle in torch's old (pre-zip) format, which cannot be memory-mapped: its keys
    are known only by loading it whole. Raises :class:`HeaderError` for a pickle that needs arbitrary
    objects (refused: unpickling them could run any code) and for one that is not a checkpoint at all.
    """
    import pickle
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            start = file.read(2)
        if start[:1] == b"\x80":  # a pickle protocol marker: torch's old format
            return None
        raise HeaderError("not a pickled checkpoint (neither torch's zip format nor a pickle)")
    try:
        state: object = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        found = _GLOBAL.search(str(error))
        needs = f" ({found.group(1)})" if found else ""
        raise HeaderError(
            f"a pickle that needs arbitrary objects{needs}: refused, since checkpoints are read with "
            "weights_only=True only and unpickling other objects can run any code; if you trust its source, "
            "convert it to .safetensors"
        ) from None
    except Exception as error:
        raise HeaderError(f"not a readable pickled checkpoint ({type(error).__name__}: {error})") from None
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise HeaderError(f"holds a {type(state).__name__}, not named tensors")
    return {
        key: TensorInfo(str(value.dtype), tuple(value.shape))
        for key, value in state.items()
        if isinstance(key, str) and isinstance(value, torch.Tensor)
    }
