"""Probe the command line with bad input, as a new user (and an unlucky one) would, and count how each case ends:
bad values, reused and foreign --out folders, resume after changed inputs, damaged run files, extreme numbers,
the environment, a signal, a closed pipe, an output encoding.

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


def _copy(run: Path, dest: Path, edit=None) -> Path:
    shutil.copytree(run, dest)
    if edit:
        edit(dest)
    return dest


def _meta(key: str, value):
    def edit(d: Path):
        meta = json.loads((d / "hirobust.json").read_text())
        meta["head"][key] = value
        (d / "hirobust.json").write_text(json.dumps(meta))
    return edit


def _state(step: int):
    def edit(d: Path):
        f = d / "checkpoint" / "state.json"
        state = json.loads(f.read_text())
        state["step"] = step
        f.write_text(json.dumps(state))
    return edit


def run_dir_cases(tmp: Path, run: Path) -> list[tuple[str, list[str], str]]:
    """Issue 21's kinds: foreign and reused --out folders, resume after changed inputs, damaged run files, extreme
    values, the environment. Each case prepares its own state (copies of ``run``) and expects a one-line refusal."""
    ev = lambda src, out, *o: ["--quiet", "evaluate", "--model", f"x={src}", "--out", str(out), *EV, *o]  # noqa: E731
    ft = lambda out, *o, m="tecoa": ["--quiet", "finetune", "--method", m, "--out", str(out), *TINY, *o]  # noqa: E731
    k = tmp / "k"
    k.mkdir()
    out = []
    mine = k / "mine"
    (mine / "checkpoint").mkdir(parents=True)
    (mine / "checkpoint" / "my_experiment.txt").write_text("precious")
    out.append(("finetune into a folder of the user's files", ft(mine), "not a hirobust run"))
    out.append(("evaluate --out <a fine-tune run>", ev(run, _copy(run, k / "ft1")), "holds a hirobust finetune"))
    evald = k / "ev1"
    from hirobust.app.cli import main as cli

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert cli(ev(run, evald)) == 0
    out.append(("finetune --out <an evaluation>", ft(evald), "holds a hirobust evaluate"))
    out.append(("finetune into its own run without --resume", ft(_copy(run, k / "ft2")), "--overwrite"))
    out.append(("evaluate into its own run without --resume", ev(run, evald), "--overwrite"))
    out.append(("finetune --out ''", ["--quiet", "finetune", "--method", "tecoa", "--out", "", *TINY], "is empty"))
    out.append(("evaluate --model x=A --model x=B", ["--quiet", "evaluate", "--model", f"x={run}", "--model",
                                                    "x=hirobust-tiny:", "--out", str(k / "ev2"), *EV], "twice"))
    out.append(("evaluate a file named clip_benchmark in --out", ev(run, _copy(evald, k / "ev3", lambda d: (
        shutil.rmtree(d / "clip_benchmark"), (d / "clip_benchmark").write_text("x"))), "--resume"), "clip_benchmark"))
    bumped = lambda d: (d / "model" / "open_clip_model.safetensors").write_bytes(  # noqa: E731
        (d / "model" / "open_clip_model.safetensors").read_bytes()[:-1] + b"\x01")
    src = _copy(run, k / "src1")
    ev4 = k / "ev4"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert cli(ev(src, ev4)) == 0
    st = (src / "model" / "open_clip_model.safetensors").stat()
    bumped(src)
    os.utime(src / "model" / "open_clip_model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))
    out.append(("evaluate --resume after other weights with the same size and mtime", ev(src, ev4, "--resume"),
                "weights changed"))
    for key, value, frag in [("logit_scale", 1e30, "logit_scale"), ("logit_scale", "NaN", "logit_scale"),
                             ("clip_r", -3, "clip_r"), ("clip_r", "abc", "clip_r")]:
        d = _copy(run, k / f"head{len(out)}", _meta(key, value))
        out.append((f"evaluate a run whose head {key}={value!r}", ev(d, k / f"e{len(out)}"), frag))
    d = _copy(run, k / "foreignhead", lambda d: (d / "model" / "hirobust_head.safetensors").write_bytes(b"x"))
    out.append(("evaluate a run holding another run's head file", ev(d, k / "e-fh"), "not written by this run"))
    d = _copy(run, k / "editedw", bumped)
    out.append(("evaluate a run whose weights were swapped", ev(d, k / "e-ew"), "not the file this run wrote"))
    d = _copy(run, k / "lockdir", lambda d: ((d / ".hirobust.lock").unlink(), (d / ".hirobust.lock").mkdir()))
    out.append(("finetune --resume where the lock is a directory", ft(d, "--resume"), ".hirobust.lock"))
    out.append(("evaluate eval.norm=l3", ev(run, k / "e-new", "eval.norm=l3"), "eval.norm"))
    import torch

    from hirobust.io import load_safetensors, save_safetensors

    extra = k / "extra.safetensors"
    save_safetensors({**load_safetensors(run / "model" / "open_clip_model.safetensors"), "extra.weight":
                      torch.zeros(3)}, extra)
    out.append(("evaluate a checkpoint with an extra tensor", ["--quiet", "evaluate", "--model",
                f"x=hirobust-tiny:{extra}", "--out", str(k / "e-new"), *EV], "'extra.weight'"))
    d = _copy(run, k / "nometa", lambda d: ((d / "hirobust.json").unlink(), (d / "hirobust.json").mkdir()))
    out.append(("evaluate a run whose hirobust.json is a directory", ev(d, k / "e-nometa"), "directory"))
    d = _copy(run, k / "noweights", lambda d: (d / "model" / "open_clip_model.safetensors").unlink())
    out.append(("evaluate a run whose weights were deleted", ev(d, k / "e-noweights"), "missing"))
    for step, frag in [(10**6, "step"), (-5, "step")]:
        d = _copy(run, k / f"state{step}", _state(step))
        out.append((f"finetune --resume, checkpoint step {step}", ft(d, "--resume"), frag))
    d = _copy(run, k / "opt", lambda d: (d / "checkpoint" / "optimizer.safetensors").write_bytes(b"garbage"))
    out.append(("finetune --resume, damaged optimiser state", ft(d, "--resume"), "optimizer.safetensors"))
    out.append(("finetune --resume with another method", ft(_copy(run, k / "other"), "--resume", m="pmg"),
                "another run"))
    d = _copy(evald, k / "ev5", lambda d: (d / ".cells" / "x.json").write_text("{broken"))
    out.append(("evaluate --resume, damaged cell", ev(run, d, "--resume"), "x.json"))
    for o, frag in [("options.logit_scale=-100", "logit_scale"), ("options.level=7", "level"),
                    ("train.lr=1e308", "train.lr"), ("train.betas=[2,2]", "betas"), (f"train.seed={2**70}", "seed"),
                    ("options.eps=1/0", "divides by zero"), ("data.train_classes=[item 0]", "two classes")]:
        out.append((f"finetune {o}", ft(k / "r-new", o), frag))
    out.append(("finetune pmg options.w_clean=-5", ft(k / "r-new", "options.w_clean=-5", m="pmg"), "w_clean"))
    out.append(("finetune fare options.momentum=-3", ft(k / "r-new", "options.momentum=-3", m="fare"), "momentum"))
    for o, frag in [("eval.eps_sweep_levels=[7]", "eps_sweep_levels"), ("eval.autoattack_levels=[9]",
                    "autoattack_levels"), ("eval.attack_levels=[]", "attack_levels"), ("eval.attack_levels=[7]",
                                                                                      "attack_levels")]:
        out.append((f"evaluate {o}", ev(run, k / "e-new", o), frag))
    dup = k / "dup.yaml"
    dup.write_text("train:\n  epochs: 1\ntrain:\n  epochs: 2\n")
    out.append(("finetune --config with train: twice", ["--quiet", "finetune", "--config", str(dup), "--method",
                                                        "tecoa", "--out", str(k / "r-new"), *TINY], "twice"))
    tpl = k / "tree-tpl"
    for body, frag in [("{broken", "not valid JSON"), ("[1]", "not an evaluation report"),
                       ('{"models": {"m": {"clean": "x"}}}', "not an evaluation report")]:
        (tpl / str(len(out))).mkdir(parents=True)
        (tpl / str(len(out)) / "report.json").write_text(body)
        out.append((f"compare a damaged report {body[:20]!r}", ["compare", str(tpl / str(len(out))), "--out",
                                                                 str(k / "cmp")], frag))
    return out


def process_cases(tmp: Path, run: Path) -> list[tuple[str, str, dict, str]]:
    """Cases that need their own process: a signal, a closed pipe, an output encoding; (name, shell command, extra
    environment, expected fragment of stderr or "" for an empty stderr)."""
    py = sys.executable
    uni = tmp / "k" / "unicode.json"
    uni.write_text(json.dumps({"paths": {"café": ["boisson chaude"], "thé": ["boisson chaude"]}}))
    return [
        ("Ctrl-C during finetune", f"set -m; {py} -m hirobust --quiet finetune --method tecoa --out "
         f"{tmp / 'k' / 'sig'} {' '.join(TINY)} train.epochs=2000 & p=$!; sleep 10; kill -INT $p; wait $p", {},
         "interrupted"),
        ("SIGTERM during finetune (a time limit)", f"{py} -m hirobust --quiet finetune --method tecoa --out "
         f"{tmp / 'k' / 'term'} {' '.join(TINY)} train.epochs=2000 & p=$!; sleep 10; kill -TERM $p; wait $p", {},
         "stopped by SIGTERM"),
        ("tree show | head -1", f"{py} -m hirobust tree show fashion-mnist | head -1", {}, ""),
        ("tree show with unicode names, PYTHONIOENCODING=ascii", f"{py} -m hirobust tree show {uni}",
         {"PYTHONIOENCODING": "ascii"}, ""),
        ("HIROBUST_CACHE is a file", f"{py} -m hirobust --quiet evaluate --model x=hirobust-fmnist-vit:embedded "
         f"--out {tmp / 'k' / 'cachefile'} data.dataset=synthetic", {"HIROBUST_CACHE": str(tmp / "bad" / "file")},
         "is a file"),
    ]


def _run_process(cmd: str, env: dict) -> tuple[int, str]:
    import subprocess

    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
    return p.returncode, p.stderr


def main() -> int:
    from hirobust.app.cli import main as cli

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        os.environ["HIROBUST_CACHE"] = str(tmp / "cache")
        run = tmp / "run"
        with contextlib.redirect_stderr(io.StringIO()):
            assert cli(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY]) == 0
        counts = {"clean": 0, "vague": 0, "traceback": 0, "silent": 0}
        for name, argv, frag in cases(tmp, run) + run_dir_cases(tmp, run):
            for d in ("r", "e", "c", "s", "k/r-new", "k/e-new", "k/cmp"):
                shutil.rmtree(tmp / d, ignore_errors=True)
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    rc = cli(argv)
            except BaseException as e:  # noqa: BLE001 - a traceback is what we count
                kind, detail = "traceback", f"{type(e).__name__}: {e}"
            else:
                lines = err.getvalue().strip().splitlines()
                left = [d for d in ("r", "e", "s", "k/r-new", "k/e-new") if (tmp / d / "report.json").exists() or
                        (tmp / d / "hirobust.json").exists()]
                if rc == 0:
                    kind, detail = "silent", "exit 0"
                elif rc == 2 and lines and frag in lines[-1] and not left:
                    kind, detail = "clean", lines[-1]
                else:
                    kind, detail = "vague", f"exit {rc}: {lines[-1] if lines else ''}"
            counts[kind] += 1
            print(f"{kind:9s} {name}: {detail[:150]}")
        for name, cmd, env, frag in process_cases(tmp, run):
            rc, err = _run_process(cmd, env)
            lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith(  # bash's job line,
                ("[1]", "WARNING:root:No pretrained weights"))]  # open_clip's word on the probe's random model
            if "Traceback" in err or "Error:" in err and not err.startswith("hirobust"):
                kind, detail = "traceback", lines[-1] if lines else ""
            elif frag == "":
                kind, detail = ("clean", f"exit {rc}, quiet") if not lines else ("vague", lines[-1])
            elif rc == 0:
                kind, detail = "silent", "exit 0"
            elif frag in err and len(lines) == 1:
                kind, detail = "clean", f"exit {rc}: {lines[-1]}"
            else:
                kind, detail = "vague", f"exit {rc}: {lines[-1] if lines else ''}"
            counts[kind] += 1
            print(f"{kind:9s} {name}: {detail[:150]}")
        print(f"\n{sum(counts.values())} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
