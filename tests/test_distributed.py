"""Data-parallel training with torchrun's environment: 2 CPU processes (gloo) follow the same loss curve as one
process with the same global batch and seed; evaluation shards and gathers exact totals."""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TOL = 1e-4  # relative; the all-reduce sums in another order than one process does


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, world: int, port: int, fn, arg, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        queue.put((rank, fn(arg)))
    except Exception as e:  # report the child's error to the test
        queue.put((rank, {"error": repr(e)}))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train_and_eval(out_dir: str) -> dict:
    from hirobust.app.env import resolve_device
    from hirobust.data import dataset_forest, make_synthetic
    from hirobust.evaluate import evaluate_model
    from hirobust.methods import build_method
    from hirobust.models.clip import load_clip
    from hirobust.models.zeroshot import build_cosine_classifier
    from hirobust.settings import EvalConfig, TrainConfig
    from hirobust.train import Trainer

    device = resolve_device("cpu")  # joins the process group when WORLD_SIZE > 1
    torch.manual_seed(0)
    clip = load_clip("hirobust-tiny")
    train, test = make_synthetic("train", n_per_class=16), make_synthetic("test", n_per_class=8)
    forest = dataset_forest(train)
    clf = build_cosine_classifier(clip, forest, train.templates)
    m = build_method("tecoa", clf, forest, {"eps": 4 / 255, "random_start": False})
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer="adamw", lr=2e-3, log_every=1)
    s = Trainer(cfg, device).fit(m, train, out_dir, progress=False)
    ev = evaluate_model(clf, test, forest[0], EvalConfig(eps=2 / 255, steps=2, robust_samples=50, batch_size=16),
                        device, progress=False)
    return {"loss": [h["loss"] for h in s["history"]], "clean": ev["clean"], "samples": ev["samples"],
            "weights": {k: v.numpy().copy() for k, v in clf.visual.state_dict().items()},  # by value through a queue
            "logits": torch.cat(clf(next(test.batches(32))[0]), dim=1).detach().numpy().copy()}


def _spawn(world: int, fn, arg) -> dict[int, dict]:
    """``fn(arg)`` in ``world`` spawned processes of one gloo group: {rank: result}."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_run, args=(r, world, port, fn, arg, queue)) for r in range(world)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert not any("error" in r for r in results.values()), results
    return results


def _attacked(args: tuple[int, int]) -> dict:
    """Per-image predictions of a fixed (briefly trained) model under PGD (1 step from a random start, so the start
    matters), CW and random noise, on n images in batches of 16 (n = 40: 3 batches, the last one short, and 2 ranks
    get 1 and 2 of them; n = 16: one batch, rank 0 gets none); ``args`` = (seed, n)."""
    seed, n = args
    from hirobust.app.env import resolve_device
    from hirobust.data import dataset_forest, make_synthetic
    from hirobust.evaluate import attacked_predictions, noise_accuracy, predict
    from hirobust.models.clip import load_clip
    from hirobust.models.zeroshot import build_cosine_classifier
    from hirobust.settings import EvalConfig

    device = resolve_device("cpu")
    torch.manual_seed(0)
    clip = load_clip("hirobust-tiny")
    train, data = make_synthetic("train", n_per_class=16), make_synthetic("test", n_per_class=8).seeded_subset(n, 0)
    hier = dataset_forest(data)[0]
    clf = build_cosine_classifier(clip, dataset_forest(data), data.templates)
    opt = torch.optim.Adam(clf.visual.parameters(), lr=2e-3)  # 40 clean steps, the same in every process
    for epoch in range(10):
        for x, y in train.batches(32, shuffle=True, generator=torch.Generator().manual_seed(epoch)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(clf(x)[0], y).backward()
            opt.step()
    clf.eval()
    cfg = EvalConfig(eps=8 / 255, steps=1, batch_size=16, seed=seed)
    out = {"clean": predict(clf, data, hier.name, 16, device, progress=False)[0].tolist(),  # by value (a queue)
           "noise": noise_accuracy(clf, data, hier, cfg, device)}
    for attack in ("pgd", "cw"):
        out[attack] = attacked_predictions(clf, data, hier, 0, cfg.eps, cfg, device, attack, progress=False,
                                           attack=attack).tolist()
    return out


@pytest.mark.slow
def test_evaluation_does_not_depend_on_the_number_of_ranks():
    torch.set_num_threads(1)  # as the ranks run (thread counts may change float rounding)
    try:
        single, other_seed, one_batch = _attacked((0, 40)), _attacked((1, 40)), _attacked((0, 16))
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
    # the random start matters here (so equal results below are not a matter of course) ...
    assert single["pgd"] != other_seed["pgd"]
    two = _spawn(2, _attacked, (0, 40))
    for rank in (0, 1):  # ... and every rank gathers exactly the single process's per-image predictions
        assert two[rank] == single, rank
    # one batch for two ranks: rank 0 has nothing to do and still gathers every prediction
    two = _spawn(2, _attacked, (0, 16))
    assert two[0] == two[1] == one_batch


@pytest.mark.slow
def test_two_processes_follow_the_single_process_loss_curve(tmp_path):
    single = _train_and_eval(str(tmp_path / "one"))
    results = _spawn(2, _train_and_eval, str(tmp_path / "two"))
    two = results[0]
    assert len(two["loss"]) == len(single["loss"]) == 2 * (128 // 32)
    for a, b in zip(two["loss"], single["loss"]):
        assert a == pytest.approx(b, rel=TOL)
    for k in single["weights"]:  # the ranks hold identical weights
        assert (results[0]["weights"][k] == results[1]["weights"][k]).all(), k
    # ... and compute what the single process computes (compared through outputs: the attention key bias has an
    # exactly-zero gradient, so Adam moves it by ±lr on float noise, differently in each run, without effect)
    assert torch.allclose(torch.from_numpy(two["logits"]), torch.from_numpy(single["logits"]), rtol=1e-3, atol=1e-3)
    # evaluation: every image counted once, clean accuracy exactly the single process's
    assert two["samples"] == single["samples"] and results[1]["clean"] == two["clean"]
    for b, acc in single["clean"].items():
        assert two["clean"][b] == pytest.approx(acc, abs=1 / 64 + 1e-9)  # weights equal up to float rounding


def test_ranks_take_whole_batches_in_order_and_idle_ranks_are_named(monkeypatch):
    from hirobust import distributed
    from hirobust.data import make_synthetic
    from hirobust.evaluate import _shard

    data = make_synthetic("test", n_per_class=5)  # 40 images: batches of 16 are [0, 16), [16, 32), [32, 40)
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "world", lambda: 4)
    parts = []
    for r in range(4):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        if r == 0:
            with pytest.warns(UserWarning, match=r"3 batch\(es\) of 16 for 4 ranks, so 1 rank\(s\) wait; set "
                                                 r"eval.batch_size=10"):
                part, first = _shard(data, 16)
        else:
            part, first = _shard(data, 16)
        parts.append((len(part), first))
    assert parts == [(0, 0), (16, 0), (16, 1), (8, 2)]  # every image once, in order, in the one-process batches


def test_the_command_line_under_torchrun_trains_and_evaluates_like_one_process(tmp_path):
    """`torchrun -m hirobust finetune/evaluate` as a user runs it (2 CPU ranks, gloo): rank 0 owns the run
    directory from the first second (the other ranks never claim it), one summary is printed, and the evaluation's
    report equals one process's."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    torchrun = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ft = ["-m", "hirobust", "--quiet", "finetune", "--method", "tecoa", "--out", str(tmp_path / "run"),
          "model.name=hirobust-tiny", "model.pretrained=random", "data.dataset=synthetic", "train.epochs=1",
          "train.batch_size=32", "options.eps=4/255"]
    p = subprocess.run(torchrun + ft, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("fine-tuned tecoa") == 1  # rank 0's summary only
    assert (tmp_path / "run" / "hirobust.json").is_file()

    def ev(out, launcher):
        cmd = launcher + ["-m", "hirobust", "--quiet", "evaluate", "--model", f"t={tmp_path / 'run'}", "--out",
                          str(tmp_path / out), "data.dataset=synthetic", "eval.steps=2", "eval.robust_samples=48",
                          "eval.batch_size=16"]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.count("report:") == 1
        models = json.loads((tmp_path / out / "report.json").read_text())["models"]
        return {n: {k: v for k, v in m.items() if k != "seconds"} for n, m in models.items()}

    assert ev("ev2", torchrun) == ev("ev1", [sys.executable])


def _check_images(args: tuple[str, list[str]]) -> dict:
    """Decode-check ``files`` with a fresh cache; how many images this rank decoded and what it learned."""
    cache, files = args
    os.environ["HIROBUST_CACHE"] = cache
    from hirobust.app.env import resolve_device
    from hirobust.data import check

    resolve_device("cpu")
    decoded, real = [], check._Probe.__getitem__

    def counted(self, i):
        decoded.append(i)
        return real(self, i)

    check._Probe.__getitem__ = counted
    bad = check.unreadable([Path(f) for f in files], workers=0, progress=False)
    return {"decoded": len(decoded), "bad": sorted(bad)}


def _images(folder: Path, n: int) -> list[str]:
    from PIL import Image

    files = [str(folder / "img" / f"{i}.png") for i in range(n)]
    (folder / "img").mkdir()
    for i, f in enumerate(files):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(f)
    return files


def test_ranks_split_the_image_decode_check_and_share_what_they_found(tmp_path):
    """Under torchrun each image is decoded once in all (not once per rank), and every rank knows every damaged one."""
    files = _images(tmp_path, 9)
    for i in (2, 7):  # damaged: one on each rank
        Path(files[i]).write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 10)
    two = _spawn(2, _check_images, (str(tmp_path / "cache"), files))
    assert two[0]["decoded"] + two[1]["decoded"] == 9 and min(two[0]["decoded"], two[1]["decoded"]) == 4
    assert two[0]["bad"] == two[1]["bad"] == [2, 7]
    # kept: a single process afterwards decodes nothing and knows the same
    assert _spawn(1, _check_images, (str(tmp_path / "cache"), files))[0] == {"decoded": 0, "bad": [2, 7]}


def test_a_rank_without_the_kept_check_makes_every_rank_decode_again(tmp_path):
    """Ranks on nodes with their own caches: when one rank lacks the kept answer, all decode (none waits alone)."""
    files = _images(tmp_path, 4)
    _spawn(1, _check_images, (str(tmp_path / "cache0"), files))  # rank 0's cache has it, rank 1's does not
    two = _spawn(2, _check_images_per_rank, (str(tmp_path / "cache"), files))
    assert two[0]["decoded"] + two[1]["decoded"] == 4 and two[0]["bad"] == two[1]["bad"] == []


def _check_images_per_rank(args: tuple[str, list[str]]) -> dict:
    cache, files = args
    return _check_images((f"{cache}{os.environ['RANK']}", files))
