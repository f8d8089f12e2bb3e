"""The researcher's path: defaults that do what the user means, options anywhere, unknown names refused early."""

import logging

import pytest

from hirobust.app.cli import main
from hirobust.app.inputs import default_pretrained, resolve_pretrained
from hirobust.app.schema import ModelConfig


def test_finetune_starts_from_pretrained_weights_by_default():
    assert ModelConfig().pretrained == "default"
    assert default_pretrained("hirobust-fmnist-vit") == "embedded"  # the embedded model: its cached CLIP
    assert default_pretrained("ViT-B-32") == "openai"  # an open_clip model: its default tag
    with pytest.raises(ValueError, match="model.pretrained=random"):
        default_pretrained("hirobust-tiny")  # no weights exist: say so instead of training from random


def test_random_weights_only_when_asked_and_said_in_the_log(caplog):
    with caplog.at_level(logging.WARNING, logger="hirobust"):
        assert resolve_pretrained(ModelConfig(name="hirobust-tiny", pretrained="random")) is None
    assert "RANDOM weights" in caplog.text
    assert resolve_pretrained(ModelConfig(name="ViT-B-32", pretrained="x.pt")) == "x.pt"  # as given


def test_finetune_without_pretrained_weights_for_the_architecture_is_refused(tmp_path, capsys):
    rc = main(["finetune", "--method", "tecoa", "--out", str(tmp_path / "r"), "model.name=hirobust-tiny",
               "data.dataset=synthetic", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "model.pretrained=random" in err and len(err.splitlines()) == 1


def test_quiet_works_after_the_subcommand(capsys):
    assert main(["tree", "list", "--quiet"]) == 0 and "cifar100" in capsys.readouterr().out


def test_an_unknown_dataset_is_refused_before_any_work(tmp_path, capsys):
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--datasets", "cifar10,carz",
               "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "unknown dataset 'carz'" in err and "stanford-cars" in err and "imagenet1k" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "ev" / "datasets.json").exists()


@pytest.mark.parametrize("theirs,ours", [("imagenet1k", "imagenet"), ("cars", "stanford-cars"), ("pets", "oxford-pets"),
                                         ("flowers", "flowers102"), ("fgvc_aircraft", "fgvc-aircraft"),
                                         ("cifar100", "cifar100")])
def test_clip_benchmark_dataset_names_are_accepted(tmp_path, capsys, theirs, ours):
    from hirobust.app.schema import DataConfig

    assert DataConfig(dataset=theirs).dataset == ours
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--datasets", theirs, "--out",
               str(tmp_path / "ev"), "data.root=" + str(tmp_path / "nothing-here")])
    assert rc == 0 and f"skipped {ours}:" in capsys.readouterr().out  # known, just not on this machine


def test_clip_benchmark_variants_say_what_to_use_instead(capsys):
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "data.dataset=vtab/pets"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "vtab/ variant" in err and "use 'oxford-pets' instead" in err


def test_results_are_also_written_in_clip_benchmark_shape(tmp_path):
    import json

    out = tmp_path / "ev"
    assert main(["--quiet", "evaluate", "--model", "tiny=hirobust-tiny:", "--out", str(out), "data.dataset=synthetic",
                 "eval.steps=1", "eval.robust_samples=16"]) == 0
    report = json.loads((out / "report.json").read_text())
    (f,) = (out / "clip_benchmark").iterdir()
    assert f.name == "synthetic_random_hirobust-tiny_en_zeroshot_classification.json"  # CLIP_benchmark's template
    r = json.loads(f.read_text())
    assert {"dataset", "model", "pretrained", "task", "metrics", "language"} <= set(r)  # clip_benchmark's keys
    assert r["task"] == "zeroshot_classification" and r["model"] == "hirobust-tiny"
    assert r["metrics"]["acc1"] == report["models"]["tiny"]["clean"]["0"]
    assert r["hirobust"]["robust_acc1"] == report["models"]["tiny"]["robust"]["0"]["0"]
    assert r["hirobust"]["robust_acc1"] <= r["hirobust"]["robust_clean_acc1"]  # the same subset: never above


def test_paper_configs_are_package_data_found_by_name(tmp_path, monkeypatch):
    from hirobust.app.config import load_yaml, packaged_config

    monkeypatch.chdir(tmp_path)  # outside the checkout, as from an installed wheel
    for name in ("configs/paper/hiro.yaml", "paper/hiro.yaml", "paper/hiro"):
        p = packaged_config(name)
        assert p.is_file() and "site-packages" in str(p) or "src/hirobust/configs/paper" in str(p)
        assert load_yaml(name)["finetune"]["method"] == "hiro"
    with pytest.raises(FileNotFoundError, match="paper/nosuch"):
        load_yaml("paper/nosuch")


def test_an_unknown_method_is_refused_by_the_parser_before_torch_is_imported():
    import subprocess
    import sys

    from hirobust.app.cli import METHOD_NAMES
    from hirobust.methods import METHODS

    assert set(METHOD_NAMES) == set(METHODS)
    code = ("import sys; from hirobust.app.cli import main\n"
            "rc = main(['finetune', '--method', 'nosuch'])\n"
            "assert rc == 2 and 'torch' not in sys.modules, sys.modules.keys()\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
    choices = ", ".join(f"'{m}'" for m in METHOD_NAMES)  # the registry's list, never a hard-coded one
    assert out.stderr.strip() == f"hirobust finetune: error: argument --method: invalid choice: 'nosuch' " \
                                 f"(choose from {choices})"


def test_print_config_shows_the_resolved_config_and_does_nothing_else(tmp_path, capsys):
    import yaml

    assert main(["finetune", "--method", "hiro", "--out", str(tmp_path / "r"), "train.lr=2/255", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["method"] == "hiro" and cfg["train"]["lr"] == pytest.approx(2 / 255)
    assert cfg["model"]["pretrained"] == "default" and not (tmp_path / "r").exists()
    assert main(["study", "--quick", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["out"] == "runs/study-quick"
    assert main(["evaluate", "--model", "x=hirobust-tiny:", "eval.eps=2/255", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["eval"]["eps"] == pytest.approx(2 / 255)


def test_hf_hub_and_local_dir_models_offline(tmp_path, monkeypatch, capsys, tiny_clip):
    """open_clip's hf-hub:/local-dir: names, offline: a hub repo laid out in a Hugging Face cache (as a download
    leaves it) and an exported folder evaluate; a repo that is not there is one line saying where to put it."""
    import json

    from hirobust.models.clip import export_open_clip

    folder = tmp_path / "export"
    export_open_clip(tiny_clip.model, "hirobust-tiny", folder, tiny_clip.mean, tiny_clip.std)
    snap = tmp_path / "hf" / "models--org--tiny-clip" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for f in ("open_clip_config.json", "open_clip_model.safetensors"):
        (snap / f).write_bytes((folder / f).read_bytes())
    (tmp_path / "hf" / "models--org--tiny-clip" / "refs").mkdir()
    (tmp_path / "hf" / "models--org--tiny-clip" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    out = tmp_path / "ev"
    rc = main(["--quiet", "evaluate", "--model", "hub=hf-hub:org/tiny-clip", "--model", f"dir=local-dir:{folder}",
               "--out", str(out), "data.dataset=synthetic", "eval.steps=1", "eval.robust_samples=16"])
    assert rc == 0, capsys.readouterr().err
    models = json.loads((out / "report.json").read_text())["models"]
    assert models["hub"]["clean"] == models["dir"]["clean"]  # the same weights through both names
    rc = main(["--quiet", "evaluate", "--model", "x=hf-hub:org/not-there", "--out", str(tmp_path / "ev2"),
               "data.dataset=synthetic"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "huggingface.co/org/not-there" in err and "local-dir:" in err and len(err.splitlines()) == 1
