"""Where a run happens and where its results come from: the device, the environment, the provenance record."""

from __future__ import annotations

import functools
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda if available, else cpu; under torchrun, joins the process group (this rank's GPU)."""
    import torch

    from .. import distributed

    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use device=cpu")
    return distributed.init_from_env(torch.device(device))


def environment() -> dict:
    import open_clip
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "open_clip": open_clip.__version__,
            "hirobust": _version(), "platform": platform.platform(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


@functools.lru_cache(maxsize=1)
def code_state() -> tuple:
    """The git commit of the code this process runs and whether it had uncommitted changes, read once: the first
    call (a job calls it when it starts) fixes it, so a long run whose checkout moves on meanwhile still names the
    code it imported, not a later HEAD. (("commit", None), ("dirty", None)) outside a checkout."""
    import subprocess

    try:
        here = Path(__file__).parent
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10)
            return ("commit", head.stdout.strip()), ("dirty", bool(status.stdout.strip()))
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout (an installed wheel)
        pass
    return ("commit", None), ("dirty", None)


def provenance(config: dict | None = None) -> dict:
    """Where a result comes from: the command line, the git commit of the code (and whether it had uncommitted
    changes), versions, device, the seeds and a digest of the resolved config."""
    import hashlib
    import shlex
    import sys

    git = dict(code_state())
    env = environment()
    text = json.dumps(config or {}, sort_keys=True, default=str)
    seeds = {k: v for k, v in _find_seeds(config or {}).items()}
    return {"command": shlex.join(["hirobust", *sys.argv[1:]]) if sys.argv else None, "git": git,
            "versions": {k: env[k] for k in ("hirobust", "torch", "open_clip", "python")},
            "device": env["cuda"] or f"cpu ({env['threads']} threads)", "seeds": seeds,
            "config_digest": hashlib.sha1(text.encode()).hexdigest()[:12]}


def _find_seeds(config: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_find_seeds(v, f"{prefix}{k}."))
        elif k == "seed":
            out[f"{prefix}{k}"] = v
    return out


def _version() -> str:
    from .. import __version__

    return __version__

