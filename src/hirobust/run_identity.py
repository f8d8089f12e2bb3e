"""What makes a training run the same run (resuming it) and how to say what changed when it is not."""

from __future__ import annotations

NOT_TRAINING = {"config": ("ckpt_every", "log_every", "report_to", "val_every", "val_samples", "val_steps",
                            "val_split"),  # logging, checkpoint and validation intervals
                 "data": ("num_workers", "download", "max_damaged")}  # how data is read or checked, not which


def same_run(identity: dict) -> dict:
    """What must match to resume: the run's identity without what does not change the training (the logging and
    checkpoint intervals; how the data is read or its evaluated splits checked; such a field added to hirobust
    after the checkpoint was written does not make it another run)."""
    cfg = {k: v for k, v in identity.get("config", {}).items() if k not in NOT_TRAINING["config"]}
    describe = dict(identity.get("describe") or {})
    if isinstance(describe.get("data"), dict):
        describe["data"] = {k: v for k, v in describe["data"].items() if k not in NOT_TRAINING["data"]}
    return {**identity, "config": cfg, "describe": describe}


_WHAT = {"describe.inputs.tree": "the tree (its content)", "describe.inputs.pretrained": "the pretrained checkpoint "
         "(its content)", "describe.inputs.reference": "the reference model (its content)", "describe.method": "the "
         "method", "samples": "the training set", "total_steps": "the number of steps"}


def first_difference(old, new, path: str = "") -> str | None:
    """``"<what> changed (was A, now B)"`` for the first key where two JSON values differ; None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in old or k not in new:
                return f"{_WHAT.get(sub, sub)} changed ({'new key' if k not in old else 'key removed'})"
            d = first_difference(old[k], new[k], sub)
            if d:
                return d
        return None
    if old != new:
        show = (lambda v: (str(v)[:12] + "…") if len(str(v)) > 40 else str(v))
        return f"{_WHAT.get(path, path)} changed (was {show(old)}, now {show(new)})"
    return None
