import json

import pytest

from hirobust.app.cli import main

TINY = ["model.name=hirobust-tiny", "model.pretrained=random",
        "data.dataset=synthetic", "train.epochs=1", "train.batch_size=32",
        "train.optimizer=adamw", "train.lr=1e-3", "options.eps=4/255"]
EVAL = ["data.dataset=synthetic", "eval.eps=4/255", "eval.steps=3", "eval.robust_samples=64",
        "eval.batch_size=64", "eval.eps_sweep=[2/255]", "eval.sweep_samples=32"]


def test_tree_show(capsys):
    assert main(["tree", "show", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert "garment-type" in out and "ankle boot" in out and "footwear (level 2)" in out
    assert main(["tree", "list"]) == 0 and "cifar100" in capsys.readouterr().out


def test_finetune_then_evaluate(tmp_path, capsys):
    run = tmp_path / "tecoa"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY]) == 0
    assert (run / "model" / "open_clip_model.safetensors").exists() and (run / "hirobust.json").exists()
    out = tmp_path / "eval"
    rc = main(["--quiet", "evaluate", "--model", f"tecoa={run}", "--model", "clip=hirobust-tiny:", "--out", str(out),
               *EVAL])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "synthetic" and report["num_levels"] == 3 and abs(report["eps"] - 4 / 255) < 1e-12
    for name in ("tecoa", "clip"):
        m = report["models"][name]
        assert set(m["clean"]) == {"0", "1", "2"}
        assert set(m["robust"]) == {"0", "1", "2"} and all(set(r) == {"0", "1", "2"} for r in m["robust"].values())
        assert all(0 <= v <= 1 for r in m["transfer_success"].values() for v in r.values())
        for a in m["robust"]:  # robust accuracy counts right-on-both, so never above clean on the same images
            assert m["robust"][a][a] <= m["clean_on_robust_subset"][a]
    assert (out / "report.md").exists() and (out / "accuracy_per_level.png").exists()
    assert (out / "transfer_success.png").exists()
    assert "| tecoa |" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    log = (out / "run.log").read_text()
    assert "evaluated tecoa in" in log and '"eps": 0.0156' in log  # the resolved config and the timings
    assert "fine-tuned tecoa" in (run / "run.log").read_text()
    prov = report["provenance"]
    assert prov["command"].startswith("hirobust") and len(prov["git"]["commit"]) == 40
    assert prov["versions"]["torch"] and prov["seeds"] == {"eval.seed": 0} and len(prov["config_digest"]) == 12
    assert md.splitlines()[2].startswith("Provenance: `hirobust")
    assert "Paired differences to `tecoa`" in md and "95% Wilson interval" in md and "chance per level" in md
    # compare: paired differences of every model to the baseline on the same images, with intervals and p
    assert main(["compare", str(out), "--out", str(tmp_path / "cmp"), "--baseline", "clip"]) == 0
    paired = json.loads((tmp_path / "cmp" / "compare.json").read_text())["paired_differences"]
    (entry,) = paired.values()
    row = entry["rows"][0]
    assert entry["baseline"] == "clip" and row["model"] == "tecoa"
    d = row["robust"]["0"]
    assert d["ci95"][0] <= d["diff"] <= d["ci95"][1] and 0 <= d["p_mcnemar"] <= 1 and d["n"] == 64
    assert "McNemar" in (tmp_path / "cmp" / "compare.md").read_text()
    for a in ("1", "2"):  # TSR(a→0) paired on the same images: the two reports' own TSR values, differenced
        t = row["tsr_to_leaf"][a]
        tsr = {n: report["models"][n]["transfer_success"][a]["0"] for n in ("tecoa", "clip")}
        want = tsr["tecoa"] - tsr["clip"]
        assert abs(t["diff"] - want) < 1e-9 and t["ci95"][0] <= t["diff"] <= t["ci95"][1] and t["n"] == 64
    assert main(["compare", str(out), "--out", str(tmp_path / "cmp2"), "--baseline", "nosuch"]) == 2
    # models evaluated separately (one report each) are paired on the same images ("clip" is a random tiny model,
    # not the same one as above; the fine-tuned model gets the same per-image results alone as beside another)
    for name, src in (("tecoa", str(run)), ("clip", "hirobust-tiny:")):
        assert main(["--quiet", "evaluate", "--model", f"{name}={src}", "--out", str(tmp_path / f"ev-{name}"),
                     *EVAL]) == 0
    assert main(["compare", str(tmp_path / "ev-tecoa"), str(tmp_path / "ev-clip"), "--out", str(tmp_path / "cmp3"),
                 "--baseline", "clip"]) == 0
    (apart,) = json.loads((tmp_path / "cmp3" / "compare.json").read_text())["paired_differences"].values()
    t, c = (json.loads((tmp_path / f"ev-{n}" / "report.json").read_text())["models"][n] for n in ("tecoa", "clip"))
    assert t["per_image"] == report["models"]["tecoa"]["per_image"] and len(apart["reports"]) == 2
    for b in "012":
        d = apart["rows"][0]["robust"][b]
        assert d["n"] == 64 and abs(d["diff"] - (t["robust"][b][b] - c["robust"][b][b])) < 1e-9
    from hirobust.app.compare import load_reports, rows

    _, table = rows(load_reports([tmp_path / "ev-tecoa", tmp_path / "ev-clip", out]))  # names met again on a dataset
    # the same fine-tuned run on the same dataset counts once; the random tiny "clip" of each report is another model
    assert [(r["model"], r["datasets"]) for r in table] == [("tecoa", 1), ("clip", 1), ("clip@eval", 1)]
    # another subset seed means other images: listed side by side, never paired
    assert main(["--quiet", "evaluate", "--model", "clip=hirobust-tiny:", "--out", str(tmp_path / "seed1"), *EVAL,
                 "eval.seed=1"]) == 0
    assert main(["compare", str(tmp_path / "ev-tecoa"), str(tmp_path / "seed1"), "--out", str(tmp_path / "cmp4")]) == 0
    assert json.loads((tmp_path / "cmp4" / "compare.json").read_text())["paired_differences"] == {}


def test_demo_checks_held_out_classes_before_pretraining(tmp_path, capsys):
    rc = main(["--quiet", "demo", "--out", str(tmp_path / "d"), "data.train_classes=[t-shirt,nosuch]"])
    assert rc == 2 and "nosuch" in capsys.readouterr().err
    assert not list((tmp_path / "cache").glob("**/*.safetensors")) and not (tmp_path / "d").exists()


@pytest.mark.parametrize("args,match", [
    (["finetune", "--method", "nope"], "invalid choice: 'nope'"),
    (["finetune", "--method", "tecoa", "data.dataset=nope"], "unknown dataset 'nope'"),
    (["finetune", "--method", "tecoa", "options.epsilon=1"], "unknown option 'epsilon'"),
    (["finetune", "--method", "tecoa", "train.optimizer=lion"], "unknown optimizer"),
    (["finetune", "--method", "tecoa", "trian.epochs=1"], "unknown config key 'trian'"),
    (["finetune", "--method", "tecoa", "model.name=nope"], "unknown model 'nope'"),
    (["finetune", "--method", "tecoa", "data.root=/no/such/dir", "data.dataset=fashion-mnist"], "does not exist"),
    (["evaluate", "--model", "x=hirobust-tiny:", "eval.eps=-1"], "eps must be >= 0"),
    (["evaluate", "--model", "x=/no/such/run"], "neither a run directory"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, match):
    args = [a if a != "--out" else a for a in args]
    extra = ["--out", str(tmp_path / "run")] if args[0] in ("finetune", "evaluate") else []
    base = [a for a in TINY if not any(a.startswith(k.split("=")[0] + "=") for k in args[2:])]
    rc = main(["--quiet", *args[:1], *extra, *args[1:], *(base if args[0] == "finetune" else [])])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "report.json").exists() and not (tmp_path / "run" / "checkpoint").exists()


def test_tree_not_covering_the_classes(tmp_path, capsys):
    bad = {"name": "bad", "paths": {"item 0": ["group 0"]}}
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp_path / "run"), *TINY,
               f"data.hierarchy={f}"])
    assert rc == 2 and "does not cover class 'item 1'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_checkpoint_for_another_model(tmp_path, capsys):
    run = tmp_path / "tiny"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY]) == 0
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp_path / "run2"), *TINY,
               "model.name=hirobust-fmnist-vit", f"model.pretrained={run}/model/open_clip_model.safetensors"])
    assert rc == 2 and "does not match model 'hirobust-fmnist-vit'" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()


def test_resume_via_cli(tmp_path):
    run = tmp_path / "r"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY]) == 0
    before = (run / "model" / "open_clip_model.safetensors").read_bytes()
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), "--resume", *TINY]) == 0
    assert (run / "model" / "open_clip_model.safetensors").read_bytes() == before


def test_evaluate_over_a_fake_imagenet_folder_and_skip_missing_datasets(tmp_path, capsys):
    from PIL import Image

    from hirobust.data.zeroshot import imagenet_wnids

    root = tmp_path / "data"
    for wnid in imagenet_wnids()[:3]:
        (root / "imagenet" / "val" / wnid).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (20, 24), color=(40 * i, 90, 200)).save(root / "imagenet" / "val" / wnid / f"{i}.JPEG")
    out = tmp_path / "eval"
    rc = main(["--quiet", "evaluate", "--model", "clip=hirobust-tiny:", "--datasets", "imagenet,cifar10",
               "--out", str(out), f"data.root={root}", "eval.eps=1/255", "eval.steps=1", "eval.robust_samples=6",
               "eval.batch_size=6", "data.num_workers=0", "data.templates=['a photo of a {}.']",
               "data.allow_partial=true"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "evaluated: imagenet" in printed and "skipped cifar10:" in printed
    report = json.loads((out / "imagenet" / "report.json").read_text())
    assert report["num_levels"] == 6 and report["models"]["clip"]["samples"]["clean"] == 6
    assert "3 of 1000" in report["partial"]  # 3 wnid folders: allowed, and marked
    assert json.loads((out / "datasets.json").read_text())["skipped"].keys() == {"cifar10"}
    assert (out / "compare.md").exists()


def test_paper_reproduction_configs_parse():
    from pathlib import Path

    from hirobust.app.config import load_yaml
    from hirobust.app.projection import paper_eval_config
    from hirobust.app.schema import ReproduceConfig
    from hirobust.methods import method_config
    from hirobust.typed import from_dict

    files = sorted(Path(__file__).parent.parent.joinpath("src", "hirobust", "configs", "paper").glob("*.yaml"))
    from hirobust.methods.configs import CONFIGS

    assert set(CONFIGS) <= {f.stem for f in files}  # a paper config for every registered method
    for f in files:
        cfg = from_dict(ReproduceConfig, load_yaml(f))
        assert cfg.evaluate.eval == paper_eval_config(), f  # the protocol `hirobust bench` projects
        method_config(cfg.finetune.method, cfg.finetune.options)
        assert cfg.finetune.model.name == "ViT-B-32" and cfg.finetune.model.pretrained == "openai"
        assert cfg.finetune.data.dataset == "imagenet" and abs(cfg.evaluate.eval.eps - 1 / 255) < 1e-12
    five = from_dict(ReproduceConfig, load_yaml(files[[f.stem for f in files].index("hiro-5trees")]))
    from hirobust.hierarchy import load_forest

    assert len(load_forest("imagenet", trees=five.finetune.data.trees)) == 5


def test_packaged_demo_and_ablation_configs_validate():
    from hirobust.app.demo import load_demo_config
    from hirobust.methods import method_config
    for name in ("demo", "ablation"):
        cfg = load_demo_config(default=name)
        assert cfg.methods and all(method_config(s["method"], s.get("options")) for s in cfg.methods.values())
        for runs in cfg.tables.values():
            assert set(runs) <= set(cfg.methods)
    demo = load_demo_config()
    assert set(demo.methods) == {"tecoa", "hiro"} and demo.data.tree == "season" and demo.data.train_classes


def test_demo_end_to_end_on_a_tiny_config(tmp_path, capsys):
    import yaml

    cfg = {
        "out": str(tmp_path / "demo"), "device": "cpu",
        "pretrain": {"model": "hirobust-tiny", "dataset": "synthetic", "epochs": 2, "batch_size": 32,
                     "warmup_steps": 2},
        "data": {"dataset": "synthetic"},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": "adamw", "lr": 1e-3},
        "methods": {"tecoa": {"method": "tecoa", "options": {"eps": "4/255"}},
                    "hiro": {"method": "hiro", "options": {"eps": "4/255", "image_levels": True}}},
        "eval": {"eps": "4/255", "steps": 2, "robust_samples": 32, "batch_size": 32, "eps_sweep": ["2/255"],
                 "sweep_samples": 16},
        "sweep_models": ["clip"],
        "tables": {"components": ["tecoa", "hiro"]},
    }
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["--quiet", "demo", "--config", str(path)]) == 0
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert list(report["models"]) == ["clip", "tecoa", "hiro"]
    assert "eps_sweep_by_level" in report["models"]["clip"] and report["ablation"]["components"][1]["run"] == "hiro"
    assert {"pretrain (0 if cached)", "finetune tecoa", "evaluate hiro", "total"} <= set(report["timing"])
    log = (tmp_path / "demo" / "run.log").read_text()
    assert "provenance" in log and "seconds per stage" in log and "fine-tuned hiro" in log
    out = capsys.readouterr().out
    assert "| hiro |" in out and "components:" in out


def test_override_values_keep_words_like_off_as_strings():
    from hirobust.typed import parse_value

    assert parse_value("off") == "off" and parse_value("no") == "no" and parse_value("true") is True
    assert parse_value("2/255") == 2 / 255 and parse_value("1e-3") == 1e-3 and parse_value("[pgd, cw]") == ["pgd", "cw"]


def test_provenance_names_the_code_a_job_started_with(monkeypatch):
    """git is read once per process (a job reads it when it starts): a study whose checkout moves on while it runs
    still names the commit it imported in every cell, not a later HEAD."""
    import subprocess

    from hirobust.app import env

    env.code_state.cache_clear()
    first = env.provenance({"train": {"seed": 3}})
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))  # a moved HEAD would show here
    again = env.provenance({})
    assert again["git"] == first["git"] and not calls
    assert first["seeds"] == {"train.seed": 3} and (first["git"]["commit"] is None or len(first["git"]["commit"]) == 40)
