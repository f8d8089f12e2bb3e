"""The fine-tuning job: a config in, a run directory out (:mod:`hirobust.models.rundir`)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import ConfigError
from ..io import write_json
from ..methods import METHODS, FrozenReference, build_method, method_config
from ..models.clip import load_clip
from ..models.rundir import save_run
from ..models.zeroshot import build_cosine_classifier
from ..train import Trainer
from .env import environment, provenance, resolve_device
from .inputs import check_train_classes, load_data, resolve_pretrained, trees_of
from .schema import FinetuneConfig

_log = logging.getLogger("hirobust.finetune")


def finetune(cfg: FinetuneConfig, progress: bool = True, resume: bool = False, callback=None,
             overwrite: bool = False) -> Path:
    """Fine-tune ``cfg.method``; writes ``out/model/`` (open_clip-loadable), ``out/hirobust.json``, ``report.json``.
    ``out`` is new or empty, or a run of this kind with ``resume`` (continue it) or ``overwrite`` (replace it whole
    once the new run is complete): :mod:`.outdir`."""
    from contextlib import nullcontext

    from .. import distributed
    from ..io import RunLog
    from .outdir import claim

    main = distributed.is_main()
    with claim(cfg.out, "finetune", resume=resume, overwrite=overwrite, main=main) as where:
        # the log exists from the first second: loading the model and data and building the text head are in it
        with RunLog(where, {"provenance": provenance(asdict(cfg)), "config": asdict(cfg)}) if main else nullcontext():
            _log.info("fine-tune %s into %s: loading the model, the data and the text head", cfg.method, cfg.out)
            _finetune(cfg, Path(where), progress, resume, callback)
    distributed.barrier()  # every rank reads the run only once it is in place
    return Path(cfg.out)


def _complete(cfg: FinetuneConfig, out: Path) -> bool:
    """Whether ``out`` holds this very fine-tune, finished and exported (a resume then has nothing to do)."""
    import json

    try:
        rep = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        return False
    train = rep.get("train") or {}
    from ..run_identity import NOT_TRAINING

    skip = NOT_TRAINING["config"]
    same = lambda c: {**c, "train": {k: v for k, v in (c.get("train") or {}).items() if k not in skip}}  # noqa: E731
    return (rep.get("kind") == "finetune" and (out / "hirobust.json").is_file() and train.get("steps") is not None
            and train.get("steps") == train.get("total_steps")
            and same(json.loads(json.dumps(rep.get("config"), default=str))) == same(
                json.loads(json.dumps(asdict(cfg), default=str))))


def _finetune(cfg: FinetuneConfig, out: Path, progress: bool, resume: bool, callback) -> None:
    device = resolve_device(cfg.device)
    if resume and _complete(cfg, out):  # e.g. `reproduce --resume` after a kill during evaluation
        _log.info("%s: the fine-tune is complete; nothing to resume (the exported model is kept as it is)", out)
        return
    check_train_classes(cfg.data)  # held-out classes checked before the model (or its pretraining)
    pretrained = resolve_pretrained(cfg.model, progress, device)
    torch.manual_seed(cfg.train.seed)
    clip = load_clip(cfg.model.name, pretrained, device=device)
    train = load_data(cfg.data, "train", clip.image_size)
    if cfg.data.train_classes is not None:  # held-out classes never reach the trainer
        train = train.restrict_classes(cfg.data.train_classes)
    _, forest = trees_of(cfg.data, train)
    classifier = build_cosine_classifier(clip, forest, train.templates, prompt_names=train.prompt_names)
    if cfg.method in METHODS and METHODS[cfg.method].needs_labels and not train.labelled:
        raise ConfigError(f"method {cfg.method!r} needs labels but dataset {cfg.data.dataset!r} has none; "
                         f"use an unsupervised method (fare) or a labelled dataset")
    if METHODS[cfg.method].needs_labels and len(train.classnames) < 2:
        raise ConfigError(f"method {cfg.method!r} classifies, and the training set has {len(train.classnames)} "
                         f"class ({', '.join(train.classnames)}): its loss is 0 and nothing trains; give "
                         f"data.train_classes at least two classes")
    options = method_config(cfg.method, cfg.options)
    level = getattr(options, "level", 0)
    if level >= forest[0].num_levels:
        raise ConfigError(f"{cfg.method} option level={level}: the tree has levels 0-{forest[0].num_levels - 1}")
    reference = None
    if METHODS[cfg.method].wants_reference(options):
        source = None
        if cfg.reference is not None:
            ref_clip = load_clip(cfg.reference.name, resolve_pretrained(cfg.reference, progress, device), device)
            source = build_cosine_classifier(ref_clip, forest, train.templates, prompt_names=train.prompt_names)
        reference = FrozenReference(classifier, source)
    method = build_method(cfg.method, classifier, forest, cfg.options, reference=reference, clip=clip)
    from ..io import json_digest, source_digest

    inputs = {"pretrained": source_digest(pretrained), "tree": json_digest(forest.to_json())}
    if cfg.reference is not None:
        inputs["reference"] = source_digest(resolve_pretrained(cfg.reference, progress, device))
    describe = {"method": cfg.method, "options": asdict(method.cfg), "model": asdict(cfg.model),
                "data": asdict(cfg.data), "inputs": inputs}
    from .. import distributed

    t0 = time.perf_counter()
    validate = None
    if cfg.train.val_every:
        from .validation import Validator

        validate = Validator(cfg, method, forest[0], device, out)
    from .validation import chained

    summary = Trainer(cfg.train, device).fit(method, train, out, resume=resume, progress=progress,
                                             callback=chained(validate, callback), describe=describe)
    _log.info("fine-tuned %s: %d steps in %.1f s (%.1f img/s)", cfg.method, summary["steps"],
              time.perf_counter() - t0, summary["images_per_second"])
    if distributed.is_main():
        _export(out, method, clip, cfg, pretrained, summary)
        _log.info("exported %s", out / "model")
    distributed.barrier()


def _export(out: Path, method, clip, cfg: FinetuneConfig, pretrained: str | None, summary: dict) -> None:
    """The run directory (:mod:`hirobust.models.rundir`) and the fine-tuning's ``report.json``."""
    prov = provenance(asdict(cfg))
    save_run(out, method, clip, method_name=cfg.method, model_name=cfg.model.name, source=pretrained,
             extra={"config": asdict(cfg), "environment": environment(), "provenance": prov})
    report = {"kind": "finetune", "method": cfg.method, "provenance": prov, "train": dict(summary),
              "config": asdict(cfg)}
    from .finetune_report import write_finetune_report

    write_finetune_report(report, out)  # report.md and loss.png first: report.json, written last, marks it done
    write_json(report, out / "report.json")
