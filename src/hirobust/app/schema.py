"""The configs of the command line's jobs: plain dataclasses with types, defaults, one-line docs (the comment
at the end of a field's line; ``hirobust <cmd> --help`` lists them) and range checks.

This module imports neither torch nor the models, so a wrong key, type or value is reported before anything
heavy loads (``typed.from_dict`` checks types with OmegaConf; ``__post_init__`` checks ranges).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..data.registry import canonical_dataset
from ..errors import ConfigError
from ..settings import EvalConfig, TrainConfig


@dataclass
class PretrainConfig:
    model: str = "hirobust-fmnist-vit"
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    train_split: str = "train"  # fashion-mnist: the first 50,000 training images ("val" holds the rest out)
    epochs: float = 4.0
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    leaf_caption_prob: float = 0.7  # chance a caption names the class itself rather than an ancestor
    augment: bool = True  # random shifts of up to 2 px and horizontal flips
    seed: int = 0
    caption_trees: list[str] | None = None  # the trees whose nodes captions may name (None: every tree)

    def __post_init__(self):
        from ..checks import number

        number("pretrain.epochs", self.epochs, lo=0, lo_open=True)
        number("pretrain.batch_size", self.batch_size, lo=1, integer=True)
        number("pretrain.lr", self.lr, lo=0, lo_open=True)
        number("pretrain.weight_decay", self.weight_decay, lo=0)
        number("pretrain.warmup_steps", self.warmup_steps, lo=0, integer=True)
        number("pretrain.leaf_caption_prob", self.leaf_caption_prob, lo=0, hi=1)
        number("pretrain.seed", self.seed, lo=0, integer=True)

    def key(self) -> str:
        """Cache key: every field that changes the weights (the data root does not)."""
        d = asdict(self)
        d.pop("data_root")
        if d["caption_trees"] is None:  # the default: keys of models pretrained before the field existed stay
            d.pop("caption_trees")
        d = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in d.items()}  # 4 == 4.0
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class ModelConfig:
    name: str = "hirobust-fmnist-vit"
    # "default": the embedded CLIP for the embedded model, else the architecture's open_clip tag (openai first);
    # a tag, a checkpoint path, "embedded", or "random" (random weights, only when asked for)
    pretrained: str | None = "default"


@dataclass
class DataConfig:
    dataset: str = "fashion-mnist"
    root: str | None = None
    hierarchy: str | None = None  # a hierarchy JSON path instead of the dataset's shipped one
    tree: str | None = None  # the tree evaluated (default: the file's default)
    trees: list[str] | None = None  # the forest a method trains with (default: [tree])
    eval_split: str = "test"  # the split evaluated (fashion-mnist also has "val", held out of training)
    templates: list[str] | None = None  # prompt templates instead of the dataset's own (each with one "{}")
    download: bool = False  # let torchvision download datasets it can (network needed)
    num_workers: int = 4  # DataLoader workers for image-file datasets
    # the zero-shot axis: fine-tuning sees only these leaf classes (their images, names and tree nodes); the
    # others are held out, and evaluation reports seen and unseen leaves apart (None: every class is seen)
    train_classes: list[str] | None = None
    # the text prompts name classes as CLIP_benchmark does (CIFAR-100 "aquarium_fish", ImageNet's two "missile" and
    # "sunglasses"), so zero-shot numbers compare with published ones | unique: hirobust's own names (the tree's)
    prompt_names: str = "clip_benchmark"
    # Caltech-101 as CLIP_benchmark evaluates it: 102 classes, the BACKGROUND_Google folder kept as "background" (a
    # leaf of its own in every tree) | false: torchvision's 101 classes (the background images dropped)
    caltech101_background: bool = True
    # a copy with classes missing (ImageNet with some wnid folders) is refused, naming what is missing | true:
    # evaluated on what is there, and marked partial in every report and table
    allow_partial: bool = False
    # images of an evaluated split that do not decode are left out and counted (names in the run log and report);
    # above this fraction of the split the dataset is refused as damaged
    max_damaged: float = 0.001

    def __post_init__(self):
        self.dataset = canonical_dataset(self.dataset)  # CLIP_benchmark's spelling accepted (imagenet1k, pets, ...)
        from ..checks import fraction

        fraction("data.max_damaged", self.max_damaged)
        if self.prompt_names not in ("clip_benchmark", "unique"):
            raise ConfigError(f"data.prompt_names={self.prompt_names!r}: use clip_benchmark or unique")


@dataclass
class FinetuneConfig:
    out: str = "runs/finetune"
    device: str = "auto"
    method: str = "tecoa"
    options: dict = field(default_factory=dict)  # the method's own config fields
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reference: ModelConfig | None = None  # the frozen reference (default: a copy of the starting model)


@dataclass
class EvaluateSpec:
    datasets: list[str] = field(default_factory=lambda: ["all"])
    include_clip: bool = True  # evaluate the starting model too
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class ReproduceConfig:
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateSpec = field(default_factory=EvaluateSpec)
