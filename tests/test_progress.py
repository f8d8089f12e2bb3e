"""Progress: every bar says which stage of how many it belongs to; each stage starts with the time left."""

import logging

from hirobust import progress
from hirobust.app.cli import main
from hirobust.progress import Stages, label


def test_bars_carry_the_stage_label_and_the_eta_follows_finished_stages(caplog):
    caplog.set_level(logging.INFO, logger="hirobust")
    stages = Stages(3, done=1)
    assert label("clean") == "clean" and not progress.active()
    with stages.stage("evaluate a"):
        assert label("PGD-20 level 1") == "[2/3 evaluate a] PGD-20 level 1" and progress.active()
    assert label("clean") == "clean"
    stages.times[-1] = 90.0  # as if the stage took 1.5 min
    with stages.stage("evaluate b"):
        pass
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage")]
    assert lines[0] == "stage 2/3: evaluate a (elapsed 0:00, left unknown until a stage finishes)"
    assert lines[1].startswith("stage 3/3: evaluate b") and "left ~1:30)" in lines[1]


def test_an_evaluation_of_two_models_labels_its_bars_and_logs_its_stages(tmp_path, capsys):
    run = tmp_path / "r"
    tiny = ["model.name=hirobust-tiny", "model.pretrained=random", "data.dataset=synthetic", "train.epochs=1",
            "train.batch_size=32"]
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *tiny]) == 0
    assert main(["evaluate", "--model", f"a={run}", "--model", f"b={run}", "--out", str(tmp_path / "e"),
                 "data.dataset=synthetic", "eval.steps=1", "eval.robust_samples=16"]) == 0
    err = capsys.readouterr().err
    assert "[1/2 evaluate a] PGD-1 level 0" in err and "[2/2 evaluate b] clean" in err
    assert "stage 2/2: evaluate b (elapsed" in err
    assert "stage 1/2" in (tmp_path / "e" / "run.log").read_text()
    assert not logging.getLogger("hirobust").handlers  # the console handler is gone after the command
