"""Data-parallel helpers for ``torchrun`` (NCCL on GPUs, gloo on CPU); no-ops in a single process.

Launch any command under torchrun, e.g. ``torchrun --nproc_per_node 8 -m hirobust finetune ...``; across
nodes add ``--nnodes N --node_rank R --rdzv_endpoint HOST:PORT`` (torchrun's usual flags). Each rank takes a
contiguous slice of every global batch (``train.batch_size`` is the global batch), gradients are averaged by
DistributedDataParallel, rank 0 writes checkpoints and reports, and evaluation shards the images and gathers
every prediction, so totals are exact.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment (once); returns this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return device
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0; before the process group is joined, the rank torchrun gave this process (``RANK``), so a command
    decides who owns its run directory before it loads anything."""
    return rank() == 0 if active() else int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if active():
        dist.barrier()


def gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in a single process."""
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over ranks (a copy)."""
    if not active():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / world()


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0 in rank order (lengths may differ, and may be 0)."""
    if not active():
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world())]
    dist.all_gather(sizes, n)
    top = int(max(s.item() for s in sizes))
    pad = torch.zeros((top - t.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
    parts = [torch.zeros((top, *t.shape[1:]), dtype=t.dtype, device=t.device) for _ in range(world())]
    dist.all_gather(parts, torch.cat([t, pad]))
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def shard_batches(n: int, batch_size: int) -> tuple[slice, int]:
    """This rank's contiguous run of whole batches when ``n`` items are cut into batches of ``batch_size`` (the
    batches one process would make; the last may be short), and the index of its first batch. Ranks may hold
    different numbers of batches, or none."""
    nb = -(-n // batch_size)
    lo, hi = rank() * nb // world(), (rank() + 1) * nb // world()
    return slice(lo * batch_size, min(hi * batch_size, n)), lo
