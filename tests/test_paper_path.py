"""The paper path's dependencies (issue 22): everything the protocol needs is installed, or the run is refused before
any work, naming what to install."""

import importlib.util

from hirobust.app.cli import main


def test_autoattack_and_h5py_are_dependencies():
    from importlib.metadata import requires

    deps = " ".join(requires("hirobust") or [])
    assert "pyautoattack" in deps and "h5py" in deps
    assert importlib.util.find_spec("pyautoattack") and importlib.util.find_spec("h5py")


def test_a_missing_autoattack_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from hirobust.app import evaluation

    real = importlib.util.find_spec
    missing = lambda name, *a: None if name == "pyautoattack" else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    calls = []
    monkeypatch.setattr(evaluation, "evaluate_models", lambda *a, **k: calls.append(a))
    out = tmp_path / "ev"
    for extra in ([], ["--datasets", "synthetic"]):
        rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(out), "data.dataset=synthetic",
                   "eval.attacks=[pgd,autoattack]", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "pip install pyautoattack" in err and len(err.splitlines()) == 1, err
        assert calls == [] and not out.exists()


def test_clip_benchmark_file_names_follow_its_template_and_never_collide(tmp_path):
    from hirobust.app.report import clip_benchmark_results

    runs = []
    for name in ("tecoa", "hiro"):
        d = tmp_path / name
        (d / "model").mkdir(parents=True)
        (d / "model" / "open_clip_model.safetensors").write_bytes(b"x")
        (d / "hirobust.json").write_text('{"model": "ViT-B-32"}')
        runs.append(d)
    m = lambda src: {"source": src, "clean": {"0": 0.5}, "robust": {"0": {"0": 0.2}}}  # noqa: E731
    report = {"dataset": "cifar10", "models": {"clip": m({"name": "ViT-B-32", "pretrained": "openai"}),
                                               "tecoa": m(str(runs[0])), "hiro": m(str(runs[1]))}}
    names = sorted(clip_benchmark_results(report))
    assert "cifar10_openai_ViT-B-32_en_zeroshot_classification.json" in names  # as `clip_benchmark eval` names it
    assert len(set(names)) == 3 and all(n.endswith("_ViT-B-32_en_zeroshot_classification.json") for n in names)


def test_compare_averages_each_column_over_the_datasets_that_have_it():
    from hirobust.app.compare import markdown, rows

    def rep(ds, levels, clean, path):
        robust = {str(b): {str(b): c / 2} for b, c in enumerate(clean) if len(levels[b]) > 1}
        return {"dataset": ds, "num_levels": len(levels), "levels": levels, "_path": path,
                "models": {"m": {"source": {"name": "A", "pretrained": "openai"}, "clean": {
                    str(b): c for b, c in enumerate(clean)}, "robust": robust, "transfer_success": {}}}}
    a = rep("pcam", [["x", "y"], ["root"]], [0.8, 1.0], "a/report.json")  # L1: one node, trivially right
    b = rep("cars", [["x", "y", "z"], ["p", "q"], ["r"]], [0.4, 0.6, 1.0], "b/report.json")
    again = rep("cars", [["x", "y", "z"], ["p", "q"], ["r"]], [0.4, 0.6, 1.0], "c/report.json")
    cols, (row,) = rows([a, b, again])  # the same model on cars twice: one row, counted once
    assert row["datasets"] == 2 and abs(row["clean L0"] - 0.6) < 1e-12 and row["clean L0 n"] == 2
    assert row["clean L1"] == 0.6 and row["clean L1 n"] == 1  # pcam's one-node L1 is left out
    assert row["clean L2"] is None and row["clean L2 n"] == 0
    assert "60.0 (1 of 2)" in markdown(cols, [row], "t")


def test_a_multi_dataset_evaluation_resumes_without_recomputing_finished_datasets(tmp_path, monkeypatch, capsys):
    import json

    from hirobust.app import evaluation

    real, calls = evaluation.evaluate_models, []

    def dies_on_mix(models, data_cfg, *a, **k):
        calls.append((data_cfg.dataset, list(models)))
        if data_cfg.dataset.startswith("folder:") and fail:
            raise KeyboardInterrupt  # a kill in the middle of the second dataset
        return real(models, data_cfg, *a, **k)

    monkeypatch.setattr(evaluation, "evaluate_models", dies_on_mix)
    from test_audit import _image_folder

    folder = f"folder:{_image_folder(tmp_path / 'mine')}"
    out = tmp_path / "ev"
    ev = ["--quiet", "evaluate", "--model", "a=hirobust-tiny:", "--out", str(out), "--datasets",
          f"synthetic,{folder}", "eval.steps=1", "eval.robust_samples=8", "data.num_workers=0"]
    fail = True
    assert main(ev) == 130
    summary = json.loads((out / "datasets.json").read_text())  # written after the first dataset already
    assert summary["evaluated"] == ["synthetic"] and summary["pending"] == [folder]
    assert (out / "compare.md").exists()
    fail, calls[:] = False, []
    assert main([*ev, "--resume"]) == 0
    assert calls == [(folder, ["a"])]  # the finished dataset's cells were reused
    assert json.loads((out / "datasets.json").read_text())["evaluated"] == ["synthetic", folder]


def test_a_partial_imagenet_is_refused_unless_allowed_and_then_marked(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from hirobust.data.zeroshot import imagenet_wnids

    val = tmp_path / "data" / "val"
    for w in imagenet_wnids()[:3]:  # 3 of 1,000 class folders
        (val / w).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(np.full((32, 32, 3), 40 * k, np.uint8)).save(val / w / f"{k}.JPEG")
    ev = ["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(tmp_path / "ev"), "data.dataset=imagenet",
          f"data.root={tmp_path / 'data'}", "data.eval_split=val", "data.num_workers=0", "eval.steps=1",
          "eval.robust_samples=4", "eval.attack_levels=[0]", 'data.templates=["a photo of a {}."]']
    assert main(ev) == 2
    err = capsys.readouterr().err.strip()
    assert "holds 3 of 1000 ImageNet class folders" in err and "allow_partial" in err and len(err.splitlines()) == 1
    assert main([*ev, "data.allow_partial=true"]) == 0
    rep = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert "3 of 1000" in rep["partial"] and "**Partial dataset**" in (tmp_path / "ev" / "report.md").read_text()


def test_slices_of_a_multi_dataset_evaluation_share_the_folder_and_never_evaluate_a_dataset_twice(tmp_path):
    import json

    from test_audit import _image_folder

    from hirobust.app.workqueue import claimed

    folder = f"folder:{_image_folder(tmp_path / 'mine')}"
    out = tmp_path / "ev"
    ev = ["--quiet", "evaluate", "--model", "a=hirobust-tiny:", "--out", str(out), "--datasets",
          f"synthetic,{folder}", "eval.steps=1", "eval.robust_samples=8", "data.num_workers=0"]
    assert main([*ev, "--shard", "2/2"]) == 0  # the folder dataset
    summary = json.loads((out / "datasets.json").read_text())
    assert summary["evaluated"] == [folder] and summary["pending"] == ["synthetic"]
    with claimed(out / ".claims", "dataset synthetic"):  # another process is evaluating synthetic: left to it
        assert main([*ev, "--shard", "1/2"]) == 0
    assert not (out / "synthetic" / "report.json").exists()
    assert main([*ev, "--shard", "1/2"]) == 0
    summary = json.loads((out / "datasets.json").read_text())
    assert summary["evaluated"] == ["synthetic", folder] and summary["pending"] == []
    assert "synthetic" in (out / "compare.md").read_text()
    assert main([*ev, "--shard", "1/1", "--overwrite"]) == 2  # slices continue one evaluation


def test_compare_shows_every_attack_with_intervals_and_never_averages_two_threat_models(tmp_path):
    import json
    import math

    from hirobust.app.compare import compare, rows

    def rep(ds, eps, acc, path):
        entry = lambda v: {"robust": {"0": {"0": v}}, "robust_ci95": {"0": {"0": [v - 0.1, v + 0.1]}},  # noqa: E731
                                      "samples": 100}
        m = {"source": {"name": "A", "pretrained": "openai"}, "clean": {"0": acc}, "clean_ci95": {"0": [0.1, 0.9]},
             "n": {"clean": 400, "robust": 100}, "robust": {"0": {"0": acc / 2}},
             "robust_ci95": {"0": {"0": [acc / 2 - 0.1, acc / 2 + 0.1]}},
             "attacks": {"pgd": entry(acc / 2), "cw": entry(acc / 4)}, "worst_case": entry(acc / 5)}
        d = tmp_path / path
        d.mkdir()
        (d / "report.json").write_text(json.dumps({
            "dataset": ds, "num_levels": 1, "levels": [["x", "y"]], "tree": "t", "eps": eps,
            "attack": {"type": "PGD-20", "attacks": ["pgd", "cw"], "norm": "linf"}, "models": {"m": m}}))
        return d
    a, b = rep("cars", 1 / 255, 0.8, "a"), rep("pets", 1 / 255, 0.4, "b")
    c = rep("dtd", 4 / 255, 0.6, "c")
    from hirobust.app.compare import load_reports

    cols, (row,) = rows(load_reports([a, b]))
    assert cols == ["clean L0", "robust L0", "cw L0", "worst L0", "TSR(1→0)"]
    assert abs(row["cw L0"] - 0.15) < 1e-12  # CW and the worst case averaged like the main attack
    half = 1.96 * math.sqrt(0.4 * 0.6 / 100 + 0.2 * 0.8 / 100) / 2  # robust: 0.4 and 0.2 on 100 images each
    assert abs(row["robust L0 ci95"][1] - (0.3 + half)) < 1e-9
    md = compare([a, b, c], tmp_path / "out")
    assert "2 threat models" in md and "ε = 1/255 linf, PGD-20" in md and "ε = 4/255 linf, PGD-20" in md
    assert "Mean over 2 dataset(s) (cars (tree t), pets (tree t)), ε = 1/255" in md  # dtd is not in that mean
    assert "30.0 [" in md and "| cw L0 | worst L0 |" in md  # the mean robust accuracy with its interval
