"""The command line: ``hirobust demo | pretrain | finetune | evaluate | tree | bench | compare``.

``main(argv)`` returns an exit code, so tests call it directly. Every subcommand takes ``key.sub=value``
overrides after its options (e.g. ``train.epochs=2 eval.eps=2/255``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import sys
from pathlib import Path

from ..errors import ConfigError, HirobustError
from ..methods.configs import CONFIGS
from ..typed import from_dict
from .config import apply_overrides, load_yaml
from .config import print_config as _print_config
from .help import keys_help
from .stop import sigterm_stops, terminated

METHOD_NAMES = tuple(CONFIGS)  # the method registry (torch-free): --method is checked before torch loads


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``hirobust finetune: error: ...``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hirobust", description="Hierarchically robust zero-shot CLIP: train and measure.")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)
    quiet = _Parser(add_help=False)  # --quiet before or after the subcommand
    quiet.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    quiet.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[quiet], **k)  # type: ignore[method-assign]

    d = sub.add_parser("demo", help="the embedded Fashion-MNIST benchmark, end to end")
    d.add_argument("--config", help="demo YAML (default: the packaged configs/demo.yaml)")
    d.add_argument("--out", help="run directory (default runs/demo)")
    d.add_argument("overrides", nargs="*", help="key.sub=value")

    ab = sub.add_parser("ablate", help="the paper's ablation tables on the embedded benchmark")
    ab.add_argument("--config", help="ablation YAML (default: the packaged configs/ablation.yaml)")
    ab.add_argument("--out", help="run directory (default runs/ablation)")
    ab.add_argument("overrides", nargs="*", help="key.sub=value")

    st = sub.add_parser("study", help="the evidence study (docs/evidence.md), resumable: rerun to continue")
    st.add_argument("--config", help="study YAML (default: the packaged configs/study.yaml)")
    st.add_argument("--out", help="study directory (default runs/study, runs/study-quick with --quick)")
    st.add_argument("--quick", action="store_true", help="the small smoke version (~10 min on 2 cores)")
    st.add_argument("--analyse-only", action="store_true", help="rebuild study.md/json and plots from the finished "
                                                                "cells; run nothing")
    st.add_argument("--workers", type=int, default=1, help="local worker processes sharing the cells (each with "
                                                           "its share of the CPU threads)")
    st.add_argument("--shard", help="i/n: this process takes slice i of n of the cells (a SLURM array, several "
                                    "shells or machines sharing the folder); cells are claimed, never computed twice")
    st.add_argument("overrides", nargs="*", help="key.sub=value")

    zs = sub.add_parser("zeroshot", help="held-out folds: seen / unseen / all leaves, pooled over folds (resumable)")
    zs.add_argument("--config", help="YAML (default: the packaged configs/zeroshot.yaml; `--config diagnose`: "
                                     "configs/zeroshot-diagnose.yaml, HiRo's diagnosis on val)")
    zs.add_argument("--out", help="output directory (default runs/zeroshot)")
    zs.add_argument("--analyse-only", action="store_true", help="rebuild zeroshot.md/json from the finished cells")
    zs.add_argument("overrides", nargs="*", help="key.sub=value")

    pt = sub.add_parser("pretrain", help="train (or reuse) the embedded small CLIP")
    pt.add_argument("--force", action="store_true", help="retrain even if cached")
    pt.add_argument("overrides", nargs="*")

    f = sub.add_parser("finetune", help="adversarially fine-tune one method")
    f.add_argument("--config", help="YAML with out/method/options/model/data/train sections")
    f.add_argument("--method", choices=METHOD_NAMES, help="the method (checked before anything heavy is imported)")
    f.add_argument("--out", help="run directory")
    f.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    f.add_argument("--overwrite", action="store_true", help="replace the run in --out (once the new one is complete)")
    f.add_argument("overrides", nargs="*")

    e = sub.add_parser("evaluate", help="clean and level-targeted robust accuracy, TSR, per level")
    e.add_argument("--config", help="YAML with data/eval sections")
    e.add_argument("--model", action="append", required=True, metavar="NAME=SOURCE",
                   help="SOURCE: a fine-tuned run directory, ARCH:PRETRAINED (e.g. ViT-B-32:openai, "
                        "hirobust-fmnist-vit:embedded, ARCH:/path/to/checkpoint), or an open_clip name with its "
                        "weights: hf-hub:ORG/REPO or local-dir:/path")
    e.add_argument("--out", default="runs/evaluate")
    e.add_argument("--resume", action="store_true", help="reuse the models a killed or failed run of the same "
                                                         "evaluation finished (their results are kept per model)")
    e.add_argument("--overwrite", action="store_true", help="replace the evaluation in --out (once the new one is "
                                                            "complete)")
    e.add_argument("--datasets", help="comma-separated dataset names, or 'all' (the 15 zero-shot datasets): evaluates "
                                      "each one present under data.root and lists what was skipped and why")
    e.add_argument("--shard", help="i/n with --datasets: this process evaluates datasets i, i+n, ... into the shared "
                                   "--out (a SLURM array, several GPUs or machines); the summary covers all slices")
    e.add_argument("overrides", nargs="*")

    r = sub.add_parser("reproduce", help="fine-tune and evaluate one row of the paper's table (--config paper/hiro)")
    r.add_argument("--config", required=True, help="YAML with finetune: and evaluate: sections")
    r.add_argument("--resume", action="store_true", help="continue a killed run")
    r.add_argument("--overwrite", action="store_true", help="replace the run in finetune.out")
    r.add_argument("overrides", nargs="*", help="key.sub=value, e.g. finetune.data.root=/data")

    b = sub.add_parser("bench", help="throughput of every method vs the model's bare cost (synthetic tensors)")
    b.add_argument("overrides", nargs="*", help="key=value of BenchConfig (model=ViT-B-32 batch_size=256 ...)")

    c = sub.add_parser("compare", help="one paper-style table from evaluation run directories")
    c.add_argument("runs", nargs="+", help="run directories (or report.json files) of evaluate/demo")
    c.add_argument("--out", default="runs/compare", help="where compare.md, compare.csv and compare.json go")
    c.add_argument("--baseline", help="the model every other is compared to pairwise, on the same images (default: "
                   "tecoa, else the first); models of separate reports are paired when they attacked the same images")

    t = sub.add_parser("tree", help="show shipped hierarchies")
    t.add_argument("action", choices=["show", "list"])
    t.add_argument("name", nargs="?", help="dataset name or hierarchy JSON path")
    t.add_argument("--tree", help="only this tree")
    t.add_argument("--json", action="store_true")
    return p


def _out(args) -> list[str]:
    """``--out`` as an override (an empty one is refused: it would mean the current folder)."""
    if args.out is not None and not args.out.strip():
        raise ConfigError("--out is empty; give the run a directory path (e.g. --out runs/my-run)")
    return [f"out={args.out}"] if args.out else []


def _cmd_demo(args) -> int:
    from .demo import load_demo_config, run_demo

    overrides = list(args.overrides) + _out(args)
    cfg = load_demo_config(args.config, overrides)
    if args.print_config:
        return _print_config(cfg)
    run_demo(cfg, progress=not args.quiet)
    return 0


def _cmd_ablate(args) -> int:
    from .demo import load_demo_config, run_demo

    overrides = list(args.overrides) + _out(args)
    run_demo(load_demo_config(args.config, overrides, default="ablation"), progress=not args.quiet)
    return 0


def _cmd_study(args) -> int:
    from .study import load_study_config
    from .study_run import run_study
    from .workqueue import parse_shard

    shard = parse_shard(args.shard) if args.shard else None
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give 1 or more worker processes")
    overrides = list(args.overrides) + _out(args)
    cfg = load_study_config(args.config, overrides, quick=args.quick)
    if args.print_config:
        return _print_config(cfg)
    if args.analyse_only:
        from .study_report import write_study

        write_study(cfg, Path(cfg.out))
        print(f"study: {Path(cfg.out) / 'study.md'} (analysis of the finished cells)")
        return 0
    run_study(cfg, progress=not args.quiet, workers=args.workers, shard=shard)
    print(f"study: {Path(cfg.out) / 'study.md'} and {Path(cfg.out) / 'study.json'}")
    return 0


def _cmd_zeroshot(args) -> int:
    from .zeroshot import folds, load_zeroshot_config, run_zeroshot

    overrides = list(args.overrides) + _out(args)
    packaged = {"diagnose": "zeroshot-diagnose", None: "zeroshot"}
    cfg = load_zeroshot_config(None if args.config in packaged else args.config, overrides,
                               name=packaged.get(args.config, "zeroshot"))
    if args.print_config:
        return _print_config(cfg)
    if args.analyse_only:
        from .zeroshot_report import write_zeroshot

        write_zeroshot(cfg, Path(cfg.out), folds(cfg))
    else:
        run_zeroshot(cfg, progress=not args.quiet)
    print(f"zeroshot: {Path(cfg.out) / 'zeroshot.md'} and {Path(cfg.out) / 'zeroshot.json'}")
    return 0


def _cmd_pretrain(args) -> int:
    from .schema import PretrainConfig

    cfg = from_dict(PretrainConfig, apply_overrides({}, args.overrides), "pretrain")  # checked before torch loads
    if args.print_config:
        return _print_config(cfg)
    from .pretrain import pretrain

    path, meta = pretrain(cfg, progress=not args.quiet, force=args.force)
    print(json.dumps({"checkpoint": str(path), **meta}, indent=1))
    return 0


def _cmd_finetune(args) -> int:
    from .schema import FinetuneConfig

    data = load_yaml(args.config) if args.config else {}
    if args.method:
        data["method"] = args.method
    if args.out is not None:
        _out(args)
        data["out"] = args.out
    cfg = from_dict(FinetuneConfig, apply_overrides(data, args.overrides))  # checked before torch loads
    from ..methods import method_config

    method_config(cfg.method, cfg.options)  # the method's options too (its config is torch-free)
    if args.print_config:
        return _print_config(cfg)
    from .finetune import finetune

    out = finetune(cfg, progress=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    print(f"fine-tuned {cfg.method}: {out}")
    return 0


def _cmd_bench(args) -> int:
    from ..io import write_json, write_text
    from .bench import BenchConfig, run_bench, to_markdown

    cfg = from_dict(BenchConfig, apply_overrides({}, args.overrides))
    from .outdir import claim

    with claim(cfg.out, "bench"):
        res = run_bench(cfg)
        write_json(res, Path(cfg.out) / "report.json")
        write_text(to_markdown(res), Path(cfg.out) / "report.md")
    print(f"\nreport: {Path(cfg.out) / 'report.md'} and {Path(cfg.out) / 'report.json'}")
    return 0


def _cmd_compare(args) -> int:
    from .compare import compare
    from .outdir import claim

    with claim(args.out, "compare"):
        table = compare(args.runs, args.out, baseline=args.baseline)
    print(table)
    print(f"written: {Path(args.out) / 'compare.md'} and {Path(args.out) / 'compare.csv'}")
    return 0


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce
    from .schema import ReproduceConfig

    cfg = from_dict(ReproduceConfig, apply_overrides(load_yaml(args.config), args.overrides))
    if args.print_config:
        return _print_config(cfg)
    summary = reproduce(cfg, progress=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    print(f"evaluated: {', '.join(summary['evaluated']) or 'none'}")
    for name, why in summary["skipped"].items():
        print(f"skipped {name}: {why}")
    return 0


def _cmd_tree(args) -> int:
    from ..hierarchy import available, load_forest

    if args.action == "list":
        print("\n".join(available()))
        return 0
    if not args.name:
        raise ConfigError("tree show needs a dataset name or a hierarchy JSON path (see `hirobust tree list`)")
    forest = load_forest(args.name, trees=[args.tree] if args.tree else None)
    if args.json:
        print(json.dumps(forest.to_json(), indent=1))
    else:
        print("\n\n".join(t.describe() for t in forest))
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate_cmd import evaluate_command

    return evaluate_command(args)


COMMANDS = {"demo": _cmd_demo, "study": _cmd_study, "zeroshot": _cmd_zeroshot, "ablate": _cmd_ablate,
            "pretrain": _cmd_pretrain, "finetune": _cmd_finetune, "evaluate": _cmd_evaluate, "tree": _cmd_tree,
            "compare": _cmd_compare, "bench": _cmd_bench, "reproduce": _cmd_reproduce}


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG}


def _tolerant_streams() -> None:
    """A name the terminal's encoding cannot show is escaped, not a crash (``PYTHONIOENCODING=ascii``)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and (stream.errors or "strict") == "strict":
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _tolerant_streams()
    try:
        parser = _parser()
        if "-h" in argv or "--help" in argv:  # list the subcommand's config keys under its options
            subparsers = parser._subparsers._group_actions[0].choices  # noqa: SLF001
            cmd = next((a for a in argv if a in subparsers), None)
            if cmd:
                sp = subparsers[cmd]
                sp.epilog = keys_help(cmd)
                sp.formatter_class = argparse.RawDescriptionHelpFormatter
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (2, one line) and --help (0)
        return int(e.code or 0)
    import logging

    # hirobust's log on stderr: stages, their ETA and what each does (run.log has it all too); --quiet: only errors
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    import os

    rank0 = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 talks (errors come from every rank)
    args.quiet = args.quiet or not rank0  # log lines and progress bars: rank 0's only
    console.setLevel(logging.ERROR if args.quiet else logging.INFO)
    log = logging.getLogger("hirobust")
    log.addHandler(console)
    log.propagate = False  # open_clip's root-level logging.info() installs a root handler: no second copy
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        if rank0:
            return _run_command(args)
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # one summary, rank 0's
            return _run_command(args)
    finally:
        log.removeHandler(console)
        log.propagate = True


def _run_command(args) -> int:
    if args.command not in ("tree", "compare"):  # a job: its provenance names the code it starts with
        from .env import code_state

        code_state()
    try:
        with sigterm_stops():
            return _dispatch(args)
    except BaseException:  # SIGTERM (a time limit, preemption): cleaned up as for Ctrl-C (app/stop.py), one line
        if not terminated():  # whatever the signal caused on its way (a killed loader worker) is not a bug
            raise
        return _stopped(args, "stopped by SIGTERM (a time limit, preemption or kill); finished work is kept", 143)


def _stopped(args, what: str, code: int) -> int:
    again = "; resume with --resume" if hasattr(args, "resume") else ""
    print(f"\nhirobust {args.command}: {what}{again}", file=sys.stderr)
    return code


def _dispatch(args) -> int:
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so that a reader that left early (`| head`) is caught below
        return code
    except KeyboardInterrupt:  # Ctrl-C: finished work is kept (checkpoints, cells), the lock released
        if terminated():  # SIGTERM: said by _run_command
            raise
        return _stopped(args, "interrupted", 130)
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except HirobustError as e:  # the user's input or setup (hirobust.errors); anything else is a bug: its traceback
        print(f"hirobust {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine refused a write (full disk, quota, read-only, permissions): the user's setup
        if e.errno not in _WRITE_ERRNOS:
            raise
        where = f" writing {e.filename!r}" if e.filename else ""
        again = "run it again with --resume" if hasattr(args, "resume") else "run it again"
        print(f"hirobust {args.command}: error: {e.strerror}{where}; finished work is kept: free space or fix the "
              f"permissions, then {again}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
