"""Running the study's cells (:mod:`hirobust.app.study`): in this process, in ``k`` local worker processes
(``--workers k``, one share of the CPU threads each), or as slice ``i`` of ``n`` (``--shard i/n``) among processes
on any machines that share the study folder (a SLURM array, several shells). Cells are claimed
(:mod:`hirobust.app.workqueue`), so two processes never compute the same one; a process that dies leaves its cell
to the next that looks, and a rerun continues from the cells that exist.

The cells, in order: each pretraining (one per pretraining config; later parts with the same config share it),
each tuning candidate and the choice, the evaluations (with their fine-tunes) in :func:`~hirobust.app.study.cells`
order, AutoAttack last. The analysis is rebuilt when a part's evaluations are complete, at least every 10 minutes,
and at the end; ``sessions.json`` records each invocation's wall time, workers and the cells it computed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch

from ..io import write_json
from ..typed import from_dict
from .study import (
    StudyConfig,
    _autoattack_cell,
    _eval_cell,
    _finetune_cell,
    _part,
    _pretrain_config,
    _pretrained,
    _source,
    cells,
)
from .workqueue import Cell, claimed, work
from .workqueue import shard as take_shard

log = logging.getLogger("hirobust.study")


def _exists(path: Path) -> bool:
    return path.exists()


def _tag(run: str, seed: int) -> str:
    return run if run == "clip" else f"{run}-s{seed}"


def _tuned(cfg: StudyConfig, run: str) -> bool:
    return bool(cfg.tune is not None and cfg.tune.candidates and run != "clip"
                and (run == cfg.tune.run or (cfg.methods.get(run) or {}).get("tuned")))


def _has_pretrained(out: Path, key: str) -> bool:
    return any((out / "pretrained").glob(f"*-{key}.safetensors"))


def _pretrain_cell(cfg, pname, out, device, progress) -> None:
    t0 = time.perf_counter()
    _pretrained(cfg, _part(cfg, pname), pname, out, device, progress)
    if time.perf_counter() - t0 > 5:
        from .study import _cell_time

        _cell_time(out, f"pretrain {pname}", time.perf_counter() - t0)


def _tune_cell(cfg, pname, cand, out, device, progress) -> None:
    """Fine-tune candidate ``cand`` (seed 0) on the main part and evaluate it on the validation split."""
    from .study import tune_eval_config

    t, part = cfg.tune, _part(cfg, pname)
    model = _pretrained(cfg, part, pname, out, device, progress)
    opts = {**(cfg.methods[t.run].get("options") or {}), **(t.candidates[cand] or {})}
    run_dir = _finetune_cell(cfg, part, pname, t.run, 0, model, out, opts, out / "tune" / "runs" / cand, progress)
    _eval_cell(cfg, part, cand, str(run_dir), tune_eval_config(cfg, part), t.split,
               out / "tune" / "evals" / f"{cand}.json", out, progress)


def _choose(cfg, out) -> None:
    """The candidate with the best mean same-level robust accuracy on the validation split."""
    t, scores = cfg.tune, {}
    for cand in t.candidates:
        m = json.loads((out / "tune" / "evals" / f"{cand}.json").read_text())["models"][cand]
        scores[cand] = sum(m["robust"][a][a] for a in m["robust"]) / len(m["robust"])
    best = max(scores, key=scores.get)
    write_json({"choice": best, "options": t.candidates[best] or {}, "scores": scores, "criterion": t.criterion,
                "split": t.split, "samples": t.samples}, out / "tune" / "choice.json")


def _evaluate_cell(cfg, pname, run, seed, out, device, progress) -> None:
    from .schema import EvalConfig

    part = _part(cfg, pname)
    model = _pretrained(cfg, part, pname, out, device, progress)
    ecfg = from_dict(EvalConfig, {**asdict(cfg.eval), **part.eval, **(part.eval_extra_seeds if seed else {})})
    source = _source(cfg, part, pname, run, seed, model, out, progress)
    _eval_cell(cfg, part, _tag(run, seed), source, ecfg, "test", out / pname / "evals" / f"{_tag(run, seed)}.json",
               out, progress)


def _autoattack(cfg, pname, run, out, device, progress) -> None:
    part = _part(cfg, pname)
    _autoattack_cell(cfg, part, pname, run, _tag(run, 0), _pretrained(cfg, part, pname, out, device, progress), out,
                     progress)


def study_cells(cfg: StudyConfig, out: Path, device, progress: bool) -> list[Cell]:
    """Every cell of the study, in the order one process computes them."""
    main_part = next(iter(cfg.parts))
    result: list[Cell] = []
    pre: dict[str, str] = {}
    for pname in cfg.parts:
        key = _pretrain_config(cfg, _part(cfg, pname)).key()
        pre[pname] = f"pretrain {key}"
        if pre[pname] not in {c.key for c in result}:
            result.append(Cell(pre[pname], partial(_pretrain_cell, cfg, pname, out, device, progress),
                               partial(_has_pretrained, out, key), spread=False))
    tuned = ()
    if cfg.tune is not None and cfg.tune.candidates:
        cands = [f"tune {c}" for c in cfg.tune.candidates]
        for cand, key in zip(cfg.tune.candidates, cands):
            result.append(Cell(key, partial(_tune_cell, cfg, main_part, cand, out, device, progress),
                               partial(_exists, out / "tune" / "evals" / f"{cand}.json"), (pre[main_part],), False))
        result.append(Cell("tune choice", partial(_choose, cfg, out), partial(_exists, out / "tune" / "choice.json"),
                           tuple(cands), False))
        tuned = ("tune choice",)
    for pname, run, seed in cells(cfg):
        result.append(Cell(f"evaluate {pname}/{_tag(run, seed)}",
                           partial(_evaluate_cell, cfg, pname, run, seed, out, device, progress),
                           partial(_exists, out / pname / "evals" / f"{_tag(run, seed)}.json"),
                           (pre[pname],) + (tuned if _tuned(cfg, run) else ())))
    keys = {c.key for c in result}
    for pname in cfg.parts:  # AutoAttack last: the costliest cells, a check on the main numbers; after the run's
        for run in _part(cfg, pname).autoattack_runs:  # evaluation (its fine-tune is then done)
            ev = f"evaluate {pname}/{_tag(run, 0)}"
            result.append(Cell(f"autoattack {pname}/{_tag(run, 0)}",
                               partial(_autoattack, cfg, pname, run, out, device, progress),
                               partial(_exists, out / pname / "autoattack" / f"{_tag(run, 0)}.json"),
                               (pre[pname],) + (tuned if _tuned(cfg, run) else ()) + ((ev,) if ev in keys else ())))
    return result


def analyse(cfg: StudyConfig, out: Path, wait: bool = True) -> dict | None:
    """Rebuild study.json/md and plots from the finished cells (one process at a time; ``wait=False``: skip when
    another process is at it)."""
    from .study_report import write_study

    with claimed(out / ".claims", "analysis", wait=wait) as held:
        return write_study(cfg, out) if held else None


def work_cells(cfg: StudyConfig, out: Path, device, progress: bool, shard: tuple[int, int] | None = None,
               parallel: int = 1) -> None:
    """This process's share of the work: every cell (or slice ``shard``) not done, claimed one at a time."""
    from ..progress import Stages

    todo = study_cells(cfg, out, device, progress)
    if shard is not None:
        todo = take_shard(todo, *shard)
    stages = Stages(len(todo), log=log, parallel=parallel)
    last = [time.perf_counter()]

    def after(cell: Cell) -> None:
        pname = cell.key.split(" ", 1)[1].split("/")[0] if cell.key.startswith("evaluate ") else None
        part_done = pname is not None and all(c.done() for c in todo if c.key.startswith(f"evaluate {pname}/"))
        if part_done or time.perf_counter() - last[0] > 600:  # after each part, and at least every 10 minutes
            analyse(cfg, out, wait=False)
            last[0] = time.perf_counter()

    work(todo, out / ".claims", before=lambda c, n: stages.stage(c.key, done=n), after=after)


def _session(out: Path, started: float, wall: float, workers: int, shard, computed: int, finished: bool) -> None:
    with claimed(out / ".claims", "sessions", wait=True):
        f = out / "sessions.json"
        sessions = json.loads(f.read_text()) if f.exists() else []
        sessions.append({"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
                         "wall_seconds": round(wall, 1), "workers": workers,
                         "shard": f"{shard[0]}/{shard[1]}" if shard else None, "cells_computed": computed,
                         "host": os.uname().nodename, "threads_per_worker": torch.get_num_threads(),
                         "finished": finished})
        write_json(sessions, f)


def run_study(cfg: StudyConfig, progress: bool = True, workers: int = 1, shard: tuple[int, int] | None = None) -> dict:
    """Run every cell that is not done yet (this process, ``workers`` local processes, or slice ``shard``), then
    rebuild the analysis; returns study.json's content."""
    from ..io import RunLog
    from .env import provenance, resolve_device
    from .outdir import claim

    if workers < 1:
        from ..errors import ConfigError

        raise ConfigError(f"--workers {workers}: give 1 or more worker processes")
    threads = cfg.threads or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None)
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    # a plain run holds the folder alone; slices share it with each other (never with a plain run)
    with claim(out, "study", shared=shard is not None), RunLog(out, {"provenance": provenance(asdict(cfg))}):
        write_json(asdict(cfg), out / "config.json")
        started, t0 = time.time(), time.perf_counter()
        every = study_cells(cfg, out, device, progress)
        before, finished = sum(c.done() for c in every), False
        try:
            if workers == 1:
                work_cells(cfg, out, device, progress, shard)
            else:
                _spawn(cfg, workers, shard, threads, progress)
            finished = True
        finally:  # a stopped session (Ctrl-C, a time limit) is recorded too: the wall times of all sessions add up
            _session(out, started, time.perf_counter() - t0, workers, shard, sum(c.done() for c in every) - before,
                     finished)
        return analyse(cfg, out, wait=True)


def _spawn(cfg: StudyConfig, workers: int, shard, threads: int, verbose: bool) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a clean interpreter each: no forked torch thread pools
    procs = [ctx.Process(target=worker_main, args=(asdict(cfg), shard, w, workers, threads, verbose),
                         name=f"hirobust-study-worker-{w + 1}") for w in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except BaseException:  # stopped: the workers stop too (a claimed cell is released, its files kept)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    failed = [(w + 1, p.exitcode) for w, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"study worker(s) {', '.join(f'{w} (exit {c})' for w, c in failed)} failed or were "
                           f"stopped; why is above and in run.log; the finished cells are kept: rerun to continue")


def worker_main(cfg_dict: dict, shard, w: int, workers: int, threads: int, verbose: bool) -> None:
    """One local worker process (spawned): its log lines carry ``[worker w/k]``, on stderr and in run.log."""
    import sys

    from ..io import RunLog
    from .env import resolve_device

    torch.set_num_threads(threads)
    cfg = from_dict(StudyConfig, cfg_dict)
    hlog = logging.getLogger("hirobust")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    console.setLevel(logging.INFO if verbose else logging.ERROR)
    hlog.addHandler(console)
    tag, factory = f"[worker {w + 1}/{workers}]", logging.getLogRecordFactory()

    def tagged(*args, **kwargs) -> logging.LogRecord:  # every record this process makes, whichever handler shows it
        record = factory(*args, **kwargs)
        record.msg = f"{tag} {record.msg}"
        return record

    logging.setLogRecordFactory(tagged)
    hlog.propagate = False
    out = Path(cfg.out)
    from .stop import sigterm_stops, terminated

    try:
        with sigterm_stops(), RunLog(out):
            work_cells(cfg, out, resolve_device(cfg.device), False, shard, parallel=workers)
    except KeyboardInterrupt:  # stopped with the study (Ctrl-C, SIGTERM): its cell released, no traceback
        sys.exit(143 if terminated() else 130)
