"""Host memory of an image-folder file list at ImageNet's size: a list of (Path, label) against hirobust's compact
``FileImages`` (data/base.py), in this process and in a forked reader (a DataLoader worker).

    python benchmarks/filelist_memory.py [--n 1281167]

Prints, for each representation, the bytes per image this process holds (tracemalloc) and the private memory a
forked process adds by reading every sample's path once (``Private_Dirty`` in /proc/self/smaps_rollup, Linux): a
list of Python objects is copied page by page as the reads touch the objects' reference counts, in every loader
worker of every rank. No file is opened: the paths are ImageNet-like strings.
"""

from __future__ import annotations

import argparse
import gc
import os
import tracemalloc
from functools import partial
from pathlib import Path


def _private_dirty_kib() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    raise RuntimeError("no Private_Dirty in /proc/self/smaps_rollup")


def _forked_read(read) -> int:
    """KiB of private memory a forked child adds by calling ``read`` (touching every sample once)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, leave without cleanup
        os.close(r)
        before = _private_dirty_kib()
        read()
        os.write(w, str(_private_dirty_kib() - before).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = int(f.read())
    os.waitpid(pid, 0)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_281_167, help="images (ImageNet-1k train: 1,281,167)")
    n = ap.parse_args().n
    root = Path("/data/imagenet/train")

    def touch_list(s):  # what a loader worker does per sample: read it, keep nothing
        for p, _ in s:
            str(p)

    def touch_compact(s):
        for i in range(len(s)):
            s.path(i)

    def paths():
        for i in range(n):
            wnid = f"n{1440764 + i % 1000:08d}"
            yield root / wnid / f"{wnid}_{10026 + i}.JPEG", i % 1000

    from hirobust.data.base import FileImages

    rows = []
    for name, build, read in [
        ("list of (Path, label)", lambda: list(paths()), touch_list),
        ("FileImages (compact)", lambda: FileImages(list(paths())), touch_compact),
    ]:
        gc.collect()
        tracemalloc.start()
        obj = build()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        child = _forked_read(partial(read, obj))
        rows.append((name, held / n, held / 2**30, child / 2**20))
        del obj
    print(f"{n:,} ImageNet-like paths, Python {os.sys.version.split()[0]}")
    print(f"{'representation':24s} {'B/image':>8s} {'GiB held':>9s} {'GiB a forked reader adds':>25s}")
    for name, per, gib, child in rows:
        print(f"{name:24s} {per:8.0f} {gib:9.3f} {child:25.3f}")
    print(f"ratio (list / compact): held {rows[0][1] / rows[1][1]:.1f}x, forked reader {rows[0][3] / rows[1][3]:.1f}x")


if __name__ == "__main__":
    main()
