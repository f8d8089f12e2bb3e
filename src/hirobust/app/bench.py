"""``hirobust bench``: throughput of every method against the model's own cost, on synthetic tensors.

In one run, for one model (random weights: throughput does not depend on them):
- the model's bare cost: forward, forward+backward (parameter gradients) and input-gradient passes, img/s;
- every method's training step (attack + loss + backward + optimiser step), img/s and peak memory, and its
  *fraction of ceiling*: the measured rate over the rate the passes it needs would reach at the bare cost
  (e.g. TeCoA with a 2-step attack needs 2 input-gradient passes + 1 forward+backward per image), with the bare
  passes timed in the same rounds as the step (interleaved), so a drifting machine does not skew the ratio;
- evaluation (PGD-k at one level), img/s and fraction of ceiling;
- a reference-style TeCoA step as the papers' code does it (fp16 autocast, the text features of every class
  re-encoded inside every model call, ``loss.backward()`` inside the attack), for a side-by-side ratio;
- the data loader's img/s next to the training rate;
- projections from these rates (models of 224 px and up): minutes per ImageNet-1k epoch for each method and hours
  for the paper's evaluation protocol over the 15 zero-shot datasets, on 1..8 devices (ideal linear scaling:
  training is data-parallel over the global batch, evaluation shards the images; see docs/scaling.md).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ..hierarchy import Forest, Hierarchy
from ..methods.configs import CONFIGS
from .loader_rate import jpeg_folder_rate, loader_line, loader_rate
from .markdown import rate as _r
from .markdown import table_lines
from .projection import project, projection_markdown


@dataclass
class BenchConfig:
    model: str = "hirobust-fmnist-vit"
    device: str = "auto"
    methods: list[str] = field(default_factory=lambda: list(CONFIGS))  # every registered method
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
    loader_workers: int | None = None  # DataLoader workers for the JPEG-folder loader rate; None: min(8, CPUs)
    project: bool | None = None  # time projections; None: when the model's images are 224 px or more
    devices: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # device counts for the projections


def synthetic_forest(num_classes: int, num_levels: int) -> tuple[Forest, list[str]]:
    names = [f"class {i}" for i in range(num_classes)]
    paths = {n: [f"group {i >> lvl} at level {lvl}" for lvl in range(1, num_levels)] for i, n in enumerate(names)}
    return Forest([Hierarchy.from_paths(paths, leaves=names, name="synthetic")]), names


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fns: dict, device, steps: int, warmup: int) -> dict[str, float]:
    """Seconds per call of each function: ``warmup`` calls each, then ``steps`` rounds that call every function
    once; the median per function. Interleaving makes ratios between them immune to the machine's drift (a
    method's step against the bare passes it is made of)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(steps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def _mem(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} GiB"  # None: the device has no peak counter (CPU)


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def run_bench(cfg: BenchConfig, log=print) -> dict:
    from ..methods import FrozenReference, build_method
    from ..models.clip import load_clip
    from ..models.zeroshot import build_cosine_classifier
    from ..train import Trainer, autocast_dtype, step_generator
    from .env import environment, resolve_device
    from .schema import TrainConfig

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

    bare_fns = {"forward": fwd, "forward_backward": fwd_bwd, "input_grad": input_grad}

    def timed_with_bare(fns: dict, steps: int, warmup: int) -> tuple[dict, dict]:
        """Seconds per image of ``fns`` and of the bare passes, measured in the same rounds."""
        t = _timed(fns | bare_fns, device, steps, warmup)
        return {k: t[k] / b for k in fns}, {k: t[k] / b for k in bare_fns}

    def ceiling_of(bare: dict, k: int, nfb: int, nf: int) -> float:
        return k * bare["input_grad"] + nfb * bare["forward_backward"] + nf * bare["forward"]

    def img_s(bare: dict) -> dict:
        return {f"{k}_img_s": 1 / v for k, v in bare.items()}

    _, bare = timed_with_bare({}, cfg.steps, cfg.warmup)
    res["bare"] = img_s(bare)
    log(f"bare {cfg.model} @ {size}px, batch {b}, {res['amp']}: forward {_r(1 / bare['forward'])} img/s, "
        f"forward+backward {_r(1 / bare['forward_backward'])} img/s, input-gradient {_r(1 / bare['input_grad'])} img/s")

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
        named = list(m.trainable_parameters())
        opt = trainer.optimizer(named, m)
        if m.needs_first_batch:
            m.prepare(x, y)
        m.train()

        params = [p for _, p in named]

        def step(m=m, opt=opt, trainer=trainer, params=params):  # the trainer's own step
            trainer.step(m, m, opt, params, x, y, step_generator(0, 0, device), amp=amp)

        _peak_reset(device)
        step()
        peak = _peak(device)
        times, bare_m = timed_with_bare({"step": step}, cfg.steps, cfg.warmup)
        t = times["step"]
        k, nfb, nf = m.passes()
        ceiling = ceiling_of(bare_m, k, nfb, nf)
        res["methods"][name] = {"train_img_s": 1 / t, "ceiling_img_s": 1 / ceiling, "fraction_of_ceiling": ceiling / t,
                                "passes": {"input_grad": k, "forward_backward": nfb, "forward": nf},
                                "bare": img_s(bare_m), "peak_memory_gib": peak}
        log(f"{name:6s} train {_r(1 / t):>8s} img/s   ceiling {_r(1 / ceiling):>8s} img/s   "
            f"fraction {ceiling / t:5.2f}   peak {_mem(peak)}")
        if name == "tecoa":
            tecoa_step = step  # timed again next to the reference-style step
        del m, model, ref, opt

    # ---- evaluation: PGD-k at the leaf level
    from ..attacks import level_objective, pgd

    def evaluate():
        fn = level_objective(clf, 0, y)
        with ac():
            xa = pgd(fn, x, 1 / 255, cfg.eval_steps)
            with torch.no_grad():
                clf(xa)

    clf.eval()
    _peak_reset(device)
    evaluate()
    peak = _peak(device)
    times, bare_e = timed_with_bare({"eval": evaluate}, max(2, cfg.steps // 2), 1)
    t = times["eval"]
    ceiling = ceiling_of(bare_e, cfg.eval_steps, 0, 1)
    res["evaluation"] = {"attack": f"PGD-{cfg.eval_steps}", "img_s": 1 / t, "ceiling_img_s": 1 / ceiling,
                         "fraction_of_ceiling": ceiling / t, "bare": img_s(bare_e), "peak_memory_gib": peak}
    log(f"eval PGD-{cfg.eval_steps} {_r(1 / t):>8s} img/s   ceiling {_r(1 / ceiling):>8s} img/s   "
        f"fraction {ceiling / t:5.2f}")

    # ---- the reference code's style
    if cfg.reference_style and "tecoa" in cfg.methods:
        ref_step, fp16 = reference_style_step(clip, clf, names, templates, x, y, device)
        _peak_reset(device)
        ref_step()
        peak = _peak(device)
        t = _timed({"ours": tecoa_step, "reference": ref_step}, device, cfg.steps, cfg.warmup)
        ratio = t["reference"] / t["ours"]
        res["reference_style"] = {"train_img_s": b / t["reference"], "tecoa_img_s": b / t["ours"],
                                  "tecoa_speedup": ratio, "peak_memory_gib": peak, "fp16": fp16}
        log(f"reference-style TeCoA step {_r(b / t['reference']):>8s} img/s, peak {_mem(peak)} -> ours "
            f"({_r(b / t['ours'])} img/s in the same rounds) is {ratio:.2f}x faster")

    # ---- the data loader
    workers = cfg.loader_workers if cfg.loader_workers is not None else min(8, os.cpu_count() or 1)
    res["loader"] = loader_rate(size, b) | jpeg_folder_rate(size, workers)
    log(loader_line(res["loader"]))

    if cfg.project if cfg.project is not None else size >= 224:
        res["projection"] = project(res, cfg.devices)
        for line in projection_markdown(res["projection"]):
            log(line)
    return res


def reference_style_step(clip, clf, names, templates, x, y, device) -> tuple[Callable[[], None], bool]:
    """TeCoA as its reference code runs: fp16 autocast, every class prompt re-encoded in every model call,
    ``loss.backward()`` (parameter gradients) inside the 2-step attack. Returns the step and whether fp16 is on
    (CUDA only)."""
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

    return step, enabled


def to_markdown(res: dict) -> str:
    bare = res["bare"]
    lines = [f"# hirobust bench: {res['config']['model']} @ {res['image_size']} px, batch "
             f"{res['config']['batch_size']}, {res['config']['num_classes']} classes, {res['device']}, amp "
             f"{res['amp']}{', compiled' if res['config']['compile'] else ''}", "",
             f"Bare model: forward {_r(bare['forward_img_s'])} img/s, forward+backward "
             f"{_r(bare['forward_backward_img_s'])} img/s, input-gradient {_r(bare['input_grad_img_s'])} img/s.", ""]
    rows = []
    for name, m in res["methods"].items():
        p = m["passes"]
        mem = "—" if m["peak_memory_gib"] is None else f"{m['peak_memory_gib']:.1f}"
        rows.append([name, _r(m["train_img_s"]), _r(m["ceiling_img_s"]), f"{m['fraction_of_ceiling']:.2f}",
                     f"{p['input_grad']} / {p['forward_backward']} / {p['forward']}", mem])
    lines += table_lines(["method", "train img/s", "ceiling img/s", "fraction of ceiling",
                          "passes (input-grad / fwd+bwd / fwd)", "peak GiB"], rows)
    e = res["evaluation"]
    lines += ["", f"Evaluation {e['attack']}: {_r(e['img_s'])} img/s (ceiling {_r(e['ceiling_img_s'])}, fraction "
              f"{e['fraction_of_ceiling']:.2f})."]
    if "reference_style" in res:
        r = res["reference_style"]
        lines.append(f"Reference-style TeCoA step: {_r(r['train_img_s'])} img/s, peak {_mem(r['peak_memory_gib'])}; "
                     f"ours ({_r(r['tecoa_img_s'])} img/s in the same rounds) is {r['tecoa_speedup']:.2f}x faster.")
    lines.append(loader_line(res["loader"]).replace("loader:", "Loader:", 1) + ".")
    if "projection" in res:
        lines += projection_markdown(res["projection"])
    return "\n".join(lines) + "\n"
