"""Probe the command line with bad input, as a new user would, and count how each case ends.

    python benchmarks/fault_probe.py            # prints one line per case and the counts

A case is *clean* when it exits 2 with one line on stderr that contains the expected fragment (the key, value or
file it is about), and leaves no report or run behind; *vague* when it exits 2 without that fragment; a
*traceback* when an exception escapes; *silent* when it exits 0. Tiny models and synthetic data: about a minute.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = ["model.name=hirobust-tiny", "model.pretrained=random", "data.dataset=synthetic", "train.epochs=1",
        "train.batch_size=32", "options.eps=4/255"]
EV = ["data.dataset=synthetic", "eval.steps=1", "eval.robust_samples=16"]


def cases(tmp: Path, run: Path) -> list[tuple[str, list[str], str]]:
    """(name, argv, expected fragment of the one-line error)."""
    ft = lambda *o: ["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp / "r"), *TINY, *o]  # noqa: E731
    ev = lambda *o, model=f"x={run}": ["--quiet", "evaluate", "--model", model, "--out", str(tmp / "e"), *EV, *o]  # noqa: E731
    out = []
    for key, val in [("train.lr", "nan"), ("train.lr", "1e999"), ("train.lr", "-1"), ("train.lr", "abc"),
                     ("train.epochs", "0"), ("train.epochs", "inf"), ("train.epochs", "abc"), ("train.epochs", "[1"),
                     ("train.batch_size", "0"), ("train.batch_size", "1.5"), ("train.train_samples", "-1"),
                     ("train.max_steps", "0"), ("train.log_every", "0"), ("train.ckpt_every", "-1"),
                     ("train.momentum", "2"), ("train.weight_decay", "-1"), ("train.warmup_steps", "-3"),
                     ("train.grad_clip", "0"), ("train.optimizer", "lion"), ("train.amp", "fp8"),
                     ("options.eps", "-1"), ("options.eps", "nan"), ("options.alpha", "-1"), ("options.alpha", "nan"),
                     ("options.steps", "-2"), ("options.steps", "1.5"), ("options.epsilon", "1")]:
        out.append((f"finetune {key}={val}", ft(f"{key}={val}"), key.split(".")[-1] if key != "options.epsilon"
                    else "epsilon"))
    hiro = lambda o: ["--quiet", "finetune", "--method", "hiro", "--out", str(tmp / "r"), *TINY, o]  # noqa: E731
    for o, frag in [("options.clip_r=0", "clip_r"), ("options.tau=0", "tau"), ("options.init_depth=-1", "init_depth"),
                    ("options.curvature=0", "curvature"), ("options.text_eps=nan", "text_eps"),
                    ("options.hnsa=sideways", "hnsa"), ("options.lr_scale_head=0", "lr_scale_head"),
                    ("options.text_eps_mode=x", "text_eps_mode")]:
        out.append((f"finetune hiro {o}", hiro(o), frag))
    for o, frag in [("eval.alpha=-1", "alpha"), ("eval.alpha=nan", "alpha"), ("eval.robust_samples=-5", "robust"),
                    ("eval.robust_samples=0", "robust"), ("eval.batch_size=-1", "batch_size"),
                    ("eval.batch_size=0", "batch_size"), ("eval.steps=-1", "steps"), ("eval.eps=-1", "eps"),
                    ("eval.attacks=[]", "eval.attacks"), ("eval.attacks=pgd,fgsm", "fgsm"),
                    ("eval.attacks=[pgd,fgsm]", "fgsm"), ("eval.amp=fp8", "amp"),
                    ("eval.eps_sweep=[nan]", "eps_sweep"), ("eval.autoattack_version=plus", "autoattack_version"),
                    ("eval.sweep_samples=0", "sweep_samples"), ("data.dataset=nope", "nope"),
                    ("data.tree=nosuch", "nosuch"), ("data.eval_split=nosuch", "nosuch"), ("trian.x=1", "trian")]:
        out.append((f"evaluate {o}", ev(o), frag))
    bad = tmp / "bad"
    bad.mkdir()
    (bad / "x.pt").write_bytes(pickle.dumps({"a": 1}))
    (bad / "garbage.safetensors").write_bytes(b"garbage")
    (bad / "list.json").write_text("[1, 2]")
    (bad / "levels.json").write_text('{"num_levels": "3", "paths": {"item 0": ["g"]}}')
    (bad / "paths.json").write_text('{"paths": ["item 0"]}')
    (bad / "dup.json").write_text('{"paths": {"item 0": ["g"], "item 0": ["h"]}}')
    (bad / "null.json").write_text('{"paths": {"item 0": [null]}}')
    (bad / "cycle.json").write_text('{"paths": {"x": ["A", "B"], "y": ["B", "A"]}}')
    (bad / "broken.json").write_text("{not json")
    (bad / "file").write_text("x")
    for name, frag in [("list.json", "JSON object"), ("levels.json", "num_levels"), ("paths.json", "paths"),
                       ("dup.json", "duplicate"), ("null.json", "node names"), ("cycle.json", "cycle"),
                       ("broken.json", "not a valid JSON")]:
        out.append((f"tree show {name}", ["tree", "show", str(bad / name)], frag))
        out.append((f"finetune data.hierarchy={name}", ft(f"data.hierarchy={bad / name}"), frag))
    out.append(("tree show <directory>", ["tree", "show", str(bad)], "directory"))
    out.append(("evaluate pickle checkpoint", ev(model=f"x=hirobust-tiny:{bad / 'x.pt'}"), "cannot be read"))
    out.append(("evaluate garbage safetensors", ev(model=f"x=hirobust-tiny:{bad / 'garbage.safetensors'}"),
                "cannot be read"))
    out.append(("evaluate missing checkpoint", ev(model="x=hirobust-tiny:/no/such.safetensors"), "does not exist"))
    out.append(("evaluate unknown arch", ev(model="x=nosuch:"), "nosuch"))
    out.append(("evaluate not a run dir", ev(model=f"x={bad}"), "run directory"))
    out.append(("evaluate --out is a file", ["--quiet", "evaluate", "--model", f"x={run}", "--out",
                                             str(bad / "file"), *EV], "is a file"))
    out.append(("finetune --out is a file", ["--quiet", "finetune", "--method", "tecoa", "--out", str(bad / "file"),
                                             *TINY], "is a file"))
    out.append(("evaluate --out too long", ["--quiet", "evaluate", "--model", f"x={run}", "--out",
                                            str(tmp / ("x" * 300)), *EV], "cannot write"))
    out.append(("finetune --method nosuch", ["finetune", "--method", "nosuch"], "nosuch"))
    out.append(("finetune train=5", ft("train=5"), "train"))
    out.append(("finetune train_classes=[nosuch]", ft("data.train_classes=[nosuch]"), "nosuch"))
    out.append(("finetune train_classes=[]", ft("data.train_classes=[]"), "no class"))
    out.append(("finetune no pretrained weights", ["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp / "r"),
                                                   "model.name=hirobust-tiny", "data.dataset=synthetic"], "random"))
    out.append(("evaluate --datasets carz", ["--quiet", "evaluate", "--model", f"x={run}", "--datasets", "carz",
                                            "--out", str(tmp / "e")], "carz"))
    out.append(("compare no report", ["compare", str(bad), "--out", str(tmp / "c")], "report"))
    out.append(("pretrain epochs=abc", ["--quiet", "pretrain", "epochs=abc"], "epochs"))
    out.append(("study seeds 0", ["--quiet", "study", "--out", str(tmp / "s"), "parts.season.seeds.tecoa=0"], "seeds"))
    for mutate, frag in [(lambda m: [1], "JSON object"), (lambda m: {**m, "weights": "../../x.safetensors"}, "outside"),
                         (lambda m: {k: v for k, v in m.items() if k != "weights"}, "weights"),
                         (lambda m: {**m, "head": {**m["head"], "logit_scale": "NaN"}}, "logit_scale")]:
        d = tmp / f"run{len(out)}"
        shutil.copytree(run, d)
        meta = json.loads((d / "hirobust.json").read_text())
        (d / "hirobust.json").write_text(json.dumps(mutate(meta)))
        out.append((f"evaluate damaged hirobust.json ({frag})", ev(model=f"x={d}"), frag))
    return out


def main() -> int:
    from hirobust.app.cli import main as cli

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        os.environ["HIROBUST_CACHE"] = str(tmp / "cache")
        run = tmp / "run"
        with contextlib.redirect_stderr(io.StringIO()):
            assert cli(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY]) == 0
        counts = {"clean": 0, "vague": 0, "traceback": 0, "silent": 0}
        for name, argv, frag in cases(tmp, run):
            for d in ("r", "e", "c", "s"):
                shutil.rmtree(tmp / d, ignore_errors=True)
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    rc = cli(argv)
            except BaseException as e:  # noqa: BLE001 - a traceback is what we count
                kind, detail = "traceback", f"{type(e).__name__}: {e}"
            else:
                lines = err.getvalue().strip().splitlines()
                left = [d for d in ("r", "e", "s") if (tmp / d / "report.json").exists() or
                        (tmp / d / "hirobust.json").exists()]
                if rc == 0:
                    kind, detail = "silent", "exit 0"
                elif rc == 2 and lines and frag in lines[-1] and not left:
                    kind, detail = "clean", lines[-1]
                else:
                    kind, detail = "vague", f"exit {rc}: {lines[-1] if lines else ''}"
            counts[kind] += 1
            print(f"{kind:9s} {name}: {detail[:150]}")
        print(f"\n{sum(counts.values())} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
