"""The parameters of the library's trainer (:class:`TrainConfig`) and evaluator (:class:`EvalConfig`): plain
dataclasses with types, defaults, one-line docs (the comment at the end of a field's line) and range checks.

torch-free, so the application checks a job's config before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError

ATTACKS = ("pgd", "cw", "autoattack")
AUTOATTACK_VERSIONS = ("reduced", "standard")


@dataclass
class TrainConfig:
    epochs: float = 1.0
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 1e-5
    momentum: float = 0.9  # sgd
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adamw
    schedule: str = "cosine"  # cosine | constant
    warmup_steps: int = 0
    grad_clip: float | None = None
    ckpt_every: int = 0  # steps between checkpoints (0: only at the end)
    seed: int = 0
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU) | bf16 | fp16 | off
    train_samples: int | None = None  # a seeded subset of the training split (None: all)
    log_every: int = 20
    max_steps: int | None = None  # cap on total steps (after epochs)
    compile: bool = False  # torch.compile the image tower (GPU; the first steps pay the compilation)
    report_to: str = "csv"  # csv: <run>/train.csv (always written) | tensorboard: also <run>/tb/ event files
    # periodic validation (app/validation.py): every val_every steps (0: never), clean and PGD-val_steps accuracy
    # per level on val_samples images of val_split (the training classes), into <run>/val.csv (and TensorBoard)
    val_every: int = 0
    val_samples: int = 256
    val_steps: int = 3
    val_split: str = "val"

    def __post_init__(self):
        from .checks import number

        number("train.epochs", self.epochs, lo=0, lo_open=True)
        number("train.lr", self.lr, lo=0, hi=1e3, lo_open=True)  # above 10³: a typo, and lr × scale overflows
        number("train.batch_size", self.batch_size, lo=1, integer=True)
        number("train.momentum", self.momentum, lo=0, hi=1)
        number("train.weight_decay", self.weight_decay, lo=0)
        number("train.warmup_steps", self.warmup_steps, lo=0, integer=True)
        number("train.grad_clip", self.grad_clip, lo=0, lo_open=True, optional=True)
        number("train.ckpt_every", self.ckpt_every, lo=0, integer=True)
        number("train.seed", self.seed, lo=0, hi=2**32 - 1, integer=True)  # seeds derived from it stay in range
        number("train.train_samples", self.train_samples, lo=1, integer=True, optional=True)
        number("train.log_every", self.log_every, lo=1, integer=True)
        number("train.max_steps", self.max_steps, lo=1, integer=True, optional=True)
        number("train.val_every", self.val_every, lo=0, integer=True)
        number("train.val_samples", self.val_samples, lo=1, integer=True)
        number("train.val_steps", self.val_steps, lo=1, integer=True)
        if self.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use 'sgd' or 'adamw'")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"unknown schedule {self.schedule!r}; use 'cosine' or 'constant'")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ConfigError(f"unknown amp {self.amp!r}; use auto, bf16, fp16 or off")
        if self.report_to not in ("csv", "tensorboard"):
            raise ConfigError(f"train.report_to={self.report_to!r}: use csv or tensorboard")
        import importlib.util

        if self.report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("train.report_to=tensorboard needs the package tensorboard: pip install tensorboard "
                             "(train.csv is written either way)")
        if self.batch_size < 1 or self.lr <= 0 or self.epochs <= 0:
            raise ConfigError("batch_size, lr and epochs must be positive")
        from .checks import numbers

        numbers("train.betas", self.betas, lo=0, hi=1)
        if len(self.betas) != 2 or max(self.betas) >= 1:
            raise ConfigError(f"train.betas={list(self.betas)}: AdamW takes two values in [0, 1), e.g. [0.9, 0.999]")
        self.betas = tuple(self.betas)


@dataclass
class EvalConfig:
    eps: float = 1 / 255
    steps: int = 20
    alpha: float | None = None  # default eps / 4
    norm: str = "linf"
    attacks: list[str] = field(default_factory=lambda: ["pgd"])  # pgd (CE) | cw (margin) | autoattack; first = main
    attack_levels: list[int] | None = None  # None: every level
    robust_samples: int | None = 1000  # seeded subset for attacks (None: all)
    autoattack_samples: int | None = None  # a smaller seeded subset for AutoAttack (None: robust_samples)
    autoattack_levels: list[int] | None = None  # levels AutoAttack attacks (None: every level; -1: the top)
    autoattack_iters: int = 100  # APGD iterations per run (AutoAttack's standard: 100)
    # reduced: APGD-CE + APGD-T, one restart (the robust-CLIP papers' form); standard: the authors' standard version
    # as RobustBench runs it (APGD-CE, APGD-T, FAB-T, Square); every report names which ran
    autoattack_version: str = "reduced"
    clean_samples: int | None = None  # None: the whole split
    eps_sweep: list[float] = field(default_factory=list)  # extra eps for PGD at eps_sweep_levels (the report's sweep)
    eps_sweep_levels: list[int] = field(default_factory=lambda: [0])  # attacked levels of the sweep (-1: the top)
    sweep_samples: int | None = 500
    check_more_steps: bool = False  # sanity check: leaf PGD with 2x steps must not help the model beyond noise
    batch_size: int = 500
    seed: int = 0
    amp: str = "off"  # off: attacks in float32 (docs/method.md §5) | bf16: autocast (shown equal in the benchmark)

    def __post_init__(self):
        from .checks import number, numbers

        if isinstance(self.eps, (int, float)) and self.eps < 0:  # the message older configs and tests know
            raise ConfigError(f"eps must be >= 0 (got eps={self.eps}, eps_sweep={self.eps_sweep})")
        number("eval.eps", self.eps, lo=0)
        numbers("eval.eps_sweep", self.eps_sweep, lo=0)
        from .checks import pixel_units

        for key, v in [("eval.eps", self.eps), ("eval.alpha", self.alpha), *(("eval.eps_sweep", e) for e in
                                                                             self.eps_sweep)]:
            pixel_units(key, v, self.norm)
        number("eval.steps", self.steps, lo=0, integer=True)
        number("eval.alpha", self.alpha, lo=0, lo_open=True, optional=True)
        for key in ("robust_samples", "autoattack_samples", "clean_samples", "sweep_samples"):
            number(f"eval.{key}", getattr(self, key), lo=1, integer=True, optional=True)
        number("eval.autoattack_iters", self.autoattack_iters, lo=1, integer=True)
        number("eval.batch_size", self.batch_size, lo=1, integer=True)
        number("eval.seed", self.seed, lo=0, integer=True)
        numbers("eval.eps_sweep_levels", self.eps_sweep_levels, lo=-1, integer=True)
        if self.attack_levels is not None:
            numbers("eval.attack_levels", self.attack_levels, lo=0, integer=True)
        if self.autoattack_levels is not None:
            numbers("eval.autoattack_levels", self.autoattack_levels, lo=-1, integer=True)
        if isinstance(self.attacks, str):
            raise ConfigError(f"eval.attacks={self.attacks!r}: must be a list, e.g. [{self.attacks}]")
        if not self.attacks:
            raise ConfigError(f"eval.attacks=[]: name at least one attack of {ATTACKS}")
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise ConfigError(f"unknown attack {bad[0]!r} in eval.attacks; use one or more of {ATTACKS}")
        if self.autoattack_version not in AUTOATTACK_VERSIONS:
            raise ConfigError(f"eval.autoattack_version={self.autoattack_version!r}: use one of {AUTOATTACK_VERSIONS}")
        if self.amp not in ("off", "bf16"):
            raise ConfigError(f"eval amp must be 'off' or 'bf16', got {self.amp!r}")
        if self.norm not in ("linf", "l2"):
            raise ConfigError(f"eval.norm={self.norm!r}: use 'linf' or 'l2'")
