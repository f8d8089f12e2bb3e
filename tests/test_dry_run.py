"""The paper path, dry-run: every zero-shot dataset in its real on-disk format (fabricated small, with one damaged
image and one partial copy among them), a tiny random CLIP, `hirobust reproduce` through fine-tune, export, a
kill in the middle of one dataset, `--resume`, and the summary. Nothing finished is computed twice."""

import json

import yaml
from fabricate import as_official, fabricate_all

from hirobust.app import evaluation
from hirobust.app.cli import main
from hirobust.data.registry import ZEROSHOT_DATASETS


def _config(tmp_path, root) -> str:
    cfg = {
        "finetune": {
            "out": str(tmp_path / "run"), "device": "cpu", "method": "tecoa",
            "options": {"eps": "1/255", "steps": 1, "alpha": "1/255"},
            "model": {"name": "hirobust-tiny", "pretrained": "random"},
            "data": {"dataset": "imagenet", "root": str(root), "tree": "wordnet", "num_workers": 0,
                     "templates": ["a photo of a {}."], "max_damaged": 0.1},
            "train": {"epochs": 1, "batch_size": 16, "optimizer": "sgd", "lr": 1e-5, "max_steps": 3,
                      "ckpt_every": 1, "seed": 0}},
        "evaluate": {"datasets": ["all"], "include_clip": True,
                     "eval": {"eps": "1/255", "steps": 1, "attacks": ["pgd"], "robust_samples": 4, "batch_size": 64,
                              "eps_sweep": [], "check_more_steps": False}},
    }
    path = tmp_path / "dry.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_reproduce_on_every_dataset_format_survives_a_kill_and_resumes_without_recomputing(tmp_path, monkeypatch,
                                                                                           capsys):
    root = tmp_path / "data"
    as_official(monkeypatch, fabricate_all(root))
    damaged = root / "eurosat" / "2750" / "Forest" / "Forest_2.jpg"
    damaged.write_bytes(damaged.read_bytes()[:60])  # 1 of 20: left out and counted (data.max_damaged = 0.1)
    (root / "oxford-iiit-pet" / "images" / "Bengal_1.jpg").unlink()  # listed in test.txt: the copy is partial
    cfg = _config(tmp_path, root)

    stored, computed, kill = set(), [], {"at": "caltech101"}
    real_put = evaluation.AttackCells.put

    def put(self, name, pred):
        cell = (str(self.folder), name)
        computed.append(cell)
        if kill["at"] and kill["at"] in str(self.folder) and "/tecoa" in str(self.folder):
            raise KeyboardInterrupt  # killed while computing a cell of the fine-tuned model on caltech101
        real_put(self, name, pred)
        stored.add(cell)

    monkeypatch.setattr(evaluation.AttackCells, "put", put)
    assert main(["--quiet", "reproduce", "--config", cfg]) == 130
    run = tmp_path / "run"
    summary = json.loads((run / "eval" / "datasets.json").read_text())
    order = [n for n in ZEROSHOT_DATASETS if n != "oxford-pets"]
    assert summary["evaluated"] == order[:order.index("caltech101")]  # every dataset before the kill is finished
    assert "caltech101" in summary["pending"] and "Bengal_1.jpg" in summary["skipped"]["oxford-pets"]
    weights = {p: p.stat().st_mtime_ns for p in (run / "model").iterdir()}

    kill["at"], first = None, set(stored)
    computed.clear()
    assert main(["--quiet", "reproduce", "--config", cfg, "--resume"]) == 0
    assert computed and not set(computed) & first  # the rest computed, no finished cell again
    assert {p: p.stat().st_mtime_ns for p in (run / "model").iterdir()} == weights  # nor the fine-tune or export
    summary = json.loads((run / "eval" / "datasets.json").read_text())
    assert summary["evaluated"] == order and summary["pending"] == []
    assert list(summary["skipped"]) == ["oxford-pets"] and "incomplete" in summary["skipped"]["oxford-pets"]
    euro = json.loads((run / "eval" / "eurosat" / "report.json").read_text())
    assert euro["damaged"] == ["eurosat/2750/Forest/Forest_2.jpg"]
    assert "1 damaged image(s) left out" in (run / "eval" / "eurosat" / "report.md").read_text()
    compare = (run / "eval" / "compare.md").read_text()
    assert "clip" in compare and "tecoa" in compare
    out = capsys.readouterr().out
    assert "skipped oxford-pets: oxford-pets: incomplete" in out
