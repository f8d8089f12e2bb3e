"""``hirobust bench``: throughput of every method against the model's own cost, on synthetic tensors.

In one run, for one model (random weights: throughput does not depend on them):
- the model's bare cost: forward, forward+backward (parameter gradients) and input-gradient passes, img/s;
- every method's training step (attack + loss + backward + optimiser step), img/s and peak memory, and its
  *fraction of ceiling*: the measured rate over the rate the passes it needs would reach at the bare cost
  (e.g. TeCoA with a 2-step attack needs 2 input-gradient passes + 1 forward+backward per image);
- evaluation (PGD-k at one level), img/s and fraction of ceiling;
- a reference-style TeCoA step as the papers' code does it (fp16 autocast, the text features of every class
  re-encoded inside every model call, ``loss.backward()`` inside the attack), for a side-by-side ratio;
- the data loader's img/s next to the training rate.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from .hierarchy import Forest, Hierarchy


@dataclass
class BenchConfig:
    model: str = "hirobust-fmnist-vit"
    device: str = "auto"
    methods: list[str] = field(default_factory=lambda: ["tecoa", "pmg", "fare", "tga", "hiro"])
    batch_size: int = 256
    num_classes: int = 10
    num_levels: int = 3  # the synthetic hierarchy over the classes (level l node = class >> l)
    steps: int = 5  # timed steps per measurement (after warm-up)
    warmup: int = 2
    eval_steps: int = 20
    amp: str = "auto"  # auto: bf16 on CUDA, off on CPU | bf16 | fp16 | off
    compile: bool = False  # torch.compile the image tower
    reference_style: bool = True
    threads: int | None = None
    out: str = "runs/bench"
    options: dict = field(default_factory=dict)  # per-method options, e.g. {hiro: {steps: 3}}


def synthetic_forest(num_classes: int, num_levels: int) -> tuple[Forest, list[str]]:
    names = [f"class {i}" for i in range(num_classes)]
    paths = {n: [f"group {i >> lvl} at level {lvl}" for lvl in range(1, num_levels)] for i, n in enumerate(names)}
    return Forest([Hierarchy.from_paths(paths, leaves=names, name="synthetic")]), names


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, steps: int, warmup: int) -> float:
    """Seconds per call (median of ``steps`` after ``warmup``)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


# passes per image of each method's training step: (input-gradient passes, forward+backward, extra forwards)
def passes(name: str, method) -> tuple[int, int, int]:
    c = method.cfg
    if name == "tecoa":
        return c.steps, 1, 0
    if name == "pmg":
        return c.steps, 2, 1  # adv + clean in one 2B pass; the frozen model on x_adv
    if name == "fare":
        return c.steps, 1, 0 if c.cache_reference else 1
    if name == "tga":
        return c.steps, 2, 0 if c.cache_reference else 1
    if name == "hiro":
        k = c.steps * (1 if c.perturbation != "per_level" else method.trees[0].L + 1)
        return k, 1 if c.perturbation != "per_level" else method.trees[0].L + 1, 0
    return c.steps, 1, 0


def run_bench(cfg: BenchConfig, log=print) -> dict:
    from .methods import FrozenReference, build_method
    from .models.clip import load_clip
    from .models.zeroshot import build_cosine_classifier
    from .pipeline import environment, resolve_device
    from .train import TrainConfig, Trainer, autocast_dtype, step_generator

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    amp = autocast_dtype(cfg.amp, device)
    torch.manual_seed(0)
    clip = load_clip(cfg.model, None, device=device)
    forest, names = synthetic_forest(cfg.num_classes, cfg.num_levels)
    templates = ["a photo of a {}."]
    clf = build_cosine_classifier(clip, forest, templates)
    size = clip.image_size
    b = cfg.batch_size
    x = torch.rand(b, 3, size, size, device=device)
    y = torch.randint(cfg.num_classes, (b,), device=device)
    if cfg.compile:
        clf.visual = torch.compile(clf.visual)
    ac = (lambda: torch.autocast(device.type, dtype=amp, enabled=amp is not None))
    res: dict = {"config": asdict(cfg), "environment": environment(), "device": str(device),
                 "amp": str(amp).replace("torch.", "") if amp else "off", "image_size": size}

    # ---- the bare model
    params = [p for p in clf.visual.parameters()]

    def fwd():
        with torch.no_grad(), ac():
            clf(x)

    def fwd_bwd():
        with ac():
            loss = clf(x)[0].float().logsumexp(1).mean()
        loss.backward()
        for p in params:
            p.grad = None

    def input_grad():
        xx = x.clone().requires_grad_(True)
        with ac():
            loss = clf(xx)[0].float().logsumexp(1).sum()
        torch.autograd.grad(loss, xx)

    t_f = _timed(fwd, device, cfg.steps, cfg.warmup) / b
    t_fb = _timed(fwd_bwd, device, cfg.steps, cfg.warmup) / b
    t_ig = _timed(input_grad, device, cfg.steps, cfg.warmup) / b
    res["bare"] = {"forward_img_s": 1 / t_f, "forward_backward_img_s": 1 / t_fb, "input_grad_img_s": 1 / t_ig}
    log(f"bare {cfg.model} @ {size}px, batch {b}, {res['amp']}: forward {1 / t_f:.0f} img/s, forward+backward "
        f"{1 / t_fb:.0f} img/s, input-gradient {1 / t_ig:.0f} img/s")

    # ---- every method's training step
    res["methods"] = {}
    tcfg = TrainConfig(optimizer="adamw", lr=1e-5, amp=cfg.amp)
    for name in cfg.methods:
        model = copy.deepcopy(clf)
        clip_m = copy.copy(clip)
        clip_m.model = copy.deepcopy(clip.model)
        clip_m.model.visual = model.visual
        ref = FrozenReference(model)
        opts = dict(cfg.options.get(name, {}))
        m = build_method(name, model, forest, opts, reference=ref, clip=clip_m).to(device)
        trainer = Trainer(tcfg, device)
        opt = trainer._optimizer([p for _, p in m.trainable_parameters()])
        if hasattr(m, "prepare"):
            m.prepare(x, y)
        m.train()

        def step(m=m, opt=opt):
            with ac():
                out = m(x, y, generator=step_generator(0, 0, device))
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            m.after_step()

        _peak_reset(device)
        t = _timed(step, device, cfg.steps, cfg.warmup) / b
        k, nfb, nf = passes(name, m)
        ceiling = k * t_ig + nfb * t_fb + nf * t_f
        res["methods"][name] = {"train_img_s": 1 / t, "ceiling_img_s": 1 / ceiling, "fraction_of_ceiling": ceiling / t,
                                "passes": {"input_grad": k, "forward_backward": nfb, "forward": nf},
                                "peak_memory_gib": _peak(device)}
        log(f"{name:6s} train {1 / t:8.0f} img/s   ceiling {1 / ceiling:8.0f} img/s   "
            f"fraction {ceiling / t:5.2f}   peak {_peak(device) or 0:.1f} GiB")
        del m, model, ref, opt

    # ---- evaluation: PGD-k at the leaf level
    from .attacks import level_objective, pgd

    def evaluate():
        fn = level_objective(clf, 0, y)
        with ac():
            xa = pgd(fn, x, 1 / 255, cfg.eval_steps)
            with torch.no_grad():
                clf(xa)

    clf.eval()
    _peak_reset(device)
    t = _timed(evaluate, device, max(2, cfg.steps // 2), 1) / b
    ceiling = cfg.eval_steps * t_ig + t_f
    res["evaluation"] = {"attack": f"PGD-{cfg.eval_steps}", "img_s": 1 / t, "ceiling_img_s": 1 / ceiling,
                         "fraction_of_ceiling": ceiling / t, "peak_memory_gib": _peak(device)}
    log(f"eval PGD-{cfg.eval_steps} {1 / t:8.0f} img/s   ceiling {1 / ceiling:8.0f} img/s   "
        f"fraction {ceiling / t:5.2f}")

    # ---- the reference code's style
    if cfg.reference_style and "tecoa" in cfg.methods:
        res["reference_style"] = reference_style_step(clip, clf, names, templates, x, y, device, cfg)
        ratio = res["methods"]["tecoa"]["train_img_s"] / res["reference_style"]["train_img_s"]
        res["reference_style"]["tecoa_speedup"] = ratio
        log(f"reference-style TeCoA step {res['reference_style']['train_img_s']:8.0f} img/s, peak "
            f"{res['reference_style']['peak_memory_gib'] or 0:.1f} GiB -> ours is {ratio:.2f}x faster")

    # ---- the data loader
    res["loader"] = loader_rate(size, b)
    log(f"loader: in-memory {res['loader']['in_memory_img_s']:.0f} img/s")
    return res


def reference_style_step(clip, clf, names, templates, x, y, device, cfg) -> dict:
    """TeCoA as its reference code runs: fp16 autocast, every class prompt re-encoded in every model call,
    ``loss.backward()`` (parameter gradients) inside the 2-step attack."""
    model = copy.deepcopy(clip.model).to(device)
    opt = torch.optim.SGD(model.visual.parameters(), lr=1e-5, momentum=0.9)
    tokens = clip.tokenizer([templates[0].format(n) for n in names]).to(device)
    mean, std = clf.mean, clf.std
    enabled = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=enabled)

    def logits(xx):
        img = F.normalize(model.encode_image((xx - mean) / std), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)  # recomputed at every call
        return 100 * img @ txt.t()

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=enabled):
            delta = torch.empty_like(x).uniform_(-1 / 255, 1 / 255).requires_grad_(True)
            for _ in range(2):
                loss = F.cross_entropy(logits((x + delta).clamp(0, 1)), y)
                loss.backward()  # parameter gradients too, as the reference does
                delta = (delta + 1 / 255 * delta.grad.sign()).clamp(-1 / 255, 1 / 255).detach().requires_grad_(True)
            opt.zero_grad()
            loss = F.cross_entropy(logits((x + delta).clamp(0, 1)), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    _peak_reset(device)
    t = _timed(step, device, cfg.steps, cfg.warmup) / x.shape[0]
    return {"train_img_s": 1 / t, "peak_memory_gib": _peak(device), "fp16": enabled}


def loader_rate(size: int, batch: int, n: int = 4096) -> dict:
    from .data import ZSDataset

    ds = ZSDataset("bench", ["a"], ["{}"], {"paths": {"a": []}}, labels=torch.zeros(n, dtype=torch.long),
                   images=torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8))
    t = time.perf_counter()
    seen = sum(xb.shape[0] for xb, _ in ds.batches(batch, shuffle=True, generator=torch.Generator().manual_seed(0)))
    return {"in_memory_img_s": seen / (time.perf_counter() - t)}


def to_markdown(res: dict) -> str:
    bare = res["bare"]
    lines = [f"# hirobust bench: {res['config']['model']} @ {res['image_size']} px, batch "
             f"{res['config']['batch_size']}, {res['config']['num_classes']} classes, {res['device']}, amp "
             f"{res['amp']}{', compiled' if res['config']['compile'] else ''}", "",
             f"Bare model: forward {bare['forward_img_s']:.0f} img/s, forward+backward "
             f"{bare['forward_backward_img_s']:.0f} img/s, input-gradient {bare['input_grad_img_s']:.0f} img/s.", "",
             "| method | train img/s | ceiling img/s | fraction of ceiling | passes (input-grad / fwd+bwd / fwd) "
             "| peak GiB |", "|---|---|---|---|---|---|"]
    for name, m in res["methods"].items():
        p = m["passes"]
        mem = "—" if m["peak_memory_gib"] is None else f"{m['peak_memory_gib']:.1f}"
        lines.append(f"| {name} | {m['train_img_s']:.0f} | {m['ceiling_img_s']:.0f} | {m['fraction_of_ceiling']:.2f} | "
                     f"{p['input_grad']} / {p['forward_backward']} / {p['forward']} | {mem} |")
    e = res["evaluation"]
    lines += ["", f"Evaluation {e['attack']}: {e['img_s']:.0f} img/s (ceiling {e['ceiling_img_s']:.0f}, fraction "
              f"{e['fraction_of_ceiling']:.2f})."]
    if "reference_style" in res:
        r = res["reference_style"]
        mem = "—" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f} GiB"
        lines.append(f"Reference-style TeCoA step: {r['train_img_s']:.0f} img/s, peak {mem}; ours is "
                     f"{r['tecoa_speedup']:.2f}x faster.")
    lines.append(f"Loader (in memory): {res['loader']['in_memory_img_s']:.0f} img/s.")
    return "\n".join(lines) + "\n"
