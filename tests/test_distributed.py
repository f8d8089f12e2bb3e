"""Data-parallel training with torchrun's environment: 2 CPU processes (gloo) follow the same loss curve as one
process with the same global batch and seed; evaluation shards and gathers exact totals."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TOL = 1e-4  # relative; the all-reduce sums in another order than one process does


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, world: int, port: int, out_dir: str, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        queue.put((rank, _train_and_eval(out_dir)))
    except Exception as e:  # report the child's error to the test
        queue.put((rank, {"error": repr(e)}))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train_and_eval(out_dir: str) -> dict:
    from hirobust.data import dataset_forest, make_synthetic
    from hirobust.evaluate import EvalConfig, evaluate_model
    from hirobust.methods import build_method
    from hirobust.models.clip import load_clip
    from hirobust.models.zeroshot import build_cosine_classifier
    from hirobust.pipeline import resolve_device
    from hirobust.train import TrainConfig, Trainer

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


@pytest.mark.slow
def test_two_processes_follow_the_single_process_loss_curve(tmp_path):
    single = _train_and_eval(str(tmp_path / "one"))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_run, args=(r, 2, port, str(tmp_path / "two"), queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert "error" not in results[0] and "error" not in results[1], results
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
