"""``hirobust evaluate``: models x one dataset (or several, ``--datasets``) into one run directory."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError
from ..typed import from_dict
from .config import apply_overrides, load_yaml
from .config import print_config as _print_config


def _model_source(text: str):
    if "=" not in text:
        raise ConfigError(f"--model {text!r}: use NAME=SOURCE (e.g. clip=ViT-B-32:openai or tecoa=runs/tecoa)")
    name, src = text.split("=", 1)
    if Path(src).is_dir():
        return name, src
    if src.startswith(("hf-hub:", "local-dir:")):  # open_clip's names: config and weights from the hub or a folder
        return name, {"name": src, "pretrained": None}
    if ":" not in src:
        raise ConfigError(f"--model {text!r}: {src!r} is neither a run directory nor ARCH:PRETRAINED")
    arch, pretrained = src.split(":", 1)
    if pretrained == "embedded":
        from .inputs import resolve_pretrained
        from .schema import ModelConfig

        pretrained = resolve_pretrained(ModelConfig(name=arch, pretrained="embedded"))
    return name, {"name": arch, "pretrained": pretrained or None}


def evaluate_command(args) -> int:
    """``hirobust evaluate``: checked options, the run directory claimed (:mod:`.outdir`), then the work."""
    from .schema import DataConfig, EvalConfig

    data = apply_overrides(load_yaml(args.config) if args.config else {}, args.overrides)
    unknown = sorted(set(data) - {"data", "eval", "device"})
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r} for evaluate; valid keys: data, eval, device")
    data_cfg = from_dict(DataConfig, data.get("data"), "data")
    eval_cfg = from_dict(EvalConfig, data.get("eval"), "eval")
    if args.print_config:
        import dataclasses

        @dataclasses.dataclass
        class Resolved:
            data: DataConfig
            eval: EvalConfig

        return _print_config(Resolved(data_cfg, eval_cfg))
    names = [m.split("=", 1)[0] for m in args.model]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--model name {twice[0]!r} is given twice; give each model its own name")
    models = dict(_model_source(m) for m in args.model)
    from contextlib import nullcontext

    from .. import distributed
    from ..io import RunLog
    from .outdir import claim

    main_rank = distributed.is_main()  # torchrun's RANK: the process group is joined later
    shard = None
    if getattr(args, "shard", None):
        from .outdir import read_marker
        from .workqueue import parse_shard

        if not args.datasets:
            raise ConfigError("--shard spreads the datasets of --datasets over processes; give --datasets too")
        if args.overwrite:
            raise ConfigError("--shard and --overwrite contradict each other: slices continue one evaluation")
        shard = parse_shard(args.shard)
        # slices share the folder: the first one starts it, the others continue it (finished cells are reused)
        args.resume = Path(args.out).is_dir() and read_marker(Path(args.out)) == "evaluate"
    with claim(args.out, "evaluate", resume=args.resume, overwrite=args.overwrite, main=main_rank,
               shared=shard is not None) as where:
        args.shard_slice = shard
        with RunLog(where, {"command": sys.argv, "data": data_cfg, "eval": eval_cfg, "models": models}) \
                if main_rank else nullcontext():
            code = _evaluate(args, Path(where), models, data, data_cfg, eval_cfg)
    if code == 0 and main_rank and not args.datasets:
        print(f"\nreport: {Path(args.out) / 'report.json'}")
    return code


def _evaluate(args, where: Path, models, data, data_cfg, eval_cfg) -> int:
    from .report import summary_table, write_report

    if args.datasets:
        from .evaluation import evaluate_datasets

        names = "all" if args.datasets == "all" else [n.strip() for n in args.datasets.split(",") if n.strip()]
        summary = evaluate_datasets(models, names, data_cfg, eval_cfg, where, data.get("device", "auto"),
                                    progress=not args.quiet, resume=args.resume,
                                    shard=getattr(args, "shard_slice", None))
        print(f"evaluated: {', '.join(summary['evaluated']) or 'none'}")
        for name, why in summary["skipped"].items():
            print(f"skipped {name}: {why}")
        print(f"reports: {args.out}/<dataset>/report.md, average table: {args.out}/compare.md")
        return 0
    from .. import distributed
    from .evaluation import evaluate_models_resumable

    report = evaluate_models_resumable(models, data_cfg, eval_cfg, where, data.get("device", "auto"),
                                       progress=not args.quiet, resume=args.resume)
    if distributed.is_main():
        write_report(report, where)
        print(summary_table(report))
    return 0


