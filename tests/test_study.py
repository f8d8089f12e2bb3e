"""`hirobust study` on a tiny config: runs end to end, resumes without recomputing finished cells, analyses with
intervals and paired differences, and rejects bad configs before any work."""

import json

import pytest
import torch
import yaml

from hirobust.app.cli import main

LEAVES = [f"item {i}" for i in range(8)]


def _config(tmp_path, **over) -> str:
    cfg = {
        "out": str(tmp_path / "study"), "device": "cpu", "baseline": "tecoa",
        "pretrain": {"model": "hirobust-tiny", "dataset": "synthetic", "epochs": 2, "batch_size": 32,
                     "warmup_steps": 2},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": "adamw", "lr": 1e-3, "ckpt_every": 2},
        "methods": {"tecoa": {"method": "tecoa", "options": {"eps": "4/255"}},
                    "hiro-tuned": {"method": "hiro", "options": {"eps": "4/255"}}},
        "tune": {"run": "hiro-tuned", "split": "val", "samples": 16,
                 "candidates": {"a": {"init_depth": 1.0}, "b": {"init_depth": 1.0, "image_levels": True}}},
        "parts": {"main": {"dataset": "synthetic", "train_classes": LEAVES[:6], "runs": ["clip", "tecoa", "hiro-tuned"],
                           "seeds": {"tecoa": 2, "hiro-tuned": 2},
                           "eval_extra_seeds": {"attacks": ["pgd"], "eps_sweep": []},
                           "autoattack_runs": ["tecoa"]}},
        "autoattack": {"samples": 16, "levels": [0]},
        "eval": {"eps": "4/255", "steps": 2, "robust_samples": 32, "batch_size": 32, "eps_sweep": ["2/255"],
                 "attacks": ["pgd", "cw"], "autoattack_iters": 3,
                 "eps_sweep_levels": [0, -1], "sweep_samples": 16},
    }
    for k, v in over.items():
        cfg[k] = v
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_study_runs_resumes_and_analyses(tmp_path):
    cfg = _config(tmp_path)
    out = tmp_path / "study"
    assert main(["--quiet", "study", "--config", cfg]) == 0
    study = json.loads((out / "study.json").read_text())
    part = study["parts"]["main"]
    assert part["runs"] == {"clip": 1, "tecoa": 2, "hiro-tuned": 2}
    rob = part["table"]["tecoa"]["robust"]["0"]
    assert rob["seeds"] == 2 and rob["interval"] == "bootstrap over 2 seeds × 32 images"
    assert rob["ci95"][0] <= rob["mean"] <= rob["ci95"][1]
    assert part["table"]["clip"]["robust"]["0"]["interval"] .startswith(("bootstrap over 32 images", "Wilson over 32"))
    assert part["table_cw"]["tecoa"]["seeds"] == 1  # CW on seed 0 only (eval_extra_seeds)
    d = part["paired"]["hiro-tuned"]["robust"]["1"]
    assert d["seeds"] == 2 and d["verdict"] in ("higher", "lower", "no measurable difference")
    assert set(part["unseen_table"]["tecoa"]) == {"seen", "unseen"}
    assert part["unseen_table"]["tecoa"]["unseen"]["n"]["robust"] > 0
    assert study["tune"]["choice"] in ("a", "b") and study["tune"]["split"] == "val"
    assert "depth_text_L0" in part["mechanism"]["hiro-tuned"]
    # AutoAttack's 16 images lie inside PGD's 32 and are paired with them image by image
    aa = part["autoattack"]["tecoa-s0"]
    v = aa["vs_pgd"]["0"]
    assert aa["n"] == 16 and v["n"] == 16 and abs(v["autoattack"] - aa["robust"]["0"]["0"]) < 1e-9
    assert abs(v["diff"] - (v["autoattack"] - v["pgd"])) < 1e-9 and v["ci95"][0] <= v["diff"] <= v["ci95"][1]
    assert {"a", "b"} <= set(study["findings"]) and study["compute_seconds"] > 0
    md = (out / "study.md").read_text()
    assert "Paired differences to `tecoa`" in md and "[" in md
    for p in study["plots"]:
        assert (out / p).stat().st_size > 0
    # resume: finished cells are not recomputed; a deleted evaluation and a half-finished fine-tune are
    done = {p: p.stat().st_mtime_ns for p in out.glob("main/evals/*.json")}
    (out / "main" / "evals" / "tecoa-s1.json").unlink()
    (out / "main" / "runs" / "hiro-tuned-s1" / "hirobust.json").unlink()
    (out / "main" / "evals" / "hiro-tuned-s1.json").unlink()
    assert main(["--quiet", "study", "--config", cfg]) == 0
    for p, t in done.items():
        if p.name not in ("tecoa-s1.json", "hiro-tuned-s1.json"):
            assert p.stat().st_mtime_ns == t, p
    (out / "study.md").unlink()
    assert main(["--quiet", "study", "--config", cfg, "--analyse-only"]) == 0 and (out / "study.md").exists()
    again = json.loads((out / "study.json").read_text())["parts"]["main"]
    assert again["table"]["tecoa"]["robust"]["0"] == part["table"]["tecoa"]["robust"]["0"]  # deterministic cells


@pytest.mark.parametrize("change,msg", [
    ({"parts": {"main": {"dataset": "synthetic", "runs": ["tecoa"], "seeds": {"tecoa": 0}}}}, "seeds"),
    ({"parts": {"main": {"dataset": "synthetic", "runs": ["tecoa"], "train_classes": ["nosuch"]}}}, "nosuch"),
    ({"parts": {"main": {"dataset": "synthetic", "runs": ["tecoa"], "train_classes": []}}}, "no class"),
    ({"parts": {"main": {"dataset": "synthetic", "runs": ["tecoa"], "tree": "nosuch"}}}, "nosuch"),
    ({"parts": {"main": {"dataset": "synthetic", "runs": ["nosuch"]}}}, "nosuch"),
    ({"parts": {}}, "no parts"),
])
def test_bad_study_configs_fail_before_any_work(tmp_path, capsys, change, msg):
    assert main(["--quiet", "study", "--config", _config(tmp_path, **change)]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "study").exists()


def test_held_out_images_never_reach_the_trainer(tmp_path, monkeypatch):
    from hirobust.app import finetune as pipeline
    from hirobust.data import get_dataset
    from hirobust.train import Trainer

    seen = {}

    def fit(self, method, data, run_dir, **kw):
        seen["classes"], seen["labels"] = list(data.classnames), data.labels.clone()
        seen["forest_leaves"] = method.model.head().sizes[0] if hasattr(method.model.head(), "sizes") else None
        raise KeyboardInterrupt  # stop before any step

    monkeypatch.setattr(Trainer, "fit", fit)
    from hirobust.app.schema import DataConfig, FinetuneConfig, ModelConfig, TrainConfig

    cfg = FinetuneConfig(out=str(tmp_path / "ft"), device="cpu", method="tecoa",
                         model=ModelConfig(name="hirobust-tiny", pretrained="random"),
                         data=DataConfig(dataset="synthetic", train_classes=["item 1", "item 6"]),
                         train=TrainConfig(batch_size=8))
    with pytest.raises(KeyboardInterrupt):
        pipeline.finetune(cfg, progress=False)
    assert seen["classes"] == ["item 1", "item 6"]
    assert set(seen["labels"].tolist()) == {0, 1} and len(seen["labels"]) == 2 * 64
    assert seen["forest_leaves"] == 2  # the held-out leaves' names are not in the fine-tuning head either
    full = get_dataset("synthetic", "train")
    kept = full.restrict_classes(["item 1", "item 6"])
    assert torch.equal(kept.images, full.images[(full.labels == 1) | (full.labels == 6)])


def test_study_rules_decide_mechanically_and_borderline_is_never_a_pass():
    from hirobust.app.study_rules import rule_verdicts

    def d(v, lo, hi, se=0.0001, lo90=None, hi90=None):
        from hirobust.stats import decide

        x = {"value": v, "ci95": [lo, hi], "ci90": [lo90 if lo90 is not None else lo + 0.001,
                                                     hi90 if hi90 is not None else hi - 0.001],
             "mc_se_ci95": [se, se], "mc_se_ci90": [se, se]}
        return {**x, **decide(x)}

    part = {"paired": {"hiro": {"robust": {"0": d(0.0, -0.011, 0.011, lo90=-0.008, hi90=0.008),
                                           "1": d(0.03, 0.01, 0.05)},
                                "tsr_matched": {"1": d(-0.02, -0.04, -0.005)}}}}
    rule = {"versions": [{"version": "v", "margin": 0.01, "findings": {"c": {"each_run": "hiro", "clauses": [
        {"stat": "paired.robust", "levels": "superclass", "test": "higher"},
        {"stat": "paired.tsr_matched", "levels": "superclass", "test": "lower"},
        {"stat": "paired.robust", "levels": "leaf", "test": "within"}]}}}]}
    assert rule_verdicts(part, rule)["v"]["c (hiro)"]["verdict"] == "reproduced"
    part["paired"]["hiro"]["robust"]["1"] = d(0.03, 0.0001, 0.05)  # the deciding bound 1 MC error from 0
    v = rule_verdicts(part, rule)["v"]["c (hiro)"]
    assert v["verdict"] == "inconclusive (borderline)" and v["clause_states"][0] == "open"
    part["paired"]["hiro"]["robust"]["0"] = d(-0.02, -0.03, -0.012, lo90=-0.028, hi90=-0.013)  # leaf outside ±1
    assert rule_verdicts(part, rule)["v"]["c (hiro)"]["verdict"] == "not reproduced"


def test_a_malformed_study_rule_is_refused_before_work():
    from hirobust.app.study_rules import check_rules
    from hirobust.errors import ConfigError

    with pytest.raises(ConfigError, match="a 'test' in higher, lower, not_lower, not_higher, within"):
        check_rules({"versions": [{"version": "v", "findings": {"c": {"clauses": [{"stat": "x", "test": "bigger"}]}}}]})


def _small(tmp_path, name):
    return _config(tmp_path, out=str(tmp_path / name), tune=None, autoattack={"samples": 16, "levels": [0]},
                   parts={"main": {"dataset": "synthetic", "train_classes": LEAVES[:6], "runs": ["clip", "tecoa"],
                                   "seeds": {"tecoa": 2}, "autoattack_runs": []}},
                   eval={"eps": "4/255", "steps": 2, "robust_samples": 32, "batch_size": 32, "eps_sweep": [],
                         "attacks": ["pgd"]})


def _computed(out) -> list[str]:
    """The cells a study's processes computed, from run.log's stage lines (one per computation)."""
    import re

    return re.findall(r"stage \d+/\d+: (\S+ \S+) \(", (out / "run.log").read_text())


def test_two_workers_share_the_study_and_never_compute_a_cell_twice(tmp_path):
    out = tmp_path / "w2"
    assert main(["--quiet", "study", "--config", _small(tmp_path, "w2"), "--workers", "2"]) == 0
    cells = _computed(out)
    assert sorted(cells) == sorted(set(cells)) and len(cells) == 4  # pretraining + clip + tecoa seeds 0 and 1
    assert "[worker 1/2]" in (out / "run.log").read_text() or "[worker 2/2]" in (out / "run.log").read_text()
    session = json.loads((out / "sessions.json").read_text())[-1]
    assert session["workers"] == 2 and session["cells_computed"] == 4 and session["wall_seconds"] > 0
    assert json.loads((out / "study.json").read_text())["parts"]["main"]["runs"] == {"clip": 1, "tecoa": 2}


def test_shards_split_the_study_and_the_last_one_completes_the_analysis(tmp_path):
    cfg, out = _small(tmp_path, "sh"), tmp_path / "sh"
    assert main(["--quiet", "study", "--config", cfg, "--shard", "2/2"]) == 0
    first = _computed(out)  # slice 2: tecoa-s0 (round robin over clip, tecoa-s0, tecoa-s1) and the pretraining
    assert sorted(first) == ["evaluate main/tecoa-s0", f"pretrain {first[0].split()[1]}"]
    assert main(["--quiet", "study", "--config", cfg, "--shard", "1/2"]) == 0
    assert sorted(_computed(out)[len(first):]) == ["evaluate main/clip", "evaluate main/tecoa-s1"]  # nothing twice
    assert json.loads((out / "study.json").read_text())["parts"]["main"]["runs"] == {"clip": 1, "tecoa": 2}
    assert [s["shard"] for s in json.loads((out / "sessions.json").read_text())] == ["2/2", "1/2"]


def test_sigterm_stops_a_study_and_its_workers_and_a_rerun_finishes_it(tmp_path):
    """A cluster's time limit (SIGTERM) on `study --workers 2`: exit 143, the workers stopped with it, the stopped
    session recorded, and the same command finishes the study without computing a finished cell again."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    cfg, out = _small(tmp_path, "term"), tmp_path / "term"
    cmd = [sys.executable, "-m", "hirobust", "--quiet", "study", "--config", cfg, "--workers", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, workers = time.time() + 240, []
    while p.poll() is None and time.time() < deadline and not any(c.startswith("evaluate") for c in (
            _computed(out) if (out / "run.log").exists() else [])):  # stopped once an evaluation cell started
        time.sleep(0.05)
    children = Path(f"/proc/{p.pid}/task/{p.pid}/children")
    workers = [int(x) for x in children.read_text().split()] if children.exists() else []
    assert len(workers) >= 2  # the two workers (and maybe multiprocessing's resource tracker)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 143, err
    assert "stopped by SIGTERM" in err.strip().splitlines()[-1]
    time.sleep(0.5)
    for pid in workers:  # none left running
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text(), f"worker {pid} still runs"
    session = json.loads((out / "sessions.json").read_text())[-1]
    assert session["finished"] is False
    before = _computed(out)
    assert main(["--quiet", "study", "--config", cfg, "--workers", "2"]) == 0
    after = _computed(out)[len(before):]
    assert [c for c in before if c.startswith("pretrain")] and not any(c.startswith("pretrain") for c in after)
    assert json.loads((out / "study.json").read_text())["parts"]["main"]["runs"] == {"clip": 1, "tecoa": 2}
