"""The evaluation jobs: models x one dataset -> report.json's content (resumable cell by cell), and models x
many datasets -> one report per dataset plus the average table."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from .. import distributed
from ..data import DATASETS, get_dataset
from ..errors import ConfigError
from ..evaluate import (
    AUTOATTACK_NAMES,
    ROBUST_DEFINITION,
    chance_flags,
    chance_rates,
    class_group_breakdown,
    evaluate_model,
)
from ..io import save_safetensors, write_json
from ..models.rundir import (
    META,
    is_run_dir,
    load_classifier,
    read_run_meta,
    run_data_config,
    run_train_classes,
    source_image_size,
)
from ..progress import Stages, active
from .env import environment, provenance, resolve_device
from .inputs import load_data, trees_of
from .schema import DataConfig, EvalConfig

_log = logging.getLogger("hirobust.evaluate")


class AttackCells:
    """Finished (attack, level) predictions of one model's evaluation, one safetensors file each, tagged with the
    evaluation's key (source, data, attack settings): a result of other settings is never reused."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = Path(folder), key

    def get(self, name: str):
        f = self.folder / f"{name}.safetensors"
        if not f.exists():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(f), "pt") as h:
                if (h.metadata() or {}).get("key") != self.key:
                    return None
                return h.get_tensor("pred")
        except Exception as e:  # noqa: BLE001 - a damaged cache file (safetensors' own error types): recompute it
            _log.warning("%s is damaged (%s); computing that cell again", f, e)
            return None

    def put(self, name: str, pred) -> None:
        if distributed.is_main():
            save_safetensors({"pred": pred}, self.folder / f"{name}.safetensors", metadata={"key": self.key})


def _check_sources(models: dict) -> None:
    """Every path among the model sources is a fine-tuned run directory (checked before any work)."""
    for name, source in models.items():
        if isinstance(source, (str, Path)) and not is_run_dir(source):
            raise ConfigError(f"model {name!r}: {str(source)!r} is not a fine-tuned run directory (no {META})")


def evaluate_models(models: dict[str, str | dict], data_cfg: DataConfig, eval_cfg: EvalConfig, device="auto",
                    progress: bool = True, cells: dict | None = None, wrap=None) -> dict:
    """report.json's content for ``models`` (name -> run dir or {"name", "pretrained"}) on one dataset.
    ``wrap(name, classifier) -> classifier`` (optional) changes a loaded classifier before it is evaluated (e.g. a
    readout ablation of :mod:`hirobust.diagnose`)."""
    device = resolve_device(device)
    _check_sources(models)
    data_cfg = _runs_tree(models, data_cfg)
    ds = load_data(data_cfg, data_cfg.eval_split, source_image_size(next(iter(models.values()))), progress)
    eval_forest, _ = trees_of(data_cfg, ds)
    hier = eval_forest[0]
    from ..eval_plan import check_levels

    check_levels(eval_cfg, hier.num_levels)  # before any model loads

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
              "partial": ds.partial, "damaged": list(ds.damaged), "eval_config": asdict(eval_cfg), "models": {},
              "environment": environment(),
              "provenance": provenance({"data": asdict(data_cfg), "eval": asdict(eval_cfg)})}
    stages = None if active() else Stages(len(models))
    for name, source in models.items():
        t0 = time.perf_counter()
        _log.info("evaluating %s (%s) on %s/%s", name, source, data_cfg.dataset, data_cfg.eval_split)
        with stages.stage(f"evaluate {name}") if stages else contextlib.nullcontext():
            clf = load_classifier(source, eval_forest, ds.templates, ds.prompt_names, device)
            clf = wrap(name, clf) if wrap is not None else clf
            report["models"][name] = evaluate_model(clf, ds, hier, eval_cfg, device, progress,
                                                    (cells or {}).get(name))
        report["models"][name]["chance_flags"] = chance_flags(report["models"][name], report["chance"],
                                                              _why_untrusted(source, hier.name))
        seen = data_cfg.train_classes if data_cfg.train_classes is not None else run_train_classes(source)
        if seen is not None:
            report["models"][name]["by_class_group"] = class_group_breakdown(report["models"][name], hier, seen)
        report["models"][name]["source"] = str(source) if not isinstance(source, dict) else source
        report["models"][name]["seconds"] = time.perf_counter() - t0
        _log.info("evaluated %s in %.1f s", name, report["models"][name]["seconds"])
    return report


def cell_inputs(name: str, source, data_cfg: DataConfig, eval_cfg: EvalConfig) -> dict:
    """What one model's evaluation read, by content: the run's weights, head tensors and ``hirobust.json`` (or the
    pretrained checkpoint), the tree file, the data and attack settings. A kept result is reused only while all of
    them are unchanged."""
    from ..io import file_digest, source_digest
    from ..models.rundir import HEAD_TENSORS

    if isinstance(source, (str, Path)):
        run = Path(source)
        head = run / HEAD_TENSORS
        src = {"run": str(source), "weights": file_digest(read_run_meta(source)["weights_path"]),
               "head tensors": file_digest(head) if head.is_file() else None,
               "run metadata (hirobust.json)": file_digest(run / META)}
    else:
        src = {"model": source.get("name"), "pretrained": source_digest(source.get("pretrained"))}
    tree = data_cfg.hierarchy
    return {"name": name, **src, "tree file": source_digest(tree) if tree else None,
            "data settings": asdict(data_cfg), "eval settings": asdict(eval_cfg)}


def _cell_key(inputs: dict) -> str:
    from ..io import json_digest

    return json_digest(inputs)


def _runs_tree(models: dict, data_cfg: DataConfig) -> DataConfig:
    """The evaluated tree: ``data.tree`` when given; else, when every fine-tuned run among ``models`` was trained on
    this dataset with one and the same shipped tree, that tree (said in the log), not the dataset's default one."""
    trees = set()
    for source in models.values():
        d = run_data_config(source)
        if d and d.get("dataset") == data_cfg.dataset and d.get("hierarchy") is None:
            trees.add(d.get("tree"))
    if data_cfg.tree is None and data_cfg.hierarchy is None and len(trees) == 1 and None not in trees:
        tree = next(iter(trees))
        _log.info("evaluating with tree %r, the one the fine-tuned runs were trained with (data.tree= to choose)", tree)
        return dataclasses.replace(data_cfg, tree=tree)
    if data_cfg.tree is not None and trees - {None, data_cfg.tree}:
        _log.warning("data.tree=%s, but the runs were fine-tuned with %s", data_cfg.tree, sorted(trees - {None}))
    return data_cfg


def _why_untrusted(source, tree: str) -> str:
    """The likely reason a level is at chance: a run fine-tuned with another tree, or names the model does not know."""
    trained = run_data_config(source)
    names = trained.get("trees") or [trained.get("tree")]
    if trained and trained.get("hierarchy") is None and tree not in names:
        return f"the run was fine-tuned with tree {', '.join(map(str, names))}, evaluated with {tree}"
    return "its node names may be outside what the model learned (or the tree groups what it cannot tell apart)"


def evaluate_models_resumable(models: dict, data_cfg: DataConfig, eval_cfg: EvalConfig, out: Path, device="auto",
                              progress: bool = True, resume: bool = False) -> dict:
    """:func:`evaluate_models`, one model at a time, each model's result kept in ``out/.cells/`` as soon as it is
    done, and within a model every finished (attack, level) cell (:class:`AttackCells`): a killed or failed
    evaluation loses at most the cell it was on, and ``resume`` reuses the rest (only if the model's source, the
    data and the attack settings are unchanged)."""
    _check_sources(models)
    if "autoattack" in eval_cfg.attacks:
        from ..attacks.autoattack import check_available

        check_available()
    report, stages = None, Stages(len(models))
    for name, source in models.items():
        cell = out / ".cells" / f"{name}.json"
        inputs = cell_inputs(name, source, data_cfg, eval_cfg)
        key = _cell_key(inputs)
        part = None
        if resume and cell.exists():
            part = _kept(cell, name, key, inputs)
        if part is None:
            folder = out / ".cells" / name
            if not resume and folder.exists():  # a fresh evaluation: nothing of an earlier one is reused
                import shutil

                shutil.rmtree(folder)
            with stages.stage(f"evaluate {name}"):
                part = evaluate_models({name: source}, data_cfg, eval_cfg, device, progress,
                                       cells={name: AttackCells(folder, key)})
            if distributed.is_main():
                write_json({"key": key, "inputs": inputs, "report": part}, cell)
        else:
            stages.skip()
        if report is None:
            report = part
        else:
            report["models"].update(part["models"])
    return report


def _kept(cell: Path, name: str, key: str, inputs: dict) -> dict:
    """The kept result of model ``name`` if it was computed from the same inputs; a changed input is refused,
    named; a damaged cell file is named."""
    from ..run_identity import first_difference

    try:
        kept = json.loads(cell.read_text())
        report = kept["report"]
        if not isinstance(report, dict) or not isinstance(report.get("models"), dict):
            raise ValueError("no report in it")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{str(cell)!r} is damaged ({e}); delete it (that model is evaluated again) and rerun "
                         f"with --resume") from None
    if kept.get("key") == key:
        return report
    changed = first_difference(kept.get("inputs") or {}, inputs) or "its inputs changed (a result of an older hirobust)"
    raise ConfigError(f"--resume: model {name!r}: {changed} since its kept result; evaluate again with --overwrite, "
                     f"or into another --out")


def evaluate_datasets(models: dict[str, str | dict], names: list[str] | str, data_cfg: DataConfig,
                      eval_cfg: EvalConfig, out: str | Path, device="auto", progress: bool = True,
                      resume: bool = False, shard: tuple[int, int] | None = None) -> dict:
    """Evaluate ``models`` on each dataset of ``names`` (``"all"``: the 15 zero-shot datasets) that is present
    under ``data_cfg.root``; skip the others, saying why. Writes ``out/<dataset>/report.*``, ``out/compare.*``
    (the average table) and ``out/datasets.json`` (what was evaluated and what was skipped), the last two after
    every dataset, so a kill loses at most the cell it was in. Each dataset is evaluated model by model and attack
    by attack (:func:`evaluate_models_resumable`): ``resume`` reuses every finished (dataset, model, attack, level)
    cell of the same inputs. ``shard=(i, n)``: this process takes datasets i, i+n, ... (each claimed, so processes
    sharing ``out`` never evaluate one twice) and the summary covers what every process finished."""
    from ..data.folder import dataset_dir, is_folder_name
    from ..data.registry import CLIP_BENCHMARK_ALIASES, ZEROSHOT_DATASETS, canonical_dataset
    from .report import write_report

    names = list(ZEROSHOT_DATASETS) if names == "all" or names == ["all"] else [
        n if is_folder_name(n) else canonical_dataset(n) for n in names]
    unknown = [n for n in names if n not in DATASETS and not is_folder_name(n)]  # every registered one, the 15 too
    if unknown:  # before any work: a misspelt name is the user's error, not a dataset to skip
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(f"unknown dataset {unknown[0]!r}; known: {known} (or 'all'; CLIP_benchmark's names "
                         f"{', '.join(CLIP_BENCHMARK_ALIASES)} also work)")
    if "autoattack" in eval_cfg.attacks:  # before the first dataset, never after the last
        from ..attacks.autoattack import check_available

        check_available()
    out = Path(out)
    from .workqueue import claimed

    mine = names if shard is None else names[shard[0] - 1::shard[1]]
    unusable = check_datasets(mine, data_cfg)
    done, skipped = [], {n: why for n, why in unusable.items() if why}  # known before the first dataset
    for name in mine:
        if name in skipped:
            continue
        cfg = dataclasses.replace(data_cfg, dataset=name, tree=None if name != data_cfg.dataset else data_cfg.tree,
                                  hierarchy=None if name != data_cfg.dataset else data_cfg.hierarchy)
        dest = out / dataset_dir(name)
        with claimed(out / ".claims", f"dataset {name}") if shard else contextlib.nullcontext(True) as held:
            if not held:  # another process is on it
                continue
            try:
                report = evaluate_models_resumable(models, cfg, eval_cfg, dest, device, progress,
                                                   resume=resume or shard is not None)
            except (FileNotFoundError, ImportError) as e:  # found but unreadable: skip it, say why
                skipped[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
                continue
            if distributed.is_main():
                write_report(report, dest)
        done.append(name)
        _summary(out, names, done, skipped, shared=shard is not None)
    return _summary(out, names, done, skipped, shared=shard is not None)


def check_datasets(names: list[str], data_cfg: DataConfig) -> dict[str, str | None]:
    """Name -> why it cannot be evaluated (None: it can), for each dataset, before any work: present, the Python
    packages it needs, complete (files, counts, classes; data/check.py), md5 sums verified (once per copy). The
    images themselves are decoded when the dataset's turn comes."""
    from ..data.folder import is_folder_name
    from ..data.registry import ZEROSHOT_DATASETS, available

    out: dict[str, str | None] = {}
    for name in names:
        if is_folder_name(name) or name not in ZEROSHOT_DATASETS:
            out[name] = None  # image folders are checked when loaded; the built-in ones are generated
            continue
        ok, why = (True, "") if data_cfg.download else available(name, data_cfg.root, data_cfg.eval_split,
                                                                  data_cfg.allow_partial)
        if ok and not data_cfg.download:
            try:
                get_dataset(name, data_cfg.eval_split, root=data_cfg.root, num_workers=0, check_images=False,
                            allow_partial=data_cfg.allow_partial, caltech101_background=data_cfg.caltech101_background)
            except (FileNotFoundError, ImportError) as e:
                ok, why = False, str(e).splitlines()[0] if str(e) else type(e).__name__
        out[name] = None if ok else why
        _log.info("%s: %s", name, "complete" if ok else f"skipped: {why}")
    return out


def _summary(out: Path, names: list[str], done: list[str], skipped: dict, shared: bool = False) -> dict:
    """datasets.json and the average table of what is finished so far (rewritten after every dataset); ``shared``:
    of what every process sharing ``out`` finished or skipped (one process writes at a time)."""
    from ..data.folder import dataset_dir
    from .compare import compare

    if shared:
        from .workqueue import claimed

        with claimed(out / ".claims", "summary", wait=True):
            try:
                before = json.loads((out / "datasets.json").read_text()).get("skipped") or {}
            except (OSError, ValueError):
                before = {}
            done = [n for n in names if (out / dataset_dir(n) / "report.json").is_file()]
            skipped = {n: why for n, why in {**before, **skipped}.items() if n not in done}
            return _summary(out, names, done, skipped)
    summary = {"evaluated": done, "skipped": skipped, "pending": [n for n in names if n not in done
                                                                   and n not in skipped]}
    if distributed.is_main():
        if done:
            compare([out / dataset_dir(n) for n in done], out)
        write_json(summary, out / "datasets.json")
    return summary

