"""``hirobust zeroshot``: the zero-shot protocol of the embedded benchmark, as resumable cells (docs/method.md §5).

Fine-tune every run on the seen leaves of each held-out fold (the folds partition the leaves, so every leaf is
unseen once), with several training seeds, and evaluate each on the configured split at every level, seen, unseen
and all leaves apart. ``split: val`` is the design split (the diagnosis of docs/hiro.md: one-factor ablations and
readout ablations of HiRo); ``split: test`` gives the result, decided by rules written in the config before its
cells run (``rules:``).

Cells are files and never recomputed (``<out>/fold<i>/runs/<run>-s<seed>`` run directories, ``fold<i>/evals/
<tag>.json`` reports, ``fold<i>/evals/<tag>@<readout>.json`` readout ablations, ``fold<i>/movement/<tag>.json``
text-movement measures); the analysis (``zeroshot.json``, ``zeroshot.md``) is rebuilt after every cell from what
is done. A killed run continues with the same command.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..io import write_json
from ..typed import from_dict
from .config import apply_overrides, load_yaml
from .schema import EvalConfig, ModelConfig, PretrainConfig, TrainConfig

log = logging.getLogger("hirobust.zeroshot")


@dataclass
class FoldsConfig:
    k: int | None = 3  # number of folds made by hierarchy.folds.make_folds (None: use `held_out`)
    seed: int = 0
    held_out: list[list[str]] | None = None  # explicit folds (lists of held-out leaves), instead of k
    cover: bool = True  # every leaf must be held out in some fold
    only: list[int] | None = None  # run only these folds (e.g. [0] for a one-fold diagnosis)


@dataclass
class RulesConfig:
    """The decision rules, fixed before the data (docs/method.md §5)."""

    margin: float = 0.01  # "no more than 1 point below the baseline": non-inferiority at this margin
    interval: str = "90% three-level bootstrap (folds, seeds, images), one-sided 5% (TOST half)"
    goal: str = ("unseen leaves: clean and robust accuracy at every level non-inferior to the baseline (margin); "
                 "seen leaves: robust accuracy at some superclass level higher than the baseline (95% interval "
                 "above 0)")


@dataclass
class ZeroShotConfig:
    out: str = "runs/zeroshot"
    device: str = "auto"
    threads: int | None = None
    dataset: str = "fashion-mnist"
    tree: str = "season"
    split: str = "test"
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    seeds: int = 3
    baseline: str = "tecoa"
    also_compare_to: list[str] = field(default_factory=list)  # more runs every other run is paired with
    pretrained: str | None = None  # a checkpoint of the embedded model; None: pretrain it (cached, kept in out)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: dict = field(default_factory=dict)  # run name -> {method, options}
    readouts: list[str] = field(default_factory=list)  # HiRo readout ablations (hirobust.diagnose.READOUTS)
    readout_runs: list[str] | None = None  # the runs read with `readouts` (None: every HiRo run)
    readout_seeds: int = 1  # readouts and text movement for seeds < this
    eval: EvalConfig = field(default_factory=EvalConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    note: str = ""


def load_zeroshot_config(path: str | Path | None = None, overrides: list[str] | None = None,
                         name: str = "zeroshot") -> ZeroShotConfig:
    """A packaged config (``configs/<name>.yaml``) or ``path``, with the user's overrides, checked."""
    from .demo import default_config_path

    data = load_yaml(path or default_config_path(name))
    cfg = from_dict(ZeroShotConfig, apply_overrides(data, overrides or []))
    folds(cfg)  # every fold problem, before any work
    validate(cfg)
    return cfg


def validate(cfg: ZeroShotConfig) -> None:
    from ..diagnose import READOUTS
    from ..methods import method_config

    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split={cfg.split!r}: use 'val' (design, diagnosis) or 'test' (the result)")
    for ref in [cfg.baseline, *cfg.also_compare_to]:
        if ref not in cfg.methods:
            raise ConfigError(f"{ref!r} (baseline or also_compare_to) is not a run of `methods` "
                              f"({', '.join(cfg.methods)})")
    for name, spec in cfg.methods.items():
        if "method" not in spec:
            raise ConfigError(f"run {name!r} needs a 'method' key")
        method_config(spec["method"], spec.get("options"))
    bad = [r for r in cfg.readouts if r not in READOUTS or r == "trained"]
    if bad:
        raise ConfigError(f"readouts: {bad[0]!r} is not a readout ablation; known: {', '.join(READOUTS[1:])}")
    if not isinstance(cfg.seeds, int) or cfg.seeds < 1:
        raise ConfigError(f"seeds must be an integer >= 1, got {cfg.seeds!r}")


@functools.lru_cache(maxsize=8)
def _forest(dataset: str, tree: str):
    """The evaluated tree of ``dataset`` as a one-tree forest (its test split read once per process)."""
    from ..data import dataset_forest, get_dataset

    return dataset_forest(get_dataset(dataset, "test"), trees=[tree])


@functools.lru_cache(maxsize=2)
def _dataset(dataset: str, split: str):
    from ..data import get_dataset

    return get_dataset(dataset, split)


def folds(cfg: ZeroShotConfig) -> list[list[str]]:
    """The held-out leaves of each fold (checked: known leaves, something left to train on, every leaf covered
    when ``folds.cover``)."""
    from ..hierarchy.folds import check_folds, make_folds

    tree = _forest(cfg.dataset, cfg.tree)[0]
    f = cfg.folds
    if f.held_out is not None:
        held = [list(x) for x in f.held_out]
    elif f.k is not None:
        held = make_folds(tree, f.k, f.seed)
    else:
        raise ConfigError("folds: give folds.k (made from the tree) or folds.held_out (lists of held-out leaves)")
    check_folds(tree, held, cover=f.cover)
    bad = [i for i in f.only or [] if not 0 <= i < len(held)]
    if bad:
        raise ConfigError(f"folds.only names fold {bad[0]}, but there are {len(held)} folds (0..{len(held) - 1})")
    return held


def seen_of(cfg: ZeroShotConfig, fold: list[str]) -> list[str]:
    from ..hierarchy.folds import seen_classes

    return seen_classes(_forest(cfg.dataset, cfg.tree)[0], fold)


def run_zeroshot(cfg: ZeroShotConfig, progress: bool = True) -> dict:
    """Run every cell not done yet (fold by fold, seed by seed), rebuilding the analysis after each."""
    import torch

    from ..io import RunLog
    from .env import provenance, resolve_device
    from .outdir import claim
    from .zeroshot_report import write_zeroshot

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    with claim(out, "zeroshot"), RunLog(out, {"provenance": provenance(asdict(cfg))}):
        write_json({**asdict(cfg), "held_out": folds(cfg)}, out / "config.json")
        model = _model(cfg, out, device, progress)
        held = folds(cfg)
        for i in cfg.folds.only if cfg.folds.only is not None else range(len(held)):
            for seed in range(cfg.seeds):
                for run in cfg.methods:
                    if _cell(cfg, i, held[i], run, seed, model, out, progress):
                        write_zeroshot(cfg, out, held)
        return write_zeroshot(cfg, out, held)


def _model(cfg: ZeroShotConfig, out: Path, device, progress: bool) -> ModelConfig:
    if cfg.pretrained:
        return ModelConfig(name=cfg.pretrain.model, pretrained=cfg.pretrained)
    from .study import PartConfig, _pretrained

    return _pretrained(cfg, PartConfig(dataset=cfg.dataset), cfg.dataset, out, device, progress)


def _cell(cfg: ZeroShotConfig, i: int, fold: list[str], run: str, seed: int, model: ModelConfig, out: Path,
          progress: bool) -> bool:
    """Fine-tune and evaluate one (fold, run, seed), its readouts and text movement; True if anything ran."""
    from .study import PartConfig, _eval_cell, _finetune_cell

    fdir = out / f"fold{i}"
    part = PartConfig(dataset=cfg.dataset, tree=cfg.tree, train_classes=seen_of(cfg, fold))
    tag = f"{run}-s{seed}"
    hiro = cfg.methods[run]["method"] == "hiro"
    wanted = [fdir / "evals" / f"{tag}.json"]
    reads = cfg.readouts if cfg.readout_runs is None or run in cfg.readout_runs else []
    if hiro and seed < cfg.readout_seeds:
        wanted += [fdir / "evals" / f"{tag}@{r}.json" for r in reads] + [fdir / "movement" / f"{tag}.json"]
    if all(w.exists() for w in wanted):
        return False
    run_dir = _finetune_cell(cfg, part, f"fold{i}", run, seed, model, out, dict(cfg.methods[run].get("options") or {}),
                             fdir / "runs" / tag, progress)
    _eval_cell(cfg, part, tag, str(run_dir), cfg.eval, cfg.split, wanted[0], out, progress)
    if hiro and seed < cfg.readout_seeds:
        for r in reads:
            _readout_cell(cfg, part, tag, run_dir, r, model, fdir / "evals" / f"{tag}@{r}.json", out, progress)
        _movement_cell(cfg, run_dir, model, part.train_classes, fdir / "movement" / f"{tag}.json")
    return True


def _pretrained_projection(model: ModelConfig):
    """The starting model's W_T (loaded once per process; nothing trains it)."""
    return _projection_of(model.name, model.pretrained)


@functools.lru_cache(maxsize=2)
def _projection_of(name: str, pretrained: str | None):
    from ..models.clip import load_clip
    from ..models.zeroshot import text_projection_of
    from .inputs import resolve_pretrained

    return text_projection_of(load_clip(name, resolve_pretrained(ModelConfig(name=name, pretrained=pretrained),
                                                                progress=False)).model)


def _readout_cell(cfg, part, tag: str, run_dir: Path, readout: str, model: ModelConfig, dest: Path, out: Path,
                  progress: bool) -> None:
    from ..diagnose import readout_classifier
    from .evaluation import evaluate_models
    from .schema import DataConfig
    from .study import _cell_time

    if dest.exists():
        return
    proj = _pretrained_projection(model) if readout == "pretrained_wt" else None
    data = DataConfig(dataset=part.dataset, tree=part.tree, eval_split=cfg.split, train_classes=part.train_classes)
    t0 = time.perf_counter()
    log.info("evaluate %s read as %s -> %s", tag, readout, dest.relative_to(out))
    forest = _forest(cfg.dataset, cfg.tree)
    rep = evaluate_models({f"{tag}@{readout}": str(run_dir)}, data, cfg.eval, cfg.device, progress,
                          wrap=lambda _, clf: readout_classifier(clf, readout, proj, forest))
    write_json(rep, dest)
    _cell_time(out, f"evaluate {dest.relative_to(out)}", time.perf_counter() - t0)


def _movement_cell(cfg, run_dir: Path, model: ModelConfig, seen: list[str], dest: Path) -> None:
    from ..diagnose import text_movement
    from ..models.rundir import load_classifier

    if dest.exists():
        return
    forest = _forest(cfg.dataset, cfg.tree)
    ds = _dataset(cfg.dataset, cfg.split)
    clf = load_classifier(str(run_dir), forest, ds.templates, ds.prompt_names)
    write_json(text_movement(clf.head(), _pretrained_projection(model), seen, forest[0]), dest)
