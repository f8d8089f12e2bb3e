"""A fine-tuned run directory: the one place that knows its format, and saves and loads it.

``out/hirobust.json``  what the run is: method, architecture, the weights' source, the head (kind and scalars),
                       the config, the environment and provenance (the application passes the last three);
``out/model/``         the fine-tuned open_clip model (``open_clip_model.safetensors`` + its config: loads in open_clip
                       without hirobust), and ``hirobust_head.safetensors`` when the head has tensors of its own.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..hierarchy import Forest
from ..io import load_safetensors, save_safetensors, write_json
from .clip import LoadedCLIP, export_open_clip, load_clip, model_config
from .heads import TextSpec, head_class
from .zeroshot import build_cosine_classifier

META = "hirobust.json"
WEIGHTS = "model/open_clip_model.safetensors"
HEAD_TENSORS = "model/hirobust_head.safetensors"


def is_run_dir(source) -> bool:
    """Whether ``source`` is a path to a fine-tuned run directory (one holding ``hirobust.json``)."""
    return isinstance(source, (str, Path)) and (Path(source) / META).exists()


def save_run(out: str | Path, method, clip: LoadedCLIP, *, method_name: str, model_name: str, source: str | None,
             extra: dict | None = None) -> Path:
    """Write ``method``'s trained classifier as run directory ``out``: the open_clip model, the head's tensors and
    ``hirobust.json`` (``extra``: more JSON-able entries, e.g. config, environment, provenance). The head is saved
    as its kind's ``head_state`` (:mod:`.heads`), through ``method.head_state()``."""
    out = Path(out)
    export_open_clip(clip.model, model_name, out / "model", clip.mean, clip.std)
    head = method.head_state()
    extras = head.pop("tensors", {})
    if extras:
        save_safetensors(extras, out / HEAD_TENSORS)
    from ..io import file_digest

    digests = {WEIGHTS: file_digest(out / WEIGHTS)}
    if extras:
        digests[HEAD_TENSORS] = file_digest(out / HEAD_TENSORS)
    meta = {"kind": "hirobust-finetuned", "method": method_name, "model": model_name, "source": source,
            "weights": WEIGHTS, "head": head, "digests": digests, **(extra or {})}
    return write_json(meta, out / META)


def _check_digests(run: Path, meta: dict) -> None:
    """The run's files are the ones its ``hirobust.json`` was written with (a head or weights file copied in from
    another run, or edited, is refused by name); runs written before digests existed are not checked."""
    from ..io import file_digest

    digests = meta.get("digests")
    if not isinstance(digests, dict):
        return
    for rel, want in digests.items():
        f = run / rel
        if not f.is_file():
            raise ConfigError(f"{str(run / META)!r} lists {rel!r}, which is missing; the run is incomplete, "
                             f"fine-tune again")
        if file_digest(f) != want:
            raise ConfigError(f"{str(f)!r} is not the file this run wrote (its content changed, or it comes from "
                             f"another run); restore it or fine-tune again")
    if not (run / HEAD_TENSORS).is_file() or HEAD_TENSORS in digests:
        return
    raise ConfigError(f"{str(run / HEAD_TENSORS)!r} was not written by this run (hirobust.json lists no head "
                     f"tensors); remove it or fine-tune again")


def read_run_meta(run_dir: str | Path) -> dict:
    """A fine-tuned run directory's ``hirobust.json``, checked: a JSON object with ``model`` and ``weights``, the
    weights inside the run directory (``weights_path`` added). Errors name the file and what is wrong."""
    from ..hierarchy import read_json

    f = Path(run_dir) / META
    meta = read_json(f)
    if not isinstance(meta, dict):
        raise ConfigError(f"{str(f)!r} must hold a JSON object; the run directory is damaged, fine-tune again")
    for key in ("model", "weights"):
        if not isinstance(meta.get(key), str):
            raise ConfigError(f"{str(f)!r} lacks the key {key!r} (a string); the run directory is damaged, fine-tune "
                             f"again")
    root = Path(run_dir).resolve()
    weights = (root / meta["weights"]).resolve()
    if root not in weights.parents:
        raise ConfigError(f"{str(f)!r}: weights path {meta['weights']!r} points outside the run directory; refusing "
                         f"to load it")
    if not weights.is_file():
        raise ConfigError(f"{str(f)!r}: its weights {meta['weights']!r} are missing from the run directory; the run "
                         f"is incomplete, fine-tune again")
    return {**meta, "weights_path": str(weights)}


def source_image_size(source: str | dict) -> int:
    """The input size of a model source (a run directory or {"name", ...}) from its config, without loading it."""
    if isinstance(source, dict):
        name = source["name"]
    else:
        name = read_run_meta(source)["model"]
    size = model_config(name)["vision_cfg"].get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def load_classifier(source: str | Path | dict, forest: Forest, templates: list[str], prompt_names: dict | None = None,
                    device="cpu"):
    """A classifier from a fine-tuned run directory, or from ``{"name", "pretrained"}`` (CLIP's cosine head), with
    one head per tree of ``forest``, its text made from ``templates`` (and ``prompt_names``: class -> prompt name)."""
    if is_run_dir(source):
        meta = read_run_meta(source)
        clip = load_clip(meta["model"], meta["weights_path"], device=device)
        head = meta.get("head", {"head": "cosine"})
        if not isinstance(head, dict):
            raise ConfigError(f"{str(Path(source) / META)!r}: head must be a JSON object, got {head!r}; the run "
                             f"directory is damaged, fine-tune again")
        _check_head_values(head, str(Path(source) / META))
        _check_digests(Path(source), meta)
        cls = head_class(head.get("head", "cosine"))
        tensors_path = Path(source) / HEAD_TENSORS
        tensors = load_safetensors(tensors_path, device) if tensors_path.exists() else {}
        return cls.build_classifier(clip, forest, TextSpec(templates, prompt_names or {}), head, tensors,
                                    where=str(Path(source) / META))
    if isinstance(source, (str, Path)):
        raise ConfigError(f"{str(source)!r} is not a fine-tuned run directory (no {META} in it); pass a run "
                         f"directory or a model as name:pretrained")
    clip = load_clip(source["name"], source.get("pretrained"), device=device)
    return build_cosine_classifier(clip, forest, templates, prompt_names=prompt_names)


def _check_head_values(head: dict, where: str) -> None:
    """A run's head scalars in plausible ranges (a damaged or hand-edited file would otherwise mask every attack:
    a logit scale of 1e30 saturates the softmax, so no gradient reaches the image)."""
    import math

    for key, hi in (("logit_scale", 1e4), ("curvature", 1e4), ("clip_r", 1e4), ("tau", 1e4)):
        if key not in head or head[key] is None:
            continue
        v = head[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 < v <= hi):
            raise ConfigError(f"{where}: head {key}={v!r} is not a number in (0, {hi:g}]; the run directory is "
                             f"damaged, fine-tune again")


def run_data_config(source) -> dict:
    """The ``data`` section a fine-tuned run directory was trained with ({} for anything else)."""
    if is_run_dir(source):
        return ((read_run_meta(source).get("config") or {}).get("data")) or {}
    return {}


def run_train_classes(source) -> list[str] | None:
    """The leaf classes a fine-tuned run directory was trained on (None: all, or not a run directory)."""
    return run_data_config(source).get("train_classes")
