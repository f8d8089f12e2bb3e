"""Each method's options: a plain dataclass with types, defaults, one-line docs and range checks, importable
without torch, so ``hirobust finetune options.x=...`` is checked before anything heavy loads. The method's module
(``tecoa.py``, ...) sets it as its ``Config``. ``REGISTRY`` below is the one table of methods."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

HNSA = ("both", "up", "down", "none")  # HiRo's negative-sampling directions
PERTURBATIONS = ("universal", "leaf", "per_level", "none")  # HiRo's perturbation forms

@dataclass
class TeCoAConfig:
    eps: float = 1 / 255
    steps: int = 2
    alpha: float = 1 / 255
    logit_scale: float | None = None  # None: the head's (the model's own; 100 for OpenAI CLIP)
    level: int = 0  # the level whose text the image is aligned to (0 = leaf, as TeCoA)
    random_start: bool = True


@dataclass
class PMGConfig:
    eps: float = 1 / 255
    steps: int = 2
    alpha: float = 1 / 255
    logit_scale: float | None = 1.0  # official code: raw cosine logits; None: the head's (the model's own)
    kl_reduction: str = "sum"  # official code: sum over the batch; "batchmean": mean over samples
    w_clean: float = 1.0  # weight of KL(P_θ(x) ‖ P_θ(x_adv))
    w_orig: float = 1.0  # weight of KL(P_orig(x_adv) ‖ P_θ(x_adv))

    def __post_init__(self):
        if self.kl_reduction not in ("sum", "batchmean"):
            raise ConfigError(f"PMG option kl_reduction={self.kl_reduction!r} is not 'sum' or 'batchmean'")


@dataclass
class FAREConfig:
    eps: float = 4 / 255
    steps: int = 10
    alpha: float = 1 / 255
    momentum: float = 0.9
    momentum_mode: str = "sign"  # sign (the reference code's) | l1 (MI-FGSM)
    cache_reference: bool = True  # f_orig(x) once per training sample (deterministic in-memory data only)

    def __post_init__(self):
        if self.momentum_mode not in ("sign", "l1"):
            raise ConfigError(f"FARE option momentum_mode={self.momentum_mode!r} is not 'sign' or 'l1'")


@dataclass
class TGAConfig:
    eps: float = 1 / 255
    steps: int = 2
    alpha: float = 1 / 255
    attn_adv_weight: float = 0.08  # α
    attn_clean_weight: float = 0.05  # β
    logit_scale: float | None = None  # None: the head's (the model's own; 100 for OpenAI CLIP)
    cache_reference: bool = True


@dataclass
class HiRoConfig:
    eps: float = 1 / 255  # ε_X (pixels, L∞)
    alpha: float | None = None  # α_X (default: ε_X)
    steps: int = 3
    text_eps: float = 2e-4  # ε_T (tangent text embedding, L∞; the paper's 2e-4 is in units of w)
    text_alpha: float | None = None  # α_T (default: ε_T)
    text_eps_mode: str = "absolute"  # absolute (units of w) | relative (ε_T, α_T times each node's ‖w_n‖₂/√D)
    text_delta: str = "per_node"  # per_node | shared (one vector added to every node)
    perturbation: str = "universal"  # universal | leaf (only the leaf term) | per_level (one δ per level) | none
    hnsa: str = "both"  # both | up (parents' level) | down (children's level) | none
    hita: bool = True  # False: the leaf term only (no superclass alignment)
    image_levels: bool = False  # not in the paper: also align each single image with its level-l node, l >= 1
    lambda_vic: float = 1.0
    lambda_gap: float = 1.0
    zeta_gap: float | None = None  # default 0.05/√c
    zeta_vic: float | None = None  # default: median clean image-text distance at initialisation
    curvature: float = 1.0
    init_depth: float = 3.0  # hyperbolic depth of the median leaf text (and image) at initialisation
    clip_r: float = 3.0  # tangent norms clipped before exp₀
    tau: float = 0.07
    tau_min: float = 0.01
    tau_max: float = 1.0
    level_weights: str = "linear"  # linear: ω_l = 1 − l/(L+1) | uniform
    forest_leaf_once: bool = True  # False: plain sum over trees (the leaf term counted per tree)
    train_text_projection: bool = True
    # zero-shot safety (docs/method.md §3 [choice]; docs/hiro.md's diagnosis): what keeps classes never fine-tuned on
    text_depth: str = "fitted"  # fitted: a node's depth is α_T‖W_T T‖ | level: one learnt radius per level
    text_anchor: float = 0.0  # weight of ‖W_T − W_T⁰‖²_F / ‖W_T⁰‖²_F (W_T pulled toward its pretrained value)
    learn_tau: bool = True  # False: τ stays at its initial value
    # remove each modality's mean (images: the first batch's, texts: the seen leaves' prompts', both from the
    # pretrained model and then fixed) before the ball: the image-text offset (CLIP's modality gap) is then not
    # something fine-tuning closes for the seen prompts only
    center: bool = False
    # how the exported head reads a superclass: direct (its prompt, the paper's) | marginal (the sum of its leaves'
    # probabilities: the tree decides, so a leaf never fine-tuned on still reaches its ancestors) | poe (both)
    superclass_readout: str = "direct"
    # weight of mean_b ‖f_θ(x̂_b) − f_orig(x_b)‖² / ‖f_orig(x_b)‖² (image features kept where pretraining put them)
    image_anchor: float = 0.0
    lr_scale_head: float = 1.0  # learning-rate factor of α_I, α_T and τ (log_alpha_img, log_alpha_txt, log_tau)
    lr_scale_text: float = 1.0  # learning-rate factor of W_T (hyp.proj...)

    def __post_init__(self):
        if not 0 < float(self.curvature) < math.inf:  # as geometry.poincare.check_curvature, without torch
            raise ConfigError(f"curvature parameter c must be > 0 (the ball has curvature -c), got {self.curvature}")
        for name, value, allowed in (("hnsa", self.hnsa, HNSA), ("perturbation", self.perturbation, PERTURBATIONS),
                                     ("text_delta", self.text_delta, ("per_node", "shared")),
                                     ("level_weights", self.level_weights, ("linear", "uniform")),
                                     ("text_eps_mode", self.text_eps_mode, ("absolute", "relative")),
                                     ("text_depth", self.text_depth, ("fitted", "level")),
                                     ("superclass_readout", self.superclass_readout, ("direct", "marginal", "poe"))):
            if value not in allowed:
                raise ConfigError(f"HiRo option {name}={value!r} is not one of {allowed}")
        if self.eps < 0 or self.text_eps < 0:
            raise ConfigError("HiRo eps and text_eps must be >= 0")
        from ..checks import number

        number("options.tau", self.tau, lo=0, lo_open=True)
        number("options.tau_min", self.tau_min, lo=0, lo_open=True)
        number("options.tau_max", self.tau_max, lo=self.tau_min)
        number("options.clip_r", self.clip_r, lo=0, lo_open=True)
        number("options.init_depth", self.init_depth, lo=0, lo_open=True)
        for name in ("lambda_vic", "lambda_gap", "text_anchor", "image_anchor"):
            number(f"options.{name}", getattr(self, name), lo=0)
        for name in ("zeta_gap", "zeta_vic"):
            number(f"options.{name}", getattr(self, name), lo=0, optional=True)
        for name in ("lr_scale_head", "lr_scale_text"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"HiRo {name} must be positive and finite, got {getattr(self, name)}")


# THE method registry: name -> (its module in hirobust.methods, its class there, its config above). Adding a method =
# its module + its config dataclass + one line here; METHODS, CONFIGS, the command line's --method choices and the
# contract test (tests/test_contract_methods.py) all read this table.
REGISTRY = {
    "tecoa": ("tecoa", "TeCoA", TeCoAConfig),
    "pmg": ("pmg", "PMG", PMGConfig),
    "fare": ("fare", "FARE", FAREConfig),
    "tga": ("tga", "TGA", TGAConfig),
    "hiro": ("hiro", "HiRo", HiRoConfig),
}
CONFIGS = {name: config for name, (_, _, config) in REGISTRY.items()}


def method_config(name: str, options: dict | None = None):
    """The method's config dataclass from ``options``; unknown names or options raise ``ValueError``."""
    from dataclasses import fields

    from ..checks import attack_fields
    from ..typed import from_dict

    if name not in CONFIGS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(CONFIGS))}")
    cls = CONFIGS[name]
    known = {f.name for f in fields(cls)}
    bad = sorted(set(options or {}) - known)
    if bad:
        raise ConfigError(f"unknown option {bad[0]!r} for method {name!r}; its options: {', '.join(sorted(known))}")
    cfg = from_dict(cls, options or {}, "options")  # each option checked against its type, then its range
    attack_fields("options.", cfg)
    option_ranges(name, cfg)
    return cfg


def option_ranges(method: str, cfg) -> None:
    """The ranges every method's options share by name: a logit scale in (0, 10⁴], loss weights and a momentum
    finite and ≥ 0, a level ≥ 0 (its upper bound is the tree's depth, checked where the tree is known)."""
    for name, value in vars(cfg).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        where = f"{method} option {name}={value!r}"
        if name == "logit_scale" and not (math.isfinite(value) and 0 < value <= 1e4):
            raise ConfigError(f"{where}: a logit scale must be in (0, 10000] (CLIP's is 100); leave it out to use "
                             f"the head's own")
        if (name.startswith("w_") or name.endswith("_weight") or name == "momentum") and not (
                math.isfinite(value) and value >= 0):
            raise ConfigError(f"{where} must be finite and >= 0")
        if name == "level" and value < 0:
            raise ConfigError(f"{where}: levels count from 0 (the leaf)")
