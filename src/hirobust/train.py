"""One trainer for every method (and for the embedded CLIP's pretraining).

What it trains is a :class:`~hirobust.methods.base.Trainable` (every method, and the embedded CLIP's
pretraining task): its ``forward(x, y, generator=None, index=None)`` returns a dict with a scalar ``"loss"`` (and
any other scalars to log), and the trainer calls the hooks that class declares, nothing else. The trainer owns
the optimiser, schedule, precision, data order, checkpoints, resume, and the per-sample cache of the frozen
reference's outputs (computed here over the dataset, so methods see tensors only).

Determinism: the data order of epoch ``e`` comes from a generator seeded with ``(seed, e)`` and the
randomness of step ``s`` (attack starts) from one seeded with ``(seed, s)``, so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed as dist
from .data import ZSDataset
from .errors import ConfigError, Diverged, NotFound
from .io import load_safetensors, save_safetensors, write_json
from .methods.base import Trainable
from .progress import label
from .run_identity import first_difference, same_run
from .settings import TrainConfig


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    return torch.float16 if amp == "fp16" else torch.bfloat16


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + step)
    return g


class Interrupted(Exception):
    """Raised by a callback to stop training after a checkpoint (used by tests and time limits)."""


class Trainer:
    def __init__(self, cfg: TrainConfig, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)

    # ------------------------------------------------------------------ pieces
    def optimizer(self, params: list, method: Trainable | None = None) -> torch.optim.Optimizer:
        """The optimiser over ``params`` (Parameters, or ``(name, Parameter)`` pairs to consult
        ``method.lr_scale(name)``), one group per (weight-decay class, lr scale), see :meth:`param_groups`."""
        c = self.cfg
        groups = self.param_groups(params, method.lr_scale if method is not None else None)
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum)
        return torch.optim.AdamW(groups, lr=c.lr, betas=c.betas)

    def param_groups(self, params: list, lr_scale: Callable[[str], float] | None = None) -> list[dict]:
        """Groups keyed by (decay, lr scale): matrices get ``weight_decay``; gains, biases and scalars none. The
        two scale-1 groups come first (decay, then no decay), other scales after them in the order they first
        appear; parameters keep their order inside a group, so optimiser states line up on resume. Every group
        stores ``"lr_scale"`` (the loop's lr is ``lr · lr_scale · schedule``)."""
        named = [(None, p) if isinstance(p, torch.Tensor) else p for p in params]
        groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
        for name, p in named:
            scale = float(lr_scale(name)) if lr_scale is not None and name is not None else 1.0
            if not scale > 0 or not math.isfinite(scale):
                raise ConfigError(f"lr scale of {name!r} must be positive and finite, got {scale}")
            groups.setdefault((p.dim() >= 2, scale), []).append(p)
        return [{"params": ps, "weight_decay": self.cfg.weight_decay if decay else 0.0, "lr_scale": scale}
                for (decay, scale), ps in groups.items()]

    def _lr_factor(self, step: int, total: int) -> float:
        c = self.cfg
        if c.warmup_steps and step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        if c.schedule == "constant":
            return 1.0
        t = (step - c.warmup_steps) / max(1, total - c.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    def plan(self, n: int) -> tuple[int, int]:
        """(steps per epoch, total steps) for ``n`` training samples."""
        spe = n // self.cfg.batch_size
        if spe == 0:
            raise ConfigError(f"batch_size {self.cfg.batch_size} is larger than the {n} training samples")
        total = max(1, round(self.cfg.epochs * spe))
        if self.cfg.max_steps is not None:
            total = min(total, self.cfg.max_steps)
        return spe, total

    # ------------------------------------------------------------------ checkpoints
    @staticmethod
    def _check_finite(method: Trainable, step: int) -> None:
        """Raise before anything non-finite is saved: the first trainable tensor with NaN or inf, by name."""
        for name, t in method.trainable_state():
            if not bool(torch.isfinite(t).all()):
                raise Diverged(f"non-finite weights ({name}) after step {step}; nothing was saved after the "
                                         f"last checkpoint. Lower the learning rate, use amp=off, or check the data")

    @staticmethod
    def recover(run_dir: Path) -> None:
        """Finish or undo a checkpoint write a kill interrupted, so no state of the protocol below leaves the run
        directory unusable or loses the last complete checkpoint. The protocol: write ``checkpoint.tmp`` (its
        ``state.json`` last), rename ``checkpoint`` -> ``checkpoint.old``, rename ``checkpoint.tmp`` ->
        ``checkpoint``, delete ``checkpoint.old``. Hence: with ``checkpoint`` present, ``checkpoint.old`` (even half
        deleted) and ``checkpoint.tmp`` are leftovers; without it, ``checkpoint.old`` is the last complete one."""
        ck, tmp, old = run_dir / "checkpoint", run_dir / "checkpoint.tmp", run_dir / "checkpoint.old"
        if not ck.exists():  # killed between the two renames: the newest complete one wins
            if (tmp / "state.json").exists():
                tmp.rename(ck)
            elif (old / "state.json").exists():
                old.rename(ck)
        if old.exists():
            shutil.rmtree(old)
        if tmp.exists():
            shutil.rmtree(tmp)

    @staticmethod
    def _save(run_dir: Path, method: Trainable, opt: torch.optim.Optimizer, state: dict) -> None:
        Trainer._check_finite(method, state["step"])
        ck, tmp = run_dir / "checkpoint", run_dir / "checkpoint.tmp"
        Trainer.recover(run_dir)
        try:
            tmp.mkdir(parents=True)
            save_safetensors(dict(method.trainable_state()), tmp / "trainable.safetensors")
            osd = opt.state_dict()
            tensors = {f"{i}.{k}": v for i, s in osd["state"].items() for k, v in s.items() if torch.is_tensor(v)}
            save_safetensors(tensors, tmp / "optimizer.safetensors")
            write_json(state, tmp / "state.json")
        except BaseException as e:  # a full disk, Ctrl-C, SIGTERM: free what was half written; the last complete
            shutil.rmtree(tmp, ignore_errors=True)  # checkpoint stays
            if not isinstance(e, OSError):
                raise
            kept = "the last complete checkpoint is kept" if ck.exists() else "no checkpoint was written yet"
            raise OSError(e.errno, f"{e.strerror} while writing the checkpoint of step {state['step']} ({kept})",
                          e.filename) from e
        old = run_dir / "checkpoint.old"
        if ck.exists():
            ck.rename(old)
        tmp.rename(ck)
        if old.exists():
            shutil.rmtree(old)

    @staticmethod
    def _read_state(run_dir: Path, total: int) -> dict:
        """The checkpoint's ``state.json``, checked (step in range, one history row per step) before any tensor
        is read: a damaged or foreign file is one clear error naming it."""
        from .hierarchy import read_json

        f = run_dir / "checkpoint" / "state.json"
        state = read_json(f)
        missing = [k for k in ("step", "history", "identity") if not isinstance(state, dict) or k not in state]
        bad = missing[0] if missing else None
        if not bad and not (isinstance(state["step"], int) and 0 <= state["step"] <= total):
            bad = f"step ({state['step']!r} is not a step of this run's {total})"
        elif not bad and not (isinstance(state["history"], list) and len(state["history"]) == state["step"]
                              and all(isinstance(r, dict) for r in state["history"])):
            bad = "history (not one row per step)"
        elif not bad and not isinstance(state["identity"], dict):
            bad = "identity"
        if bad:
            raise ConfigError(f"{str(f)!r}: bad or missing {bad}: the checkpoint is damaged; delete "
                             f"{str(f.parent)!r} and train again (--overwrite)")
        return state

    @staticmethod
    def _load(run_dir: Path, method: Trainable, opt: torch.optim.Optimizer, device) -> None:
        """The checkpoint's trainable tensors and optimiser state into ``method`` and ``opt``."""
        ck = run_dir / "checkpoint"
        method.load_trainable_state(load_safetensors(ck / "trainable.safetensors", device))
        tensors = load_safetensors(ck / "optimizer.safetensors", device)
        osd = opt.state_dict()
        per: dict[int, dict] = {}
        try:
            for key, v in tensors.items():
                i, name = key.split(".", 1)
                per.setdefault(int(i), {})[name] = v
            if not set(per) <= set(osd["state"]) | {i for g in osd["param_groups"] for i in g["params"]}:
                raise ValueError("parameter indices outside the model's")
            osd["state"] = per
            opt.load_state_dict(osd)
        except (ValueError, KeyError, RuntimeError) as e:
            raise ConfigError(f"{str(ck / 'optimizer.safetensors')!r} does not fit this run's optimiser ({e}): the "
                             f"checkpoint is damaged; train again (--overwrite)") from None

    # ------------------------------------------------------------------ loop
    def step(self, model, method: Trainable, opt: torch.optim.Optimizer, params: list, x: torch.Tensor,
             y: torch.Tensor, generator: torch.Generator, index: torch.Tensor | None = None,
             amp: torch.dtype | None = None, scaler=None) -> dict:
        """One optimisation step (the one :meth:`fit` runs and ``hirobust bench`` times): ``model`` (``method``,
        or its DDP wrapper) under autocast, backward (scaled under fp16), gradient clipping, the optimiser step,
        ``method.after_step()``. Returns the method's output dict."""
        with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            out = model(x, y, generator=generator, index=index)
        loss = out["loss"]
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        method.after_step()
        return out

    def fit(
        self,
        method: Trainable,
        data: ZSDataset,
        run_dir: str | Path,
        resume: bool = False,
        progress: bool = True,
        callback: Callable[[int, dict], None] | None = None,
        describe: dict | None = None,
    ) -> dict:
        """Train ``method`` on ``data``; returns a summary with the loss history and throughput.

        ``resume=True`` continues from ``run_dir/checkpoint`` (an error if its run differs from this one).
        ``describe`` identifies the run (method, model, ...) and is checked on resume.
        """
        c = self.cfg
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if c.train_samples is not None:
            data = data.seeded_subset(c.train_samples, seed=c.seed)
        spe, total = self.plan(len(data))
        method.to(self.device)
        named = list(method.trainable_parameters())
        params = [p for _, p in named]
        opt = self.optimizer(named, method)
        identity = {"config": asdict(c), "describe": describe or {}, "total_steps": total, "samples": len(data)}
        identity = json.loads(json.dumps(identity, default=str))
        start, history = 0, []
        self.recover(run_dir)
        if resume:
            if not (run_dir / "checkpoint" / "state.json").exists():
                raise NotFound(f"--resume: no checkpoint in {run_dir}; run without --resume to start")
            state = self._read_state(run_dir, total)
            changed = first_difference(same_run(state["identity"]), same_run(identity))
            if changed:
                raise ConfigError(f"--resume: the checkpoint in {run_dir} belongs to another run: {changed}; rerun "
                                 f"with the same inputs, or start again with --overwrite")
            self._load(run_dir, method, opt, self.device)
            start, history = state["step"], state["history"]
        world, rank = dist.world(), dist.rank()
        if c.batch_size % world:
            raise ConfigError(f"batch_size {c.batch_size} (the global batch) must be divisible by the {world} ranks")
        # the frozen reference's outputs the method declares, once per training sample (in-memory data only)
        method.reference_cache.compute(method.reference_outputs(), data, self.device, method.image_size)
        if start == 0 and method.needs_first_batch:  # data-dependent init on the first global batch, every rank
            x0, y0 = next(data.batches(c.batch_size, shuffle=True, generator=torch.Generator().manual_seed(
                c.seed * 7919), drop_last=True, image_size=method.image_size))
            method.prepare(x0.to(self.device), y0.to(self.device))
        if c.compile:
            method.compile_image_tower()
        model = method
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(method, device_ids=[self.device.index] if self.device.type == "cuda"
                                            else None, broadcast_buffers=False)
        logs = None
        if rank == 0 and c.report_to == "tensorboard":
            from .train_log import TensorBoardLog

            logs = TensorBoardLog(run_dir, first_step=start)
        amp = autocast_dtype(c.amp, self.device)
        scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
        method.train()
        pending: list[dict] = []
        t0, seen = time.perf_counter(), 0
        bar = tqdm(total=total, initial=start, desc=label(f"train {method.name}"),
                   disable=not progress or rank != 0, dynamic_ncols=True)
        step = start
        try:
            while step < total:
                epoch, first = divmod(step, spe)
                g = torch.Generator().manual_seed(c.seed * 7919 + epoch)
                for x, y, idx in data.batches(c.batch_size, shuffle=True, generator=g, drop_last=True, start=first,
                                              image_size=method.image_size, with_index=True,
                                              shard=(rank, world) if world > 1 else None):
                    if step >= total:
                        break
                    x = x.to(self.device, non_blocking=True)
                    y = y.to(self.device, non_blocking=True)
                    factor = self._lr_factor(step, total)
                    for grp in opt.param_groups:
                        grp["lr"] = c.lr * grp.get("lr_scale", 1.0) * factor
                    gen = step_generator(c.seed * world + rank, step, self.device)
                    out = self.step(model, method, opt, params, x, y, gen, idx, amp, scaler)
                    pending.append({k: v.detach() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1})
                    pending[-1]["lr"] = torch.tensor(c.lr * factor)  # the base group's
                    step += 1
                    seen += x.shape[0]
                    bar.update(1)
                    if step % c.log_every == 0 or step == total:
                        history.extend(self._flush(pending, step - len(pending)))
                        pending = []
                        self._check_finite(method, step)
                        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
                    if c.ckpt_every and step % c.ckpt_every == 0 and step < total:
                        history.extend(self._flush(pending, step - len(pending)))
                        pending = []
                        if rank == 0:
                            self._save(run_dir, method, opt, {"step": step, "history": history, "identity": identity})
                            self._log(run_dir, history, logs)
                        dist.barrier()
                    if callback is not None:
                        callback(step, history[-1] if history else {})
        except (KeyboardInterrupt, Interrupted):
            bar.close()
            raise
        bar.close()
        history.extend(self._flush(pending, step - len(pending)))
        elapsed = time.perf_counter() - t0
        if rank == 0:
            self._save(run_dir, method, opt, {"step": step, "history": history, "identity": identity})
            self._log(run_dir, history, logs)
            if logs is not None:
                logs.close()
        dist.barrier()
        method.eval()
        return {"steps": step, "total_steps": total, "samples": len(data), "history": history, "world_size": world,
                "seconds": elapsed, "images_per_second": seen * world / elapsed if elapsed > 0 else float("nan")}

    @staticmethod
    def _log(run_dir: Path, history: list[dict], logs) -> None:
        """``train.csv`` (and TensorBoard's events) from the history the checkpoint just kept."""
        from .train_log import write_csv

        write_csv(run_dir, history)
        if logs is not None:
            logs.add(history)

    @staticmethod
    def _flush(pending: list[dict], first_step: int) -> list[dict]:
        if pending and dist.world() > 1:  # the global batch's values: the mean over ranks, in one all-reduce
            keys = list(pending[0])
            flat = dist.mean(torch.stack([torch.stack([d[k].float() for k in keys]) for d in pending]))
            pending = [dict(zip(keys, row)) for row in flat]
        out = []
        for i, d in enumerate(pending):
            row = {k: float(v) for k, v in d.items()}
            row["step"] = first_step + i + 1
            if not all(math.isfinite(v) for v in row.values()):
                raise Diverged(
                    f"non-finite loss at step {row['step']}: {row}; nothing was saved after the last checkpoint. "
                    f"Lower the learning rate, use amp=off, or check the data"
                )
            out.append(row)
        return out
