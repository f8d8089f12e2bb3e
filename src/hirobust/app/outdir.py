"""Run directories that protect the user's files: a command writes only into a new folder, an empty one, or one of
its own kind that hirobust made (the marker file ``.hirobust-run`` says which kind).

- ``finetune`` and ``evaluate`` (and ``reproduce``) refuse an existing run of their kind unless told ``resume``
  (continue it) or ``overwrite`` (replace it: the new run is written into a hidden folder beside it, which replaces
  the old one in two renames once complete; a failure or a kill leaves the old run whole);
- ``demo``, ``ablate``, ``study``, ``zeroshot``, ``compare`` and ``bench`` are campaigns: rerunning one into its own
  folder continues or redoes it;
- a folder of another kind, a folder with files hirobust did not write, a file, or ``''`` is refused (exit 2),
  before any work.

Folders made before the marker existed are recognised by what hirobust writes into them (:func:`legacy_kind`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError
from ..io import RunLock, write_json

MARKER = ".hirobust-run"
REPLACEABLE = ("finetune", "evaluate", "reproduce")  # an existing run needs --resume or --overwrite
CAMPAIGNS = ("demo", "ablate", "study", "zeroshot", "compare", "bench")
_COMMON = {MARKER, ".hirobust.lock", "run.log"}
# what hirobust writes at the top of a run of each replaceable kind (name -> is a folder); plots are *.png
_WRITES = {
    "finetune": {"model": True, "checkpoint": True, "checkpoint.tmp": True, "checkpoint.old": True, "eval": True,
                 "hirobust.json": False, "report.json": False, "report.md": False, "train.csv": False, "tb": True,
                 "loss.png": False, "val.csv": False},
    "evaluate": {".cells": True, ".claims": True, "clip_benchmark": True, "report.json": False, "report.md": False,
                 "datasets.json": False, "compare.md": False, "compare.csv": False, "compare.json": False},
}
_WRITES["reproduce"] = _WRITES["finetune"]


def read_marker(path: Path) -> str | None:
    """The kind recorded in ``path``'s marker (None: no marker)."""
    f = Path(path) / MARKER
    if not f.exists():
        return None
    try:
        kind = json.loads(f.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind not in (*REPLACEABLE, *CAMPAIGNS):
        raise ConfigError(f"{str(f)!r} is damaged (no known run kind in it); if {str(path)!r} is a hirobust run, "
                         f"write {{\"kind\": \"<command>\"}} into it, else choose another --out")
    return kind


def _json_has(f: Path, *keys: str) -> bool:
    try:
        obj = json.loads(f.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and all(k in obj for k in keys)


def legacy_kind(path: Path) -> str | None:
    """The kind of a run directory hirobust wrote before markers existed, from what its files hold (None: not
    one; a user's ``report.json`` does not make a folder hirobust's)."""
    p = Path(path)
    if _json_has(p / "hirobust.json", "kind", "weights") or _json_has(p / "checkpoint" / "state.json", "identity"):
        return "finetune"
    if _json_has(p / "datasets.json", "evaluated", "skipped") or _json_has(p / "report.json", "eval_config", "models"):
        return "demo" if _json_has(p / "config.json", "pretrain", "methods") else "evaluate"
    for name, kind, keys in (("study.json", "study", ("parts",)), ("zeroshot.json", "zeroshot", ("folds",)),
                             ("compare.json", "compare", ())):
        if (p / name).is_file() and _json_has(p / "config.json" if kind != "compare" else p / name, *keys):
            return kind
    if (p / ".cells").is_dir() and any((p / ".cells").glob("*.json")):
        return "evaluate"
    return None


def _same(kind: str, other: str) -> bool:
    return kind == other or {kind, other} <= {"demo", "ablate"} or {kind, other} <= {"finetune", "reproduce"}


def foreign_entries(path: Path, kind: str) -> list[str]:
    """Top-level entries of run ``path`` that hirobust does not write for ``kind`` (for a campaign: none checked)."""
    writes = _WRITES.get(kind)
    if writes is None:
        return []
    out = []
    for e in sorted(Path(path).iterdir()):
        if e.name in _COMMON or e.name.startswith((".report-", ".cb-")):
            continue
        if e.name in writes:
            if writes[e.name] != e.is_dir():
                out.append(e.name)
        elif e.suffix == ".png" and e.is_file():
            continue
        elif kind == "evaluate" and e.is_dir() and (e / "report.json").is_file():  # --datasets: one per dataset
            continue
        else:
            out.append(e.name)
    return out


def _siblings(out: Path, tag: str) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.hirobust-{tag}-*"))


def _recover(out: Path) -> None:
    """Finish or undo an ``--overwrite`` swap a kill interrupted: with ``out`` missing, the old run comes back;
    staged folders of dead processes are removed."""
    if not out.exists():
        old = _siblings(out, "old")
        if old:
            old[-1].rename(out)
    for d in _siblings(out, "old") + _siblings(out, "new"):
        pid = d.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_out(out: str | Path, kind: str, *, resume: bool = False, overwrite: bool = False) -> str:
    """:func:`_check_out`, with a path the system cannot use (too long, no permission) as a one-line error."""
    try:
        return _check_out(out, kind, resume=resume, overwrite=overwrite)
    except OSError as e:
        raise ConfigError(f"cannot write into output directory {str(out)!r} ({e.strerror}); choose another "
                         f"--out") from None


def _check_out(out: str | Path, kind: str, *, resume: bool = False, overwrite: bool = False) -> str:
    """Decide, before any work, what writing a ``kind`` run into ``out`` means: ``"new"`` (absent or empty),
    ``"continue"`` (its own run: resume, or a campaign rerun), ``"overwrite"``; anything else raises
    :class:`ConfigError` naming the folder and what to do."""
    if str(out).strip() == "":
        raise ConfigError("--out is empty; give the run a directory path (e.g. --out runs/my-run)")
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {str(out)!r} is a file, not a directory; give --out a directory path")
    if out.is_dir():
        _recover(out)
    if not out.exists() or all(e.name in _COMMON for e in out.iterdir()):  # nothing but a start that failed
        if resume:
            raise ConfigError(f"--resume: {str(out)!r} holds no {kind} run to continue; run without --resume")
        return "new"
    found = read_marker(out) or legacy_kind(out)
    if found is None:
        raise ConfigError(f"{str(out)!r} is not empty and is not a hirobust run; hirobust writes only into a new or "
                         f"empty folder or one of its own runs: choose another --out")
    if not _same(kind, found):
        raise ConfigError(f"{str(out)!r} holds a hirobust {found} run; a {kind} never writes into another command's "
                         f"folder: choose another --out")
    alien = foreign_entries(out, kind)
    if alien:
        raise ConfigError(f"{str(out)!r} holds {alien[0]!r}, which hirobust does not write into a {kind} run; move "
                         f"it out of the folder or choose another --out")
    if kind in CAMPAIGNS or resume:
        return "continue"
    if overwrite:
        return "overwrite"
    raise ConfigError(f"{str(out)!r} holds a {kind} run already; pass --resume to continue it, --overwrite to "
                     f"replace it, or choose another --out")


@contextlib.contextmanager
def claim(out: str | Path, kind: str, *, resume: bool = False, overwrite: bool = False,
          main: bool = True, shared: bool = False) -> Iterator[Path]:
    """Hold run directory ``out`` for a ``kind`` run (:func:`check_out`, then its lock) and yield the folder to
    write into: ``out`` itself, or, to overwrite, a hidden folder beside it that replaces ``out`` when the block
    ends without an error (an error or a kill leaves the old run as it was). ``main=False`` (a non-zero rank):
    nothing is checked, locked or swapped. ``shared``: the lock is shared with other shared holders (the slices
    of a campaign working together), never with an exclusive one."""
    out = Path(out)
    if not main:
        yield out
        return
    mode = check_out(out, kind, resume=resume, overwrite=overwrite)
    created = not out.exists()
    with RunLock(out, shared=shared and mode != "overwrite"):
        if mode != "overwrite":
            marked = mode == "new" or read_marker(out) is None  # a new run (even over a failed start's leftovers)
            if marked:
                write_json({"kind": kind}, out / MARKER)
            try:
                yield out
            except BaseException:  # a start that failed before writing anything leaves no folder behind
                if mode == "new" and all(e.name in _COMMON for e in out.iterdir()):
                    if created:
                        shutil.rmtree(out, ignore_errors=True)
                    elif marked:
                        (out / MARKER).unlink(missing_ok=True)
                raise
            return
        stage = out.parent / f".{out.name}.hirobust-new-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        try:
            write_json({"kind": kind}, stage / MARKER)
            with RunLock(stage):
                yield stage
            (stage / ".hirobust.lock").unlink(missing_ok=True)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        old = out.parent / f".{out.name}.hirobust-old-{os.getpid()}"
        out.rename(old)
        stage.rename(out)
        shutil.rmtree(old, ignore_errors=True)
