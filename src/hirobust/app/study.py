"""``hirobust study``: the evidence study of docs/evidence.md, as resumable cells.

Every unit of work is a *cell* whose result is a file: a fine-tune (a run directory, done when its
``hirobust.json`` exists; a killed one resumes from its last checkpoint), an evaluation (``evals/<run>.json``),
an AutoAttack evaluation (``autoattack/<run>.json``), a tuning evaluation on the validation split. A cell that
is done is never recomputed, so the study can be killed at any moment and continued with the same command
(across sessions), by one process or several (:mod:`hirobust.app.study_run`: ``--workers k``, ``--shard i/n``).
After the cells that exist, the analysis (:mod:`hirobust.app.study_report`) is always rebuilt
from whatever is done: ``study.json``, ``study.md`` and plots.

Parts: each part is a dataset + tree (+ held-out classes), with the runs it trains and their seeds. The
first part is the main one; HiRo's tuned setting is chosen on the validation split of that part only.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..io import copy_file, write_json
from ..typed import from_dict
from .config import apply_overrides, load_yaml
from .evaluation import evaluate_models
from .finetune import finetune
from .pretrain import pretrain
from .schema import DataConfig, EvalConfig, FinetuneConfig, ModelConfig, PretrainConfig, TrainConfig

log = logging.getLogger("hirobust.study")


@dataclass
class PartConfig:
    dataset: str = "fashion-mnist"
    tree: str | None = None  # the evaluated (and, for single-tree runs, trained) tree
    train_classes: list[str] | None = None  # held-out leaves never reach fine-tuning
    runs: list[str] = field(default_factory=list)  # names from `methods`, plus "clip" (the pretrained model)
    seeds: dict = field(default_factory=dict)  # run -> number of training seeds (default 1)
    pretrain: dict = field(default_factory=dict)  # overrides of the study's pretrain section (e.g. synthetic data)
    train: dict = field(default_factory=dict)  # overrides of the study's train section
    eval: dict = field(default_factory=dict)  # overrides of the study's eval section
    # overrides for seeds >= 1 (e.g. PGD only: CW and the ε sweep of seed 0 are checks, not the seed statistics)
    eval_extra_seeds: dict = field(default_factory=dict)
    autoattack_runs: list[str] = field(default_factory=list)  # "<run>" (seed 0) that also get AutoAttack


@dataclass
class TuneConfig:
    run: str = "hiro-tuned"  # the run whose options are completed by the choice (a name in `methods`)
    candidates: dict = field(default_factory=dict)  # name -> options added to the run's options
    split: str = "val"  # never the test split
    samples: int = 1000
    criterion: str = "mean same-level robust accuracy over levels (PGD), validation split"


@dataclass
class AutoAttackConfig:
    samples: int = 1000
    levels: list[int] = field(default_factory=lambda: [0, -1])  # -1: the top level
    version: str = "apgd-ce + apgd-t (pyautoattack), standard iterations"


@dataclass
class StudyConfig:
    out: str = "runs/study"
    device: str = "auto"
    threads: int | None = None
    baseline: str = "tecoa"
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: dict = field(default_factory=dict)  # run name -> {method, options, trees}
    tune: TuneConfig | None = None
    parts: dict = field(default_factory=dict)  # part name -> PartConfig fields
    eval: EvalConfig = field(default_factory=EvalConfig)
    autoattack: AutoAttackConfig = field(default_factory=AutoAttackConfig)
    quick: dict = field(default_factory=dict)  # overrides applied by --quick (key.sub: value)
    note: str = ""
    rules: dict = field(default_factory=dict)  # the findings' decision rules, dated versions (app/study_rules.py)


def load_study_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      quick: bool = False) -> StudyConfig:
    """The packaged configs/study.yaml (or ``path``), with ``--quick``'s overrides, then the user's."""
    from .demo import default_config_path

    data = load_yaml(path or default_config_path("study"))
    if quick:
        q = data.get("quick") or {}
        data = apply_overrides(data, [f"{k}={json.dumps(v)}" for k, v in q.items()])
        data["out"] = data.get("out", "runs/study").rstrip("/") + ("-quick" if "out" not in q else "")
    cfg = from_dict(StudyConfig, apply_overrides(data, overrides or []))
    validate(cfg)
    return cfg


def _part(cfg: StudyConfig, name: str) -> PartConfig:
    return from_dict(PartConfig, cfg.parts[name], f"parts.{name}")


def validate(cfg: StudyConfig) -> None:
    """Everything that can be wrong with a study config, before any work."""
    from ..data import dataset_forest, get_dataset
    from ..methods import method_config

    if not cfg.parts:
        raise ConfigError("study config has no parts; give at least one under `parts:`")
    from .study_rules import check_rules

    check_rules(cfg.rules)
    for name, spec in cfg.methods.items():
        if "method" not in spec:
            raise ConfigError(f"study run {name!r} needs a 'method' key")
        method_config(spec["method"], spec.get("options"))
    if cfg.tune is not None:
        if cfg.tune.run not in cfg.methods:
            raise ConfigError(f"tune.run {cfg.tune.run!r} is not a run of `methods` ({', '.join(cfg.methods)})")
        if cfg.tune.split == "test":
            raise ConfigError("tune.split must not be the test split; tune on 'val'")
        for opts in cfg.tune.candidates.values():
            method_config(cfg.methods[cfg.tune.run]["method"], {**cfg.methods[cfg.tune.run].get("options", {}),
                                                                 **(opts or {})})
    datasets: dict = {}  # each dataset's test split loaded once for every part that uses it
    for pname in cfg.parts:
        part = _part(cfg, pname)
        for run in part.runs:
            if run != "clip" and run not in cfg.methods:
                raise ConfigError(f"part {pname!r} names run {run!r}, which is not in `methods` or 'clip'")
        for run, k in part.seeds.items():
            if not isinstance(k, int) or k < 1:
                raise ConfigError(f"part {pname!r}: seeds for {run!r} must be an integer >= 1, got {k!r}")
        if part.dataset not in datasets:  # the tree and held-out names are checked against the dataset's classes
            datasets[part.dataset] = get_dataset(part.dataset, "test")
        ds = datasets[part.dataset]
        dataset_forest(ds, trees=[part.tree] if part.tree else None)
        if part.train_classes is not None:
            ds.restrict_classes(part.train_classes)
            if len(part.train_classes) == len(ds.classnames):
                log.warning("part %s: train_classes names every class; there are no unseen leaves", pname)
        for run in part.runs:
            for t in (cfg.methods.get(run) or {}).get("trees") or []:
                dataset_forest(ds, trees=[t])
        from_dict(EvalConfig, {**asdict(cfg.eval), **part.eval, **part.eval_extra_seeds}, f"parts.{pname}.eval")


# ---------------------------------------------------------------------- cells
def _done(path: Path) -> bool:
    return path.exists()


def _cell_time(out: Path, key: str, seconds: float) -> None:
    """Record a cell's compute time in timing.json (one process at a time: workers share the file)."""
    from .workqueue import claimed

    with claimed(out / ".claims", "timing", wait=True):
        f = out / "timing.json"
        t = json.loads(f.read_text()) if f.exists() else {}
        t[key] = seconds
        write_json(t, f)


def _pretrain_config(cfg: StudyConfig, part: PartConfig) -> PretrainConfig:
    return from_dict(PretrainConfig, {**asdict(cfg.pretrain), "dataset": part.dataset, **part.pretrain})


def _pretrained(cfg: StudyConfig, part: PartConfig, pname: str, out: Path, device, progress) -> ModelConfig:
    """The part's pretrained model. Its weights are kept in the study (``pretrained/<part>.safetensors``), so
    later cells, in this session or another on another machine, use the same model even though pretraining is
    not bit-reproducible across machines."""
    pcfg = _pretrain_config(cfg, part)
    kept = out / "pretrained" / f"{pname}-{pcfg.key()}.safetensors"
    shared = sorted((out / "pretrained").glob(f"*-{pcfg.key()}.safetensors"))
    if not kept.exists() and shared:  # parts with one pretraining config share one model, in any session
        copy_file(shared[0], kept)
        copy_file(shared[0].with_suffix(".json"), kept.with_suffix(".json"))
    elif not kept.exists():
        path, _ = pretrain(pcfg, device=str(device), progress=progress)
        copy_file(path, kept)
        copy_file(path.with_suffix(".json"), kept.with_suffix(".json"))
    return ModelConfig(name=pcfg.model, pretrained=str(kept))


def run_options(cfg: StudyConfig, run: str, out: Path) -> dict:
    """A run's method options; the tuned run (and runs marked ``tuned: true``) get the candidate chosen on the
    validation split."""
    opts = dict(cfg.methods[run].get("options") or {})
    if cfg.tune is not None and (run == cfg.tune.run or cfg.methods[run].get("tuned")):
        choice = out / "tune" / "choice.json"
        if not choice.exists():
            raise RuntimeError("the tuned run needs tune/choice.json; the tuning cells run first")
        opts.update(json.loads(choice.read_text())["options"])
    return opts


def _finetune_cell(cfg, part: PartConfig, pname: str, run: str, seed: int, model: ModelConfig, out: Path,
                   options: dict, run_dir: Path, progress: bool) -> Path:
    if (run_dir / "hirobust.json").exists():
        return run_dir
    spec = cfg.methods[run]
    train = from_dict(TrainConfig, {**asdict(cfg.train), **part.train, "seed": seed})
    data = DataConfig(dataset=part.dataset, tree=part.tree, trees=list(spec["trees"]) if spec.get("trees") else None,
                      train_classes=part.train_classes)
    ft = FinetuneConfig(out=str(run_dir), device=cfg.device, method=spec["method"], options=options, model=model,
                        data=data, train=train)
    t0 = time.perf_counter()
    resume = (run_dir / "checkpoint" / "state.json").exists()
    log.info("fine-tune %s/%s seed %d%s", pname, run, seed, " (resuming)" if resume else "")
    finetune(ft, progress=progress, resume=resume, overwrite=not resume)
    _cell_time(out, f"finetune {run_dir.relative_to(out)}", time.perf_counter() - t0)
    return run_dir


def _eval_cell(cfg, part: PartConfig, name: str, source, ecfg: EvalConfig, split: str, dest: Path, out: Path,
               progress: bool) -> None:
    if _done(dest):
        return
    data = DataConfig(dataset=part.dataset, tree=part.tree, eval_split=split, train_classes=part.train_classes)
    t0 = time.perf_counter()
    log.info("evaluate %s -> %s", name, dest.relative_to(out))
    report = evaluate_models({name: source}, data, ecfg, cfg.device, progress)
    write_json(report, dest)
    _cell_time(out, f"evaluate {dest.relative_to(out)}", time.perf_counter() - t0)


def tune_eval_config(cfg: StudyConfig, part: PartConfig) -> EvalConfig:
    """The tuning evaluation: PGD only, ``tune.samples`` images of the validation split."""
    return from_dict(EvalConfig, {**asdict(cfg.eval), **part.eval, "robust_samples": cfg.tune.samples,
                                  "attacks": ["pgd"], "eps_sweep": [], "check_more_steps": False})


def _source(cfg, part: PartConfig, pname: str, run: str, seed: int, model: ModelConfig, out: Path,
            progress: bool) -> str | dict:
    """What to evaluate: the pretrained model for "clip", else the run directory (fine-tuned first if needed)."""
    if run == "clip":
        return {"name": model.name, "pretrained": model.pretrained}
    tag = f"{run}-s{seed}"
    return str(_finetune_cell(cfg, part, pname, run, seed, model, out, run_options(cfg, run, out),
                              out / pname / "runs" / tag, progress))


def cells(cfg: StudyConfig) -> list[tuple[str, str, int]]:
    """(part, run, seed) in the order they run: the main part first (the pretrained model, then the runs with
    several seeds, seed by seed, then the single-seed runs), then each control part the same way. A partial study
    thus answers the main question first."""
    order = []
    for pname in cfg.parts:
        part = _part(cfg, pname)
        seeds = {r: 1 if r == "clip" else part.seeds.get(r, 1) for r in part.runs}
        multi = [r for r in part.runs if r == "clip" or seeds[r] > 1]
        for seed in range(max(seeds.values(), default=1)):
            order += [(pname, r, seed) for r in multi if seed < seeds[r]]
        order += [(pname, r, 0) for r in part.runs if r not in multi]
    return order


def _autoattack_cell(cfg, part, pname, run, tag, model, out, progress) -> None:
    source = _source(cfg, part, pname, run, 0, model, out, progress)
    aa = from_dict(EvalConfig, {**asdict(cfg.eval), **part.eval, "attacks": ["autoattack"],
                                "robust_samples": cfg.autoattack.samples, "autoattack_samples": None,
                                "autoattack_levels": list(cfg.autoattack.levels), "eps_sweep": []})
    _eval_cell(cfg, part, tag, source, aa, "test", out / pname / "autoattack" / f"{tag}.json", out, progress)
