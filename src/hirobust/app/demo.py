"""The embedded benchmark: pretrain (or reuse) a small CLIP on Fashion-MNIST, fine-tune every method with the
same budget, evaluate them all at every level of the hierarchy, and write one report."""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch

from ..errors import ConfigError
from ..io import write_json
from ..typed import from_dict
from .config import load_yaml
from .env import environment, resolve_device
from .evaluation import evaluate_models
from .finetune import finetune
from .pretrain import pretrain
from .report import ablation_markdown, ablation_rows, summary_table, write_report
from .schema import DataConfig, EvalConfig, FinetuneConfig, ModelConfig, PretrainConfig, TrainConfig


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (None: torch's default)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: dict = field(default_factory=dict)  # run name -> {method, options, trees}
    eval: EvalConfig = field(default_factory=EvalConfig)
    sweep_models: list[str] = field(default_factory=lambda: ["clip"])  # models that get the ε sweep
    tables: dict = field(default_factory=dict)  # ablation tables: title -> [run names]
    include_clip: bool = True  # evaluate the pretrained model too
    note: str = ""


def default_config_path(name: str = "demo") -> Path:
    return Path(str(resources.files("hirobust").joinpath("configs", f"{name}.yaml")))


def load_demo_config(path: str | Path | None = None, overrides: list[str] | None = None,
                     default: str = "demo") -> DemoConfig:
    from .config import apply_overrides

    data = load_yaml(path or default_config_path(default))
    return from_dict(DemoConfig, apply_overrides(data, overrides or []))


def run_demo(cfg: DemoConfig, progress: bool = True, log=print) -> dict:
    """Runs the whole embedded benchmark; returns the report (also written to ``cfg.out``)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    for name, spec in cfg.methods.items():  # validate every method before any work
        from ..methods import method_config

        if "method" not in spec:
            raise ConfigError(f"demo run {name!r} needs a 'method' key")
        method_config(spec["method"], spec.get("options"))
    from .inputs import check_train_classes

    check_train_classes(cfg.data)  # held-out classes checked before any training (pretraining included)
    out = Path(cfg.out)
    from ..io import RunLog
    from .env import provenance
    from .outdir import claim

    with claim(out, "demo"), RunLog(out, {"provenance": provenance(asdict(cfg)), "config": asdict(cfg)}):
        return _run_demo(cfg, out, device, progress, log)


def _run_demo(cfg: DemoConfig, out: Path, device, progress: bool, log) -> dict:
    from ..progress import Stages

    timing: dict[str, float] = {}
    stages = Stages(1 + len(cfg.methods) + len(cfg.methods) + bool(cfg.include_clip), log=logging.getLogger(
        "hirobust.demo"))
    t0 = time.perf_counter()
    with stages.stage("pretrain (cached after the first run)"):
        path, meta = pretrain(cfg.pretrain, device=str(device), progress=progress)
    timing["pretrain (0 if cached)"] = time.perf_counter() - t0
    log(f"embedded CLIP: {path}\n  zero-shot accuracy per tree and level: {meta['zero_shot_accuracy']}")
    model = ModelConfig(name=cfg.pretrain.model, pretrained=str(path))
    sources: dict = {"clip": {"name": model.name, "pretrained": str(path)}} if cfg.include_clip else {}
    for name, spec in cfg.methods.items():
        t1 = time.perf_counter()
        data = copy.deepcopy(cfg.data)
        if spec.get("trees"):
            data.trees = list(spec["trees"])
        ft = FinetuneConfig(out=str(out / "runs" / re.sub(r"[^A-Za-z0-9._+-]+", "-", name)), device=cfg.device,
                            method=spec["method"],
                            options=dict(spec.get("options") or {}), model=model, data=data,
                            train=copy.deepcopy(cfg.train))
        with stages.stage(f"fine-tune {name}"):
            sources[name] = str(finetune(ft, progress=progress, overwrite=True))
        timing[f"finetune {name}"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    report = {}
    for name, src in sources.items():
        ecfg = copy.deepcopy(cfg.eval)
        if name not in cfg.sweep_models:
            ecfg.eps_sweep = []
        t2 = time.perf_counter()
        with stages.stage(f"evaluate {name}"):
            part = evaluate_models({name: src}, cfg.data, ecfg, cfg.device, progress)
        timing[f"evaluate {name}"] = time.perf_counter() - t2
        if not report:
            report = part
            report["eval_config"] = asdict(cfg.eval)
        else:
            report["models"].update(part["models"])
    timing["evaluate (all)"] = time.perf_counter() - t1
    timing["total"] = time.perf_counter() - t0
    logging.getLogger("hirobust.demo").info("seconds per stage: %s", {k: round(v, 1) for k, v in timing.items()})
    report["timing"] = timing
    report["note"] = cfg.note
    report["pretrained"] = pretrained_entry(path, meta, cfg.pretrain)
    report["demo_config"] = asdict(cfg)
    report["environment"] = environment()
    from .env import provenance

    report["provenance"] = provenance(asdict(cfg))
    train_s = {n: timing[f"finetune {n}"] for n in cfg.methods}
    report["ablation"] = {title: ablation_rows(report, names, train_s, cfg.train.epochs)
                          for title, names in cfg.tables.items()}
    write_report(report, out)
    write_json(asdict(cfg), out / "config.json")
    log("\n" + summary_table(report))
    for title, rows in report["ablation"].items():
        log(f"\n{title}:\n" + ablation_markdown(rows))
    log(f"\nreport: {out / 'report.md'} and {out / 'report.json'}")
    return report


def pretrained_entry(path, meta: dict, cfg: PretrainConfig) -> dict:
    """The pretrained model's zero-shot accuracy per tree and level on the test split, with n and intervals."""
    from ..data import get_dataset
    from ..stats import wilson

    n = meta.get("zero_shot_n") or len(get_dataset(cfg.dataset, "test", root=cfg.data_root))
    acc = meta["zero_shot_accuracy"]
    return {"path": str(path), "zero_shot_accuracy": acc, "n": n,
            "zero_shot_accuracy_ci95": {t: {b: wilson(round(v * n), n) for b, v in lv.items()}
                                        for t, lv in acc.items()}}
