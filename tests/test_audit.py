"""Auditing your own model (issue 23): values checked for units, and unknown names answered with a suggestion."""

import pytest

from hirobust.app.cli import main


@pytest.mark.parametrize("args,match", [
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=synthetic", "eval.eps=4"], "did you mean 4/255?"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=synthetic", "eval.eps_sweep=[2]"],
     "did you mean 2/255?"),
    (["finetune", "--method", "tecoa", "options.eps=8"], "did you mean 8/255?"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=synthetic", "eval.eps=4/0"], "divides by zero"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=fashion-mnst"], "did you mean 'fashion-mnist'?"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=fashion-mnist", "data.tree=seasn"],
     "did you mean 'season'?"),
    (["finetune", "--method", "tecoa", "data.dataset=fashion-mnist", "data.train_classes=[t-shrt,trouser]"],
     "did you mean 't-shirt'?"),
])
def test_values_in_the_wrong_units_or_misspelt_get_a_hint(tmp_path, capsys, args, match):
    rc = main(["--quiet", args[0], "--out", str(tmp_path / "o"), *args[1:]])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_the_readme_library_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's Library example, executed as is (the embedded weights: a random stand-in in the test's cache)."""
    import re
    from pathlib import Path

    from hirobust.io import save_safetensors
    from hirobust.models.clip import embedded_path, load_clip

    monkeypatch.setenv("HIROBUST_CACHE", str(tmp_path / "cache"))  # this test's own: no embedded weights yet
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"## Library\n\n```python\n(.*?)```", text, re.S).group(1)
    assert 'hr.load_clip("hirobust-fmnist-vit", "embedded")' in code
    with pytest.raises(ValueError, match="run `hirobust pretrain`"):
        load_clip("hirobust-fmnist-vit", "embedded")
    save_safetensors(load_clip("hirobust-fmnist-vit", None).model.state_dict(), embedded_path("hirobust-fmnist-vit"))
    exec(compile(code, "README.md", "exec"), {})
    assert re.search(r"tensor\(0?\.?\d", capsys.readouterr().out)


def test_worst_case_over_attacks_is_the_per_image_and_of_the_ensemble():
    import torch

    from hirobust.evaluate import worst_case

    pgd = {"0": torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1]], dtype=torch.bool)}  # [N images, L levels]
    cw = {"0": torch.tensor([[1, 0], [0, 0], [0, 0], [1, 1]], dtype=torch.bool)}
    entry, bits = worst_case({"pgd": pgd, "cw": cw})
    assert entry["attacks"] == ["cw", "pgd"] and entry["samples"] == 4
    assert entry["robust"]["0"] == {"0": 0.5, "1": 0.25}  # by hand: images 0 and 3 at L0; image 3 alone at L1
    assert worst_case({"pgd": pgd}) is None


def test_an_evaluation_with_pgd_and_cw_reports_their_worst_case(tmp_path):
    import json

    import torch

    from hirobust.records import correct

    out = tmp_path / "ev"
    assert main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(out), "data.dataset=synthetic",
                 "eval.steps=2", "eval.robust_samples=32", "eval.attacks=[pgd,cw]"]) == 0
    m = json.loads((out / "report.json").read_text())["models"]["x"]
    for a in m["worst_case"]["robust"]:
        for b in m["worst_case"]["robust"][a]:
            w = correct(m, "worst", a, b)
            assert torch.equal(w, correct(m, "pgd", a, b) & correct(m, "cw", a, b))
            assert m["worst_case"]["robust"][a][b] == w.float().mean().item()
            assert m["worst_case"]["robust"][a][b] <= min(m["attacks"][k]["robust"][a][b] for k in ("pgd", "cw"))
    assert "worst case (cw + pgd, per image)" in (out / "report.md").read_text()


def test_compare_refuses_one_dataset_under_two_trees(tmp_path, capsys):
    out = {t: tmp_path / t for t in ("season", "wordnet")}
    for t, d in out.items():
        assert main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(d), "data.dataset=synthetic",
                     "eval.steps=1", "eval.robust_samples=8", "data.hierarchy=" + str(_tree(tmp_path, t))]) == 0
    capsys.readouterr()
    assert main(["compare", str(out["season"]), str(out["wordnet"]), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "different trees" in err and "season" in err and "wordnet" in err
    assert main(["compare", str(out["season"]), "--out", str(tmp_path / "c")]) == 0
    assert "tree `season`" in (tmp_path / "c" / "compare.md").read_text()


def _tree(tmp_path, name):
    import json

    from hirobust.data.synthetic import synthetic_paths

    paths = dict(synthetic_paths(2, 3))
    if name == "wordnet":  # the same leaves, regrouped
        leaves = sorted(paths)
        paths[leaves[0]], paths[leaves[-1]] = paths[leaves[-1]], paths[leaves[0]]
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps({"name": name, "paths": paths}))
    return f


def test_a_level_at_chance_is_flagged_with_its_likely_reason(tmp_path):
    import json

    out = tmp_path / "ev"
    assert main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(out), "data.dataset=synthetic",
                 "eval.steps=1", "eval.robust_samples=16"]) == 0  # random weights: every level at chance
    rep = json.loads((out / "report.json").read_text())
    flags = rep["models"]["x"]["chance_flags"]
    assert flags and all("majority" in why and "names" in why for why in flags.values())
    assert all(rep["chance"][b]["majority"] < 1 for b in flags)  # a one-node level is never flagged
    assert "Levels that cannot be trusted" in (out / "report.md").read_text()


def test_evaluate_reads_the_tree_a_run_was_fine_tuned_with(tmp_path):
    import json

    run = tmp_path / "run"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), "model.name=hirobust-tiny",
                 "model.pretrained=random", "data.dataset=fashion-mnist", "data.tree=season", "train.epochs=1",
                 "train.train_samples=64", "train.batch_size=32", "options.eps=4/255"]) == 0
    out = tmp_path / "ev"
    assert main(["--quiet", "evaluate", "--model", f"t={run}", "--out", str(out), "data.dataset=fashion-mnist",
                 "eval.steps=1", "eval.robust_samples=8", "eval.clean_samples=64"]) == 0
    assert json.loads((out / "report.json").read_text())["tree"] == "season"  # not the dataset's default (wordnet)


@pytest.mark.parametrize("report_to", ["csv", "tensorboard"])
def test_training_logs_hold_every_step_loss_and_learning_rate(tmp_path, report_to):
    import csv

    run = tmp_path / "run"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), "model.name=hirobust-tiny",
                 "model.pretrained=random", "data.dataset=synthetic", "train.epochs=2", "train.batch_size=16",
                 "train.warmup_steps=2", "train.lr=1e-3", "options.eps=4/255", f"train.report_to={report_to}",
                 "train.val_every=4", "train.val_samples=24", "train.val_steps=1"]) == 0
    rows = list(csv.DictReader((run / "train.csv").open()))
    val = list(csv.DictReader((run / "val.csv").open()))  # periodic validation: clean and quick PGD per level
    assert [int(r["step"]) for r in val] == list(range(4, len(rows) + 1, 4)) and val[0]["n"] == "24"
    for r in val:
        for b in range(3):
            c, rob = float(r[f"clean L{b}"]), float(r[f"robust L{b}"])
            assert 0 <= rob <= c <= 1 and float(r[f"clean L{b} lo"]) <= c <= float(r[f"clean L{b} hi"])
    assert [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1)) and len(rows) > 4
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] < lrs[2] and all(float(r["loss"]) == float(r["loss"]) for r in rows)  # the warm-up, finite losses
    md = (run / "report.md").read_text()
    assert "# hirobust fine-tune: tecoa" in md and (run / "loss.png").exists() and "Validation (" in md
    if report_to == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        ea = EventAccumulator(str(run / "tb"))
        ea.Reload()
        loss = ea.Scalars("train/loss")
        assert [e.step for e in loss] == [int(r["step"]) for r in rows]
        assert all(abs(e.value - float(r["loss"])) < 1e-5 for e, r in zip(loss, rows))
        assert [round(e.value, 9) for e in ea.Scalars("train/lr")] == [round(x, 9) for x in lrs]
        assert [e.step for e in ea.Scalars("val/robust_L0")] == [int(r["step"]) for r in val]


def _image_folder(root, classes=("kit fox", "tabby cat", "sports car", "pickup truck"), per_class=6, seed=0):
    """An ImageFolder-style tree of small PNGs (each class its own colour), a classnames.txt and a tree.json."""
    import json

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i, c in enumerate(classes):
        d = root / c.replace(" ", "_")
        d.mkdir(parents=True)
        for k in range(per_class):
            px = np.clip(rng.normal(40 + 50 * i, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(d / f"{k}.png")
    (root / "tree.json").write_text(json.dumps({"name": "kind", "paths": {
        "kit fox": ["animal"], "tabby cat": ["animal"], "sports car": ["vehicle"], "pickup truck": ["vehicle"]}}))
    return root


def test_any_labelled_image_folder_is_a_dataset_with_its_own_tree(tmp_path, capsys):
    import json

    folder = _image_folder(tmp_path / "mine")
    out = tmp_path / "ev"
    assert main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(out),
                 f"data.dataset=folder:{folder}", "eval.steps=2", "eval.robust_samples=12", "eval.batch_size=8",
                 "data.num_workers=0"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["tree"] == "kind" and rep["levels"][1] == ["animal", "vehicle"] and rep["num_levels"] == 2
    assert rep["models"]["x"]["n"]["clean"] == 24 and (out / "report.md").exists()
    assert (out / "accuracy_per_level.png").exists() and len(list((out / "clip_benchmark").glob("*.json"))) == 1
    assert main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(tmp_path / "many"),
                 "--datasets", f"folder:{folder}", "eval.steps=1", "eval.robust_samples=8",
                 "data.num_workers=0"]) == 0
    assert (tmp_path / "many" / "mine" / "report.json").exists()


@pytest.mark.parametrize("damage,match", [
    ("empty", "holds no class folders"), ("class", "holds no images"), ("image", "cannot be read"),
    ("tree", "does not cover class 'pickup truck'"), ("missing", "is not a folder")])
def test_a_bad_image_folder_is_one_line_before_any_model_loads(tmp_path, capsys, damage, match):
    import json

    folder = tmp_path / "mine"
    if damage == "empty":
        folder.mkdir()
    elif damage != "missing":
        _image_folder(folder)
        if damage == "class":
            (folder / "empty_class").mkdir()
        elif damage == "image":
            (folder / "kit_fox" / "0.png").write_bytes(b"not a png")
        elif damage == "tree":
            (folder / "tree.json").write_text(json.dumps({"paths": {"kit fox": ["animal"], "tabby cat": ["animal"],
                                                                     "sports car": ["vehicle"]}}))
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(tmp_path / "ev"),
               f"data.dataset=folder:{folder}", "data.num_workers=0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err
