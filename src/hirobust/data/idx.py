"""Reader for the idx format of (Fashion-)MNIST, raw or gzip-compressed, with clear errors for bad files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError


def read_idx(path: str | Path) -> torch.Tensor:
    """An idx file (``.gz`` or raw) as a uint8 tensor with the file's shape.

    Raises ``ValueError`` naming the file for a bad magic number, a non-uint8 type, or a truncated body.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ConfigError(f"{path}: corrupt or truncated gzip file ({e}); delete it and fetch the data again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ConfigError(f"{path}: not an idx file (bad magic number); fetch the data again")
    if raw[2] != 0x08:
        raise ConfigError(f"{path}: idx type code {raw[2]:#x} is not unsigned byte (0x08)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ConfigError(f"{path}: truncated idx header; fetch the data again")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    n = int(np.prod(shape)) if shape else 0
    body = raw[4 + 4 * ndim :]
    if len(body) != n:
        raise ConfigError(f"{path}: truncated or padded idx body ({len(body)} bytes, expected {n} for shape {shape}); "
                         f"fetch the data again")
    return torch.from_numpy(np.frombuffer(body, dtype=np.uint8).copy()).view(*shape)
