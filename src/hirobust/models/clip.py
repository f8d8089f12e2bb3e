"""Loading open_clip models: built-in names with a pretrained tag or a local file, and hirobust's small configs."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..errors import ConfigError

CONFIG_DIR = resources.files(__package__).joinpath("configs")


@functools.lru_cache(maxsize=1)
def register_configs() -> list[str]:
    """Register hirobust's small model configs (``hirobust-*``) with open_clip; returns their names."""
    import open_clip

    open_clip.add_model_config(Path(str(CONFIG_DIR)))
    return sorted(p.name[:-5] for p in CONFIG_DIR.iterdir() if p.name.endswith(".json"))


@dataclass
class LoadedCLIP:
    """An open_clip model with what a zero-shot classifier needs to know about it."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    pretrained: str | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int


SCHEMAS = ("hf-hub:", "local-dir:")  # open_clip's own ways to name a model with its weights


def _schema_config(name: str) -> dict:
    """The model config of an ``hf-hub:org/repo`` or ``local-dir:/path`` model (config and weights come together)."""
    from open_clip import factory

    schema, ident = name.split(":", 1)
    try:
        if schema == "local-dir":
            data = json.loads((Path(ident) / "open_clip_config.json").read_text())
        else:
            data = factory._get_hf_config(ident)
    except Exception as e:  # no network and not in the Hugging Face cache, or no such folder/file
        where = ("download open_clip_config.json and open_clip_model.safetensors from "
                 f"https://huggingface.co/{ident} into a folder and pass local-dir:/that/folder (or fill the Hugging "
                 "Face cache, $HF_HOME, on a machine with network)") if schema == "hf-hub" else \
            "give a folder holding open_clip_config.json and open_clip_model.safetensors"
        raise ConfigError(f"model {name!r}: its config cannot be read ({type(e).__name__}); {where}") from e
    if not isinstance(data, dict) or "model_cfg" not in data:
        raise ConfigError(f"model {name!r}: open_clip_config.json has no 'model_cfg'")
    return data["model_cfg"]


def model_config(name: str) -> dict:
    import open_clip

    if name.startswith(SCHEMAS):
        return _schema_config(name)
    register_configs()
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ConfigError(
            f"unknown model {name!r}: use an open_clip architecture (e.g. ViT-B-32; `python -c \"import open_clip; "
            f"print(open_clip.list_models())\"`) or one of hirobust's {register_configs()}"
        )
    return cfg


def _unreadable(e: Exception) -> bool:
    """An error of reading the checkpoint file itself (not of matching it to the architecture)."""
    import pickle

    names = ("SafetensorError", "UnpicklingError", "HeaderTooLarge", "HeaderTooSmall")
    text = str(e)
    return (type(e).__name__ in names or isinstance(e, (pickle.UnpicklingError, EOFError))
            or "weights_only" in text or "deserializ" in text or "PytorchStreamReader" in text)


def _mismatch(e: Exception, name: str, pretrained: str | None) -> None:
    import re

    msg = (str(e).splitlines() or [type(e).__name__])[0]
    extra = re.findall(r'Unexpected key\(s\) in state_dict: "([^"]*)"', str(e))
    if extra and "Missing key" not in str(e) and "size mismatch" not in str(e):
        first = repr(extra[0])
        raise ConfigError(f"checkpoint {pretrained!r} holds tensors model {name!r} does not have (e.g. {first}); "
                         f"it was edited or saved with extra state: remove them or re-export the model") from e
    mismatch = ("size mismatch", "Missing key", "Unexpected key", "changed", "shape")
    if isinstance(e, (AssertionError, KeyError)) or any(s in str(e) for s in mismatch):
        raise ConfigError(
            f"checkpoint {pretrained!r} does not match model {name!r} ({msg[:200]}); pass the model name it was "
            f"trained with"
        ) from e
    raise ConfigError(f"could not load model {name!r} with pretrained={pretrained!r}: {msg[:300]}") from e


def embedded_path(name: str) -> Path:
    """Where the embedded weights of architecture ``name`` (trained on this machine by ``hirobust pretrain`` or the
    demo, then cached) are kept: ``$HIROBUST_CACHE/models/<name>-embedded.safetensors``."""
    from ..hierarchy.wordnet import cache_dir

    return cache_dir() / "models" / f"{name}-embedded.safetensors"


def load_clip(name: str, pretrained: str | None = None, device: str | torch.device = "cpu",
              seed: int | None = 0) -> LoadedCLIP:
    """An open_clip model by architecture ``name`` with ``pretrained`` = None (random init), a tag such as
    ``"openai"`` (needs the network or open_clip's cache), a path to a checkpoint file, or ``"embedded"``: the
    embedded model's weights trained on this machine (``hirobust pretrain``; :func:`embedded_path`).

    Random weights are drawn from the CPU generator seeded with ``seed`` (the caller's random state is left as it
    was), so they are the same in every process and on every rank: a random model evaluated under torchrun is one
    model on every shard. ``seed=None``: from the caller's random state as it is (pretraining seeds it itself).

    Raises ``ValueError`` with the fix for unknown names, missing files, and checkpoints of another architecture.
    """
    import open_clip

    if pretrained == "embedded":
        path = embedded_path(name)
        if not path.is_file():
            raise ConfigError(f"no embedded weights for {name!r} on this machine yet: they are trained here on first "
                             f"use; run `hirobust pretrain` (about 4 min on 2 CPU cores) or `make demo`, then load "
                             f"again")
        pretrained = str(path)

    model_config(name)  # validates the name (and, for hf-hub:/local-dir: names, that their config can be read)
    if name.startswith(SCHEMAS):
        pretrained = None  # the schema names the weights too
    if pretrained and (os.sep in pretrained or pretrained.endswith((".safetensors", ".pt", ".bin", ".pth"))):
        if not Path(pretrained).is_file():
            raise ConfigError(
                f"checkpoint {pretrained!r} does not exist; give a checkpoint file path or a pretrained tag"
            )
    try:
        if pretrained or seed is None:
            model = open_clip.create_model(name, pretrained=pretrained or None, device=device)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                model = open_clip.create_model(name, pretrained=None, device=device)
    except Exception as e:
        if pretrained and Path(pretrained).is_file() and _unreadable(e):  # truncated, corrupt, or a pickle
            raise ConfigError(f"checkpoint {pretrained!r} cannot be read ({type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0][:150]}); hirobust loads safetensors files and "
                             f"weights-only torch checkpoints, never arbitrary pickles: re-export or re-download "
                             f"it") from e
        if not isinstance(e, (RuntimeError, AssertionError, KeyError)):
            raise
        _mismatch(e, name, pretrained)
    model.eval()
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = pp.get("size", getattr(model.visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        size = size[0]
    return LoadedCLIP(
        model=model,
        tokenizer=open_clip.get_tokenizer(name),
        name=name,
        pretrained=pretrained,
        mean=tuple(pp.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        std=tuple(pp.get("std", (0.26862954, 0.26130258, 0.27577711))),
        image_size=int(size),
    )


def export_open_clip(model: torch.nn.Module, name: str, out_dir: str | Path, mean=None, std=None) -> Path:
    """Write ``out_dir/open_clip_model.safetensors`` + ``open_clip_config.json``, loadable unchanged by
    ``open_clip.create_model_and_transforms(name, pretrained=<file>)`` or ``("local-dir:" + out_dir)``."""
    from ..io import atomic_write, save_safetensors

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v for k, v in model.state_dict().items() if k != "attn_mask"}
    path = save_safetensors(sd, out / "open_clip_model.safetensors")
    cfg = {"model_cfg": model_config(name)}
    if mean is not None:
        cfg["preprocess_cfg"] = {"mean": list(mean), "std": list(std)}
    atomic_write(out / "open_clip_config.json", lambda tmp: Path(tmp).write_text(json.dumps(cfg, indent=1)))
    return path
