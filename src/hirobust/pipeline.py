"""From configs to objects: fine-tune a method, load a fine-tuned run, evaluate models, run the demo.

Only this module and :mod:`hirobust.cli` turn configs into objects; the library parts never read configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .data import ZSDataset, dataset_forest, get_dataset
from .evaluate import class_group_breakdown, evaluate_model
from .hierarchy import Forest
from .io import load_safetensors, save_safetensors, write_json
from .methods import METHODS, FrozenReference, build_method
from .models.clip import LoadedCLIP, export_open_clip, load_clip
from .models.zeroshot import build_cosine_classifier
from .schema import DataConfig, EvalConfig, FinetuneConfig, ModelConfig
from .train import Trainer

_log = logging.getLogger("hirobust.pipeline")


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda if available, else cpu; under torchrun, joins the process group (this rank's GPU)."""
    from . import distributed

    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device=cpu")
    return distributed.init_from_env(torch.device(device))


def environment() -> dict:
    import open_clip

    return {"python": platform.python_version(), "torch": torch.__version__, "open_clip": open_clip.__version__,
            "hirobust": _version(), "platform": platform.platform(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def provenance(config: dict | None = None) -> dict:
    """Where a result comes from: the command line, the git commit of the code (and whether it had uncommitted
    changes), versions, device, the seeds and a digest of the resolved config."""
    import hashlib
    import shlex
    import subprocess
    import sys

    git = {"commit": None, "dirty": None}
    try:
        here = Path(__file__).parent
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10)
            git = {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout (an installed wheel)
        pass
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
    from . import __version__

    return __version__


def default_pretrained(name: str) -> str:
    """What ``model.pretrained=default`` means for architecture ``name``: ``embedded`` for the embedded model,
    else its open_clip tag (``openai`` when it has one). No default: a ``ValueError`` saying what to pass."""
    import open_clip

    from .schema import PretrainConfig

    if name == PretrainConfig().model:
        return "embedded"
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tags:
        return "openai" if "openai" in tags else tags[0]
    raise ValueError(f"model {name!r} has no default pretrained weights; give model.pretrained=TAG, a checkpoint path "
                     f"or 'embedded', or model.pretrained=random to fine-tune from random weights")


def resolve_pretrained(model: ModelConfig, progress: bool = True, device="cpu") -> str | None:
    """``"default"`` -> :func:`default_pretrained`; ``"random"`` -> None (random weights, logged);
    ``"embedded"`` -> the cached embedded CLIP (pretraining it first if needed); anything else as given."""
    import logging

    pretrained = model.pretrained if model.pretrained is not None else "default"
    from .models.clip import SCHEMAS

    if model.name.startswith(SCHEMAS) and pretrained == "default":
        return None  # hf-hub:/local-dir: names carry their own weights
    if pretrained == "default":
        pretrained = default_pretrained(model.name)
    if pretrained == "random":
        logging.getLogger("hirobust").warning("model %s starts from RANDOM weights (model.pretrained=random)",
                                              model.name)
        return None
    if pretrained != "embedded":
        return pretrained
    from .pretrain import pretrain
    from .schema import PretrainConfig

    path, _ = pretrain(PretrainConfig(model=model.name), device=str(device), progress=progress)
    return str(path)


def trees_of(data_cfg: DataConfig, ds: ZSDataset) -> tuple[Forest, Forest]:
    """(evaluation tree as a one-tree forest, training forest)."""
    from .hierarchy import load_tree_file

    src = data_cfg.hierarchy if data_cfg.hierarchy is not None else ds.hierarchy
    raw = load_tree_file(src)
    default = data_cfg.tree or raw.get("default") or (next(iter(raw["trees"])) if "trees" in raw else None)
    eval_forest = dataset_forest(ds, trees=[default] if default else None, hierarchy=src)
    train_names = data_cfg.trees or ([default] if default else None)
    if train_names and default in train_names:  # the evaluated tree first: it is the classifier's default head
        train_names = [default] + [t for t in train_names if t != default]
    return eval_forest, dataset_forest(ds, trees=train_names, hierarchy=src)


# ---------------------------------------------------------------------- fine-tuning
def finetune(cfg: FinetuneConfig, progress: bool = True, resume: bool = False, callback=None) -> Path:
    """Fine-tune ``cfg.method``; writes ``out/model/`` (open_clip-loadable), ``out/hirobust.json``, ``report.json``."""
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    pretrained = resolve_pretrained(cfg.model, progress, device)
    torch.manual_seed(cfg.train.seed)
    clip = load_clip(cfg.model.name, pretrained, device=device)
    train = load_data(cfg.data, "train", clip.image_size)
    if cfg.data.train_classes is not None:  # held-out classes never reach the trainer
        train = train.restrict_classes(cfg.data.train_classes)
    _, forest = trees_of(cfg.data, train)
    classifier = build_cosine_classifier(clip, forest, train.templates, prompt_names=train.prompt_names)
    if cfg.method in METHODS and METHODS[cfg.method].needs_labels and not train.labelled:
        raise ValueError(f"method {cfg.method!r} needs labels but dataset {cfg.data.dataset!r} has none; "
                         f"use an unsupervised method (fare) or a labelled dataset")
    reference = None
    if getattr(METHODS.get(cfg.method), "needs_reference", False):
        source = None
        if cfg.reference is not None:
            ref_clip = load_clip(cfg.reference.name, resolve_pretrained(cfg.reference, progress, device), device)
            source = build_cosine_classifier(ref_clip, forest, train.templates, prompt_names=train.prompt_names)
        reference = FrozenReference(classifier, source)
    method = build_method(cfg.method, classifier, forest, cfg.options, reference=reference, clip=clip)
    describe = {"method": cfg.method, "options": asdict(method.cfg), "model": asdict(cfg.model),
                "data": asdict(cfg.data)}
    from contextlib import nullcontext

    from . import distributed
    from .io import RunLock, RunLog

    main = distributed.is_main()
    with RunLock(out) if main else nullcontext(), \
            RunLog(out, {"provenance": provenance(asdict(cfg)), "config": asdict(cfg)}) if main else nullcontext():
        t0 = time.perf_counter()
        summary = Trainer(cfg.train, device).fit(method, train, out, resume=resume, progress=progress,
                                                 callback=callback, describe=describe)
        _log.info("fine-tuned %s: %d steps in %.1f s (%.1f img/s)", cfg.method, summary["steps"],
                  time.perf_counter() - t0, summary["images_per_second"])
        if main:
            export_run(out, method, clip, cfg, pretrained, summary)
            _log.info("exported %s", out / "model")
    distributed.barrier()
    return out


def export_run(out: Path, method, clip: LoadedCLIP, cfg: FinetuneConfig, pretrained: str | None, summary: dict):
    method.sync_to_clip()  # writes trained parts (e.g. W_T) back into the open_clip model
    export_open_clip(clip.model, cfg.model.name, out / "model", clip.mean, clip.std)
    head = method.head_state()
    extras = head.pop("tensors", {})
    if extras:
        save_safetensors(extras, out / "model" / "hirobust_head.safetensors")
    meta = {"kind": "hirobust-finetuned", "method": cfg.method, "model": cfg.model.name, "source": pretrained,
            "weights": "model/open_clip_model.safetensors", "head": head, "config": asdict(cfg),
            "environment": environment(), "provenance": provenance(asdict(cfg))}
    write_json(meta, out / "hirobust.json")
    write_json({"kind": "finetune", "method": cfg.method, "provenance": meta["provenance"],
                "train": {k: v for k, v in summary.items()}, "config": asdict(cfg)}, out / "report.json")


def load_data(data_cfg: DataConfig, split: str, image_size: int) -> ZSDataset:
    """The configured dataset's ``split``; file-based datasets are resized to the model's ``image_size``."""
    from .data.zeroshot_specs import ZEROSHOT_DATASETS

    kwargs = {}
    if data_cfg.dataset in ZEROSHOT_DATASETS:
        kwargs = {"image_size": image_size, "download": data_cfg.download, "num_workers": data_cfg.num_workers,
                  "prompt_names": data_cfg.prompt_names, "caltech101_background": data_cfg.caltech101_background}
    ds = get_dataset(data_cfg.dataset, split, root=data_cfg.root, **kwargs)
    if data_cfg.templates is not None:
        bad = [t for t in data_cfg.templates if t.count("{}") != 1]
        if bad or not data_cfg.templates:
            raise ValueError(f"data.templates must be a non-empty list of prompts with one '{{}}' each; got {bad}")
        ds.templates = list(data_cfg.templates)
    return ds


def read_run_meta(run_dir: str | Path) -> dict:
    """A fine-tuned run directory's ``hirobust.json``, checked: a JSON object with ``model`` and ``weights``, the
    weights inside the run directory (``weights_path`` added). Errors name the file and what is wrong."""
    from .hierarchy import read_json

    f = Path(run_dir) / "hirobust.json"
    meta = read_json(f)
    if not isinstance(meta, dict):
        raise ValueError(f"{str(f)!r} must hold a JSON object; the run directory is damaged, fine-tune again")
    for key in ("model", "weights"):
        if not isinstance(meta.get(key), str):
            raise ValueError(f"{str(f)!r} lacks the key {key!r} (a string); the run directory is damaged, fine-tune "
                             f"again")
    root = Path(run_dir).resolve()
    weights = (root / meta["weights"]).resolve()
    if root not in weights.parents:
        raise ValueError(f"{str(f)!r}: weights path {meta['weights']!r} points outside the run directory; refusing "
                         f"to load it")
    return {**meta, "weights_path": str(weights)}


def source_image_size(source: str | dict) -> int:
    """The input size of a model source (a run directory or {"name", ...}) from its config, without loading it."""
    from .models.clip import model_config

    if isinstance(source, dict):
        name = source["name"]
    else:
        name = read_run_meta(source)["model"]
    size = model_config(name)["vision_cfg"].get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def load_classifier(source: str | dict, ds: ZSDataset, forest: Forest, device="cpu"):
    """A classifier from a fine-tuned run directory, or from ``{"name", "pretrained"}`` (CLIP's cosine head)."""
    if isinstance(source, (str, Path)) and (Path(source) / "hirobust.json").exists():
        meta = read_run_meta(source)
        clip = load_clip(meta["model"], meta["weights_path"], device=device)
        head = meta.get("head", {"head": "cosine"})
        if head.get("head") == "poincare":
            from .models.hyperbolic import build_poincare_classifier

            extras_path = Path(source) / "model" / "hirobust_head.safetensors"
            extras = load_safetensors(extras_path, device) if extras_path.exists() else {}
            return build_poincare_classifier(clip, forest, ds.templates, head, extras, ds.prompt_names)
        scale = head.get("logit_scale")
        if scale is not None and (not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0):
            raise ValueError(f"{str(Path(source) / 'hirobust.json')!r}: head.logit_scale={scale!r} is not a positive "
                             f"finite number; the run directory is damaged, fine-tune again")
        return build_cosine_classifier(clip, forest, ds.templates, logit_scale=scale,
                                       prompt_names=ds.prompt_names)
    if isinstance(source, (str, Path)):
        raise ValueError(f"{str(source)!r} is not a fine-tuned run directory (no hirobust.json in it); pass a run "
                         f"directory or a model as name:pretrained")
    clip = load_clip(source["name"], source.get("pretrained"), device=device)
    return build_cosine_classifier(clip, forest, ds.templates, prompt_names=ds.prompt_names)


def run_train_classes(source) -> list[str] | None:
    """The leaf classes a fine-tuned run directory was trained on (None: all, or not a run directory)."""
    if isinstance(source, (str, Path)) and (Path(source) / "hirobust.json").exists():
        meta = read_run_meta(source)
        return ((meta.get("config") or {}).get("data") or {}).get("train_classes")
    return None


class AttackCells:
    """Finished (attack, level) predictions of one model's evaluation, one safetensors file each, tagged with the
    evaluation's key (source, data, attack settings): a result of other settings is never reused."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = Path(folder), key

    def get(self, name: str):
        from .io import load_safetensors

        f = self.folder / f"{name}.safetensors"
        if not f.exists():
            return None
        from safetensors import safe_open

        with safe_open(str(f), "pt") as h:
            if (h.metadata() or {}).get("key") != self.key:
                return None
        return load_safetensors(f)["pred"]

    def put(self, name: str, pred) -> None:
        from . import distributed
        from .io import save_safetensors

        if distributed.is_main():
            save_safetensors({"pred": pred}, self.folder / f"{name}.safetensors", metadata={"key": self.key})


def evaluate_models(models: dict[str, str | dict], data_cfg: DataConfig, eval_cfg: EvalConfig, device="auto",
                    progress: bool = True, cells: dict | None = None) -> dict:
    """report.json's content for ``models`` (name -> run dir or {"name", "pretrained"}) on one dataset."""
    device = resolve_device(device)
    for name, source in models.items():
        if isinstance(source, (str, Path)) and not (Path(source) / "hirobust.json").exists():
            raise ValueError(f"model {name!r}: {str(source)!r} is not a fine-tuned run directory (no hirobust.json)")
    ds = load_data(data_cfg, data_cfg.eval_split, source_image_size(next(iter(models.values()))))
    eval_forest, _ = trees_of(data_cfg, ds)
    hier = eval_forest[0]
    from .evaluate import AUTOATTACK_NAMES, ROBUST_DEFINITION, chance_rates

    report = {"dataset": data_cfg.dataset, "split": data_cfg.eval_split, "eps": eval_cfg.eps,
              "robust_definition": ROBUST_DEFINITION, "chance": chance_rates(hier, ds.labels),
              "num_levels": hier.num_levels, "tree": hier.name,
              "levels": [hier.nodes(lvl) for lvl in range(hier.num_levels)],
              "attack": {"type": {"pgd": f"PGD-{eval_cfg.steps}", "cw": f"CW-{eval_cfg.steps}",
                                  "autoattack": AUTOATTACK_NAMES[eval_cfg.autoattack_version]}[eval_cfg.attacks[0]],
                         "autoattack": AUTOATTACK_NAMES[eval_cfg.autoattack_version]
                         if "autoattack" in eval_cfg.attacks else None,
                         "attacks": list(eval_cfg.attacks), "norm": eval_cfg.norm,
                         "objective": {"pgd": "ce", "cw": "cw margin", "autoattack": "ce + targeted dlr"}[
                             eval_cfg.attacks[0]],
                         "alpha": eval_cfg.alpha if eval_cfg.alpha is not None else eval_cfg.eps / 4,
                         "random_start": True, "precision": "float32" if eval_cfg.amp == "off" else eval_cfg.amp},
              "eval_config": asdict(eval_cfg), "models": {}, "environment": environment(),
              "provenance": provenance({"data": asdict(data_cfg), "eval": asdict(eval_cfg)})}
    from .progress import Stages, active

    stages = None if active() else Stages(len(models))
    for name, source in models.items():
        t0 = time.perf_counter()
        _log.info("evaluating %s (%s) on %s/%s", name, source, data_cfg.dataset, data_cfg.eval_split)
        with stages.stage(f"evaluate {name}") if stages else contextlib.nullcontext():
            clf = load_classifier(source, ds, eval_forest, device)
            report["models"][name] = evaluate_model(clf, ds, hier, eval_cfg, device, progress,
                                                    (cells or {}).get(name))
        seen = data_cfg.train_classes if data_cfg.train_classes is not None else run_train_classes(source)
        if seen is not None:
            report["models"][name]["by_class_group"] = class_group_breakdown(report["models"][name], hier, seen)
        report["models"][name]["source"] = str(source) if not isinstance(source, dict) else source
        report["models"][name]["seconds"] = time.perf_counter() - t0
        _log.info("evaluated %s in %.1f s", name, report["models"][name]["seconds"])
    return report


def _cell_key(name: str, source, data_cfg: DataConfig, eval_cfg: EvalConfig) -> str:
    """What identifies one model's evaluation: its source (with its weights' size and mtime), data and attacks."""
    import hashlib

    src = source
    if isinstance(source, (str, Path)):
        w = Path(read_run_meta(source)["weights_path"])
        src = [str(source), w.stat().st_size, w.stat().st_mtime_ns]
    text = json.dumps([name, src, asdict(data_cfg), asdict(eval_cfg)], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def evaluate_models_resumable(models: dict, data_cfg: DataConfig, eval_cfg: EvalConfig, out: Path, device="auto",
                              progress: bool = True, resume: bool = False) -> dict:
    """:func:`evaluate_models`, one model at a time, each model's result kept in ``out/.cells/`` as soon as it is
    done, and within a model every finished (attack, level) cell (:class:`AttackCells`): a killed or failed
    evaluation loses at most the cell it was on, and ``resume`` reuses the rest (only if the model's source, the
    data and the attack settings are unchanged)."""
    from . import distributed
    from .io import write_json

    for name, source in models.items():
        if isinstance(source, (str, Path)) and not (Path(source) / "hirobust.json").exists():
            raise ValueError(f"model {name!r}: {str(source)!r} is not a fine-tuned run directory (no hirobust.json)")
    from .progress import Stages

    report, stages = None, Stages(len(models))
    for name, source in models.items():
        cell = out / ".cells" / f"{name}.json"
        key = _cell_key(name, source, data_cfg, eval_cfg)
        part = None
        if resume and cell.exists():
            kept = json.loads(cell.read_text())
            part = kept["report"] if kept.get("key") == key else None
        if part is None:
            folder = out / ".cells" / name
            if not resume and folder.exists():  # a fresh evaluation: nothing of an earlier one is reused
                import shutil

                shutil.rmtree(folder)
            with stages.stage(f"evaluate {name}"):
                part = evaluate_models({name: source}, data_cfg, eval_cfg, device, progress,
                                       cells={name: AttackCells(folder, key)})
            if distributed.is_main():
                write_json({"key": key, "report": part}, cell)
        else:
            stages.skip()
        if report is None:
            report = part
        else:
            report["models"].update(part["models"])
    return report


def evaluate_datasets(models: dict[str, str | dict], names: list[str] | str, data_cfg: DataConfig,
                      eval_cfg: EvalConfig, out: str | Path, device="auto", progress: bool = True) -> dict:
    """Evaluate ``models`` on each dataset of ``names`` (``"all"``: the 15 zero-shot datasets) that is present
    under ``data_cfg.root``; skip the others, saying why. Writes ``out/<dataset>/report.*``, ``out/compare.*``
    (the average table) and ``out/datasets.json`` (what was evaluated and what was skipped)."""
    from . import distributed
    from .compare import compare
    from .data.zeroshot import available
    from .data.zeroshot_specs import ZEROSHOT_DATASETS
    from .report import write_report
    from .schema import CLIP_BENCHMARK_ALIASES, canonical_dataset

    names = list(ZEROSHOT_DATASETS) if names == "all" or names == ["all"] else [canonical_dataset(n) for n in names]
    from .data import DATASETS

    unknown = [n for n in names if n not in ZEROSHOT_DATASETS and n not in DATASETS]
    if unknown:  # before any work: a misspelt name is the user's error, not a dataset to skip
        known = ", ".join(sorted(set(ZEROSHOT_DATASETS) | set(DATASETS)))
        raise ValueError(f"unknown dataset {unknown[0]!r}; known: {known} (or 'all'; CLIP_benchmark's names "
                         f"{', '.join(CLIP_BENCHMARK_ALIASES)} also work)")
    out = Path(out)
    done, skipped = [], {}
    for name in names:
        ok, why = (True, "") if data_cfg.download else available(name, data_cfg.root, data_cfg.eval_split)
        if not ok:
            skipped[name] = why
            continue
        cfg = dataclasses.replace(data_cfg, dataset=name, tree=None if name != data_cfg.dataset else data_cfg.tree,
                                  hierarchy=None if name != data_cfg.dataset else data_cfg.hierarchy)
        try:
            report = evaluate_models(models, cfg, eval_cfg, device, progress)
        except (FileNotFoundError, ImportError) as e:  # found but unreadable: skip it, say why
            skipped[name] = str(e)
            continue
        if distributed.is_main():
            write_report(report, out / name)
        done.append(name)
    summary = {"evaluated": done, "skipped": skipped}
    if distributed.is_main():
        if done:
            compare([out / n for n in done], out)
        write_json(summary, out / "datasets.json")
    return summary


@dataclass
class EvaluateSpec:
    datasets: list[str] = field(default_factory=lambda: ["all"])
    include_clip: bool = True  # evaluate the starting model too
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class ReproduceConfig:
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateSpec = field(default_factory=EvaluateSpec)


def reproduce(cfg: ReproduceConfig, progress: bool = True, resume: bool = False) -> dict:
    """One command per paper row: fine-tune, then evaluate zero-shot on every dataset present."""
    run = finetune(cfg.finetune, progress=progress, resume=resume)
    models: dict = {cfg.finetune.method: str(run)}
    if cfg.evaluate.include_clip:
        models = {"clip": {"name": cfg.finetune.model.name,
                           "pretrained": resolve_pretrained(cfg.finetune.model, progress)}, **models}
    base = dataclasses.replace(cfg.finetune.data, tree=None, trees=None)
    return evaluate_datasets(models, cfg.evaluate.datasets, base, cfg.evaluate.eval, Path(cfg.finetune.out) / "eval",
                             cfg.finetune.device, progress)

