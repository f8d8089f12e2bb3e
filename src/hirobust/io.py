"""Atomic file writes (temp file + rename): a crash never leaves a half-written checkpoint or report."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import torch

from .errors import ConfigError, NotFound


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write) -> Path:
    """The one way hirobust writes a file: ``write(tmp)`` fills a temporary file beside ``path``, which then
    replaces ``path`` in one step; a failure (full disk, a kill) leaves the old file, or none, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual permissions
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

    def write(tmp):
        try:
            save_file(flat, tmp, metadata=metadata)
        except OSError:
            raise
        except Exception as e:  # safetensors' own error wraps the OS's: give it back its errno (full disk, quota)
            import errno

            for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG):
                if os.strerror(code) in str(e):
                    raise OSError(code, os.strerror(code), str(path)) from e
            raise

    return atomic_write(path, write)


def load_safetensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise NotFound(f"checkpoint {str(path)!r} does not exist")
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ConfigError(
            f"checkpoint {str(path)!r} is corrupt or not a safetensors file ({e}); delete it and rerun"
        ) from e


def copy_file(src: str | Path, dst: str | Path) -> Path:
    """``src`` copied to ``dst`` atomically (:func:`atomic_write`)."""
    import shutil

    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's content: what a cached result or a resumed run is keyed on (a path, a size or a
    time can stay the same while the content changes)."""
    import hashlib

    with open(path, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def source_digest(source) -> str | None:
    """:func:`file_digest` of ``source`` when it names a file; the text itself for a tag (``openai``); None for
    None."""
    if source is None:
        return None
    return file_digest(source) if Path(str(source)).is_file() else str(source)


def json_digest(obj) -> str:
    """``sha256:<hex>`` of a JSON-able value (keys sorted)."""
    import hashlib

    return "sha256:" + hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _finite(obj):
    """NaN and inf (an undefined rate, e.g. a TSR with no correct image) become null: reports stay strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(obj, path: str | Path) -> Path:
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def write_text(text: str, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


class RunLock:
    """An advisory lock (``fcntl.flock``) on a run directory: one writer at a time. A second process gets a
    ``ValueError`` naming the holder's pid. Released on exit, and by the OS when the process dies (kill -9).
    ``shared``: held together with other shared holders (the slices of a study), never with an exclusive one."""

    def __init__(self, run_dir: str | Path, shared: bool = False):
        self.path = Path(run_dir) / ".hirobust.lock"
        self._f = None
        self.shared = shared

    def __enter__(self):
        import fcntl

        d = self.path.parent
        try:
            if d.exists() and not d.is_dir():
                raise ConfigError(f"output {str(d)!r} is a file, not a directory; give --out a directory path")
            d.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise ConfigError(f"{str(self.path)!r} (hirobust's lock file) is a directory; remove it, then rerun")
            f = open(self.path, "a+")
        except OSError as e:
            raise ConfigError(f"cannot write into output directory {str(d)!r} ({e.strerror}); "
                             f"choose another --out") from e
        try:
            fcntl.flock(f, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise ConfigError(f"run directory {str(self.path.parent)!r} is in use by another hirobust process (pid "
                             f"{holder}); wait for it to finish or use another --out") from None
        if not self.shared:  # slices do not name themselves: the file names the one exclusive holder
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
        self._f = f
        return self

    def __exit__(self, *exc):
        import fcntl

        if self._f is not None:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()
            self._f = None
        return False


class RunLog:
    """Everything the ``hirobust`` loggers say while a run works on ``run_dir``, appended to ``run_dir/run.log``
    (with times), beginning with the run's provenance and resolved config."""

    def __init__(self, run_dir: str | Path, header: dict | None = None):
        self.path = Path(run_dir) / "run.log"
        self.header = header or {}
        self._h = None

    def __enter__(self):
        import logging

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._h = logging.FileHandler(self.path, encoding="utf-8")
        self._h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log = logging.getLogger("hirobust")
        log.addHandler(self._h)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)
        import dataclasses

        for k, v in self.header.items():  # to the file only: the console shows what the run does, not its config
            v = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
            self._to_file(logging.INFO, "%s: %s", k, json.dumps(v, default=str))
        return self

    def _to_file(self, level: int, msg: str, *args) -> None:
        """A record for run.log alone (not the console handler the command line adds to the same logger)."""
        import logging

        self._h.handle(logging.makeLogRecord({"name": "hirobust", "levelno": level,
                                              "levelname": logging.getLevelName(level), "msg": msg, "args": args}))

    def __exit__(self, *exc):
        import logging

        if exc[0] is not None:  # to the file only: the command line prints the error itself
            self._to_file(logging.ERROR, "stopped by %s: %s", exc[0].__name__, exc[1])
        logging.getLogger("hirobust").removeHandler(self._h)
        self._h.close()
        return False
