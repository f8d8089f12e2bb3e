"""Text features of prompt sets, computed once: one pass of the text tower gives both forms a head needs (CLIP's
projected zero-shot weights and HiRo's pre-projection means), kept in memory for the process and on disk
(``<cache>/text/``) for later runs, ranks and resumes.

The key is the content of what the features depend on: the text tower's weights (every state entry outside
``visual.``, hashed once per model and weight version), the tokenizer, the prompts (names x templates). A text
tower that changed (HiRo fine-tunes it) is another key; nothing stale is ever read.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

log = logging.getLogger("hirobust.text")

_MEMORY: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
_MEMORY_ITEMS = 64
_DIGESTS: dict[tuple, str] = {}
ANNOUNCE = 5000  # prompt sets at least this large are logged as a stage, with an estimate of the time left


def _text_state(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in model.state_dict(keep_vars=True).items()
            if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias")]


def text_digest(model: torch.nn.Module) -> str:
    """sha256 of the text tower's weights; recomputed only when a weight changed (a tensor's version counter)."""
    state = _text_state(model)
    memo = (id(model), tuple((k, v.data_ptr(), v._version) for k, v in state))
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        for k, v in state:
            t = v.detach()
            h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        _DIGESTS.clear()  # one model at a time is the common case; keep the memo small
        _DIGESTS[memo] = h.hexdigest()
    return _DIGESTS[memo]


def _key(model, tokenizer, prompts: Sequence[str], n_names: int) -> str:
    h = hashlib.sha256(text_digest(model).encode())
    h.update(f"{type(tokenizer).__name__}:{getattr(tokenizer, 'context_length', '')}:{n_names}".encode())
    for p in prompts:
        h.update(p.encode() + b"\0")
    return h.hexdigest()[:32]


def _disk(key: str):
    from ..hierarchy.wordnet import cache_dir

    return cache_dir() / "text" / f"{key}.safetensors"


def cached_text(model, tokenizer, prompts: list[str], n_names: int,
                encode: Callable[[Callable[[int], None]], tuple[torch.Tensor, torch.Tensor]]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(projected, pre-projection) features of ``prompts`` from memory, disk, or ``encode(tick)`` (which calls
    ``tick(done)`` as it goes, for the progress log)."""
    key = _key(model, tokenizer, prompts, n_names)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    device = next(model.parameters()).device
    f = _disk(key)
    got = None
    if f.is_file():
        try:
            from safetensors.torch import load_file

            t = load_file(str(f))
            got = (t["projected"].to(device), t["pooled"].to(device))
        except Exception as e:  # noqa: BLE001 - a damaged cache file (safetensors' own error types): recompute
            log.warning("text cache %s is damaged (%s); computing the features again", f, e)
    if got is None:
        big = len(prompts) >= ANNOUNCE
        t0 = time.perf_counter()
        said = [t0]
        if big:
            log.info("text head: encoding %d prompts (computed once, then kept in %s)", len(prompts), f.parent)

        def tick(done: int) -> None:
            now = time.perf_counter()
            if big and now - said[0] > 30:
                left = (now - t0) / done * (len(prompts) - done)
                log.info("text head: %d of %d prompts, about %d s left", done, len(prompts), left)
                said[0] = now

        got = encode(tick)
        if big:
            log.info("text head: %d prompts in %.1f s", len(prompts), time.perf_counter() - t0)
        try:
            from ..io import save_safetensors

            save_safetensors({"projected": got[0].cpu().contiguous(), "pooled": got[1].cpu().contiguous()}, f)
        except OSError as e:  # a read-only cache costs time, never the run
            log.warning("cannot keep the text features in %s (%s)", f, e.strerror)
    _MEMORY[key] = got
    while len(_MEMORY) > _MEMORY_ITEMS:
        _MEMORY.popitem(last=False)
    return got
