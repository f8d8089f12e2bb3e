"""Cells shared by several processes (app/workqueue.py): every cell computed exactly once whatever the number of
processes, after the cells it needs; slices of a shard cover every cell once, with what they need."""

import contextlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from hirobust.app.workqueue import Cell, claimed, parse_shard, shard, work
from hirobust.errors import ConfigError


def _cells(root: Path) -> list[Cell]:
    def run(key):
        def go():
            with open(root / "log.txt", "a") as f:  # O_APPEND: one line per computation, whoever computes it
                f.write(f"{key} {os.getpid()} {time.monotonic()}\n")
            time.sleep(0.05)
            (root / f"{key}.done").write_text("x")
        return go

    def done(key):
        return lambda: (root / f"{key}.done").exists()

    cells = [Cell("pre", run("pre"), done("pre"), spread=False)]
    cells += [Cell(f"c{i}", run(f"c{i}"), done(f"c{i}"), ("pre",) + ((f"c{i - 1}",) if i % 4 == 3 else ()))
              for i in range(12)]
    return cells


def _worker(root: str) -> None:
    work(_cells(Path(root)), Path(root) / "claims", poll=0.02)


def test_three_processes_compute_every_cell_exactly_once_after_what_it_needs(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    lines = [ln.split() for ln in (tmp_path / "log.txt").read_text().splitlines()]
    keys = [k for k, _, _ in lines]
    assert sorted(keys) == sorted(["pre"] + [f"c{i}" for i in range(12)])  # each once: no cell computed twice
    start = {k: float(t) for k, _, t in lines}
    for c in _cells(tmp_path):
        for need in c.needs:  # a cell starts after what it needs was finished (0.05 s after its start)
            assert start[c.key] >= start[need] + 0.04, (c.key, need)
    assert len({pid for _, pid, _ in lines}) >= 2  # the work was shared
    # a rerun finds everything done and computes nothing
    assert work(_cells(tmp_path), tmp_path / "claims", poll=0.02) == []


def test_a_held_cell_is_left_to_its_holder_and_taken_when_it_is_released(tmp_path):
    cells = _cells(tmp_path)[:2]
    with claimed(tmp_path / "claims", "pre"):  # another process (here: this one's other handle) holds "pre"
        ctx = multiprocessing.get_context("fork")
        p = ctx.Process(target=work, args=(cells, tmp_path / "claims"), kwargs={"poll": 0.02})
        p.start()
        time.sleep(0.5)
        assert not (tmp_path / "pre.done").exists()  # waits: the held cell, and the one that needs it
    p.join(30)
    assert p.exitcode == 0 and (tmp_path / "pre.done").exists() and (tmp_path / "c0.done").exists()


def test_stage_numbers_count_the_cells_other_processes_hold(tmp_path):
    """Two workers starting together do not both say "stage 1": a cell another process holds counts as started."""
    import threading

    cells = [c for c in _cells(tmp_path) if c.key in ("pre", "c0", "c1")]
    (tmp_path / "pre.done").write_text("x")
    seen, release = [], threading.Event()

    def hold():
        with claimed(tmp_path / "claims", "c0"):  # another process (here: another open file) holds c0
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.1)

    def before(cell, n):
        seen.append((cell.key, n))
        release.set()  # c0 is freed once c1 is under way
        return contextlib.nullcontext()

    computed = work(cells, tmp_path / "claims", poll=0.02, before=before)
    t.join()
    assert computed == ["c1", "c0"]
    assert seen == [("c1", 2), ("c0", 2)]  # c1: pre done + c0 held; c0: pre and c1 done


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_cover_every_spread_cell_once_with_what_it_needs(tmp_path, n):
    cells = _cells(tmp_path)
    slices = [shard(cells, i, n) for i in range(1, n + 1)]
    every = {c.key for c in cells if c.spread}
    assert set().union(*({c.key for c in s} for s in slices)) >= every
    for s in slices:
        keys = {c.key for c in s}
        assert all(need in keys for c in s for need in c.needs)
    # a cell is in two slices only when the other one needs it (then whichever claims it first computes it)
    owners = {k: [j for j, s in enumerate(slices) if k in {c.key for c in s}] for k in every}
    for k, js in owners.items():
        needed = [j for j in js if any(k in c.needs for c in slices[j])]
        assert len(js) - len(needed) <= 1, (k, js)


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_a_bad_shard_is_a_one_line_error(text):
    with pytest.raises(ConfigError, match="i/n"):
        parse_shard(text)
