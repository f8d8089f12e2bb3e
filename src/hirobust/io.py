"""Atomic file writes (temp file + rename): a crash never leaves a half-written checkpoint or report."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


def _atomic(path: str | Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Contiguous CPU copies of ``tensors`` (shared storage duplicated) into ``path``, atomically."""
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return _atomic(path, lambda tmp: save_file(flat, tmp, metadata=metadata))


def load_safetensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt or not a safetensors file ({e}); delete it and rerun"
        ) from e


def write_json(obj, path: str | Path) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default)
    return _atomic(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def write_text(text: str, path: str | Path) -> Path:
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")
