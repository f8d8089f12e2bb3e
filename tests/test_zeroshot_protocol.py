"""`hirobust zeroshot` on a tiny config: folds, seen / unseen / all pooled over folds, readouts, resume."""

import json

import yaml

from hirobust.app.cli import main


def _config(tmp_path, **over) -> str:
    cfg = {
        "out": str(tmp_path / "zs"), "device": "cpu", "dataset": "synthetic", "tree": "synthetic", "split": "val",
        "folds": {"k": 2, "seed": 0}, "seeds": 2, "baseline": "tecoa", "also_compare_to": ["hiro"],
        "pretrained": "random",
        "pretrain": {"model": "hirobust-tiny", "dataset": "synthetic"},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": "adamw", "lr": 1e-3, "ckpt_every": 2},
        "methods": {"tecoa": {"method": "tecoa", "options": {"eps": "4/255"}},
                    "hiro": {"method": "hiro", "options": {"eps": "4/255", "center": True}},
                    "hiro-marginal": {"method": "hiro", "options": {"eps": "4/255", "superclass_readout": "marginal"}}},
        "readouts": ["pretrained_wt", "angle", "marginal"], "readout_runs": ["hiro"],
        "eval": {"eps": "4/255", "steps": 2, "robust_samples": 48, "batch_size": 64, "attacks": ["pgd"],
                 "eps_sweep": [], "check_more_steps": False},
    }
    cfg.update(over)
    path = tmp_path / "zs.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_zeroshot_runs_pools_over_folds_and_resumes(tmp_path):
    cfg = _config(tmp_path)
    out = tmp_path / "zs"
    assert main(["--quiet", "zeroshot", "--config", cfg]) == 0
    res = json.loads((out / "zeroshot.json").read_text())
    held = res["held_out"]
    assert len(held) == 2 and sorted(sum(held, [])) == [f"item {i}" for i in range(8)]
    assert res["folds_done"] == [0, 1]
    for fold, leaves in enumerate(held):  # every fine-tune saw only its fold's seen leaves
        meta = json.loads((out / f"fold{fold}" / "runs" / "hiro-s1" / "hirobust.json").read_text())
        assert not set(meta["config"]["data"]["train_classes"]) & set(leaves)
    acc = res["accuracy"]["tecoa"]
    for g in ("seen", "unseen", "all"):
        a = acc[g]["robust"]["0"]
        assert a["folds"] == 2 and a["seeds"] == [2, 2] and a["ci95"][0] <= a["value"] <= a["ci95"][1]
        assert len(a["per_fold"]) == 2
    d = res["vs_baseline"]["hiro − tecoa"]["unseen"]["clean"]["1"]
    assert d["non_inferiority"].split(" ")[0] in ("non-inferior", "inferior", "inconclusive")
    assert d["ci90"][0] >= d["ci95"][0] and d["ci90"][1] <= d["ci95"][1]
    assert "hiro-marginal − hiro" in res["vs_others"] and "hiro − tecoa" in res["goal"]
    assert set(res["readouts"]) == {"hiro@pretrained_wt − hiro", "hiro@angle − hiro", "hiro@marginal − hiro"}
    # the marginal readout leaves the leaf level exactly as trained
    assert res["readouts"]["hiro@marginal − hiro"]["all"]["clean"]["0"]["value"] == 0
    assert set(res["movement"]["hiro"]["0"]) == {"seen", "unseen"}
    sel = res["selection"]  # the choice rule, computed: the highest mean unseen accuracy among eligible runs
    assert set(sel["runs"]) == {"hiro", "hiro-marginal"} and "tecoa" not in sel["runs"]
    u = res["accuracy"]["hiro"]["unseen"]
    assert abs(sel["runs"]["hiro"]["mean_unseen"] - sum(u[k][b]["value"] for k in ("clean", "robust")
                                                        for b in ("0", "1", "2")) / 6) < 1e-12
    eligible = {r: v["mean_unseen"] for r, v in sel["runs"].items() if v["seen_superclass_gain"]}
    assert sel["chosen"] == (max(eligible, key=eligible.get) if eligible else None)
    md = (out / "zeroshot.md").read_text()
    assert "| tecoa | unseen |" in md and "## Per fold (unseen leaves)" in md
    done = {p: p.stat().st_mtime_ns for p in out.glob("fold*/evals/*.json")}
    (out / "fold1" / "evals" / "tecoa-s1.json").unlink()
    assert main(["--quiet", "zeroshot", "--config", cfg]) == 0
    for p, t in done.items():
        if p.name != "tecoa-s1.json":
            assert p.stat().st_mtime_ns == t, p
    assert (out / "fold1" / "evals" / "tecoa-s1.json").exists()
    again = json.loads((out / "zeroshot.json").read_text())
    assert again["accuracy"]["tecoa"]["all"]["clean"]["0"] == res["accuracy"]["tecoa"]["all"]["clean"]["0"]
    # compare: two models evaluated apart, with held-out classes -> seen / unseen tables and paired differences
    ev = out / "fold0" / "evals"
    assert main(["compare", str(ev / "tecoa-s0.json"), str(ev / "hiro-s0.json"), "--out", str(tmp_path / "cmp")]) == 0
    paired = next(iter(json.loads((tmp_path / "cmp" / "compare.json").read_text())["paired_differences"].values()))
    t, h = (json.loads((ev / f).read_text())["models"] for f in ("tecoa-s0.json", "hiro-s0.json"))
    for g in ("seen", "unseen"):
        d = paired[f"rows_{g}"][0]["robust"]["0"]
        acc = [next(iter(m.values()))["by_class_group"][g]["attacks"]["pgd"]["robust"]["0"]["0"] for m in (h, t)]
        assert abs(d["diff"] - (acc[0] - acc[1])) < 1e-9 and d["ci95"][0] <= d["diff"] <= d["ci95"][1]
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "on the **unseen** leaves' images" in md and "| hiro-s0 | unseen |" in md


def test_zeroshot_bad_config_is_one_line(tmp_path, capsys):
    for over, match in (({"split": "train"}, "split"), ({"baseline": "nosuch"}, "nosuch"),
                        ({"readouts": ["trained"]}, "readout"), ({"folds": {"held_out": [["item 0", "x"]]}}, "'x'")):
        assert main(["--quiet", "zeroshot", "--config", _config(tmp_path, **over)]) == 2
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "zs").exists()
