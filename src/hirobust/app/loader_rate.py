"""The data loader's rate next to the training rate (``hirobust bench``): in-memory tensors and a folder of
JPEGs of ImageNet's typical size."""

from __future__ import annotations

import os
import time

import torch

from .markdown import rate as _r


def loader_rate(size: int, batch: int, n: int = 4096) -> dict:
    from ..data import ZSDataset

    ds = ZSDataset("bench", ["a"], ["{}"], {"paths": {"a": []}}, labels=torch.zeros(n, dtype=torch.long),
                   images=torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8))
    t = time.perf_counter()
    seen = sum(xb.shape[0] for xb, _ in ds.batches(batch, shuffle=True, generator=torch.Generator().manual_seed(0)))
    return {"in_memory_img_s": seen / (time.perf_counter() - t)}


def jpeg_folder_rate(size: int, workers: int, batch: int = 64) -> dict:
    """img/s of the ImageNet folder loader (PIL decode, bicubic resize of the short side, centre crop, to tensor)
    over synthetic JPEGs of ImageNet's typical size (500 x 375, quality 90, ~105 KB: smooth content plus noise), in the
    main process and with ``workers`` DataLoader workers. Written to a temporary folder, removed afterwards."""
    import tempfile

    import numpy as np
    from PIL import Image

    from ..data import get_dataset
    from ..data.imagenet import imagenet_wnids

    n = batch * max(2, 2 * workers)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="hirobust-bench-") as d:
        wnids = imagenet_wnids()[:8]
        for w in wnids:
            os.makedirs(os.path.join(d, "val", w))
        for i in range(n):
            base = Image.fromarray(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8)).resize((500, 375),
                                                                                              Image.BICUBIC)
            img = np.asarray(base, dtype=np.int16) + rng.integers(-36, 37, (375, 500, 3))
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(
                os.path.join(d, "val", wnids[i % 8], f"{i}.JPEG"), quality=90)
        out = {"jpeg_workers": workers}
        for key, nw, m in (("jpeg_main_process_img_s", 0, batch), ("jpeg_workers_img_s", workers, n)):
            ds = get_dataset("imagenet", "test", root=d, image_size=size, num_workers=nw,
                             allow_partial=True).seeded_subset(m, 0)  # 8 wnid folders of timing images
            t = time.perf_counter()
            seen = sum(xb.shape[0] for xb, _ in ds.batches(batch))
            out[key] = seen / (time.perf_counter() - t)
    return out


def loader_line(r: dict) -> str:
    return (f"loader: in-memory {r['in_memory_img_s']:.0f} img/s; JPEG folder (synthetic 500x375) "
            f"{_r(r['jpeg_main_process_img_s'])} img/s in the main process, {_r(r['jpeg_workers_img_s'])} img/s with "
            f"{r['jpeg_workers']} workers")
