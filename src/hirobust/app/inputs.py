"""Configs to inputs: the pretrained weights a model config names, the dataset and the trees a data config names."""

from __future__ import annotations

from ..data import ZSDataset, dataset_forest, get_dataset
from ..errors import ConfigError
from ..hierarchy import Forest
from .schema import DataConfig, ModelConfig


def default_pretrained(name: str) -> str:
    """What ``model.pretrained=default`` means for architecture ``name``: ``embedded`` for the embedded model,
    else its open_clip tag (``openai`` when it has one). No default: a ``ValueError`` saying what to pass."""
    import open_clip

    from .schema import PretrainConfig

    if name == PretrainConfig().model:
        return "embedded"
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tags:
        return "openai" if "openai" in tags else tags[0]
    raise ConfigError(f"model {name!r} has no default pretrained weights; give model.pretrained=TAG, a checkpoint path "
                     f"or 'embedded', or model.pretrained=random to fine-tune from random weights")


def resolve_pretrained(model: ModelConfig, progress: bool = True, device="cpu") -> str | None:
    """``"default"`` -> :func:`default_pretrained`; ``"random"`` -> None (random weights, logged);
    ``"embedded"`` -> the cached embedded CLIP (pretraining it first if needed); anything else as given."""
    import logging

    pretrained = model.pretrained if model.pretrained is not None else "default"
    from ..models.clip import SCHEMAS

    if model.name.startswith(SCHEMAS) and pretrained == "default":
        return None  # hf-hub:/local-dir: names carry their own weights
    if pretrained == "default":
        pretrained = default_pretrained(model.name)
    if pretrained == "random":
        logging.getLogger("hirobust").warning("model %s starts from RANDOM weights (model.pretrained=random)",
                                              model.name)
        return None
    if pretrained != "embedded":
        return pretrained
    from .pretrain import pretrain
    from .schema import PretrainConfig

    path, _ = pretrain(PretrainConfig(model=model.name), device=str(device), progress=progress)
    return str(path)


def trees_of(data_cfg: DataConfig, ds: ZSDataset) -> tuple[Forest, Forest]:
    """(evaluation tree as a one-tree forest, training forest)."""
    from ..hierarchy import load_tree_file

    src = data_cfg.hierarchy if data_cfg.hierarchy is not None else ds.hierarchy
    raw = load_tree_file(src)
    default = data_cfg.tree or raw.get("default") or (next(iter(raw["trees"])) if "trees" in raw else None)
    eval_forest = dataset_forest(ds, trees=[default] if default else None, hierarchy=src)
    train_names = data_cfg.trees or ([default] if default else None)
    if train_names and default in train_names:  # the evaluated tree first: it is the classifier's default head
        train_names = [default] + [t for t in train_names if t != default]
    return eval_forest, dataset_forest(ds, trees=train_names, hierarchy=src)



def check_train_classes(data_cfg: DataConfig) -> None:
    """The held-out split's class names (``data.train_classes``) are the dataset's, checked on the evaluated split
    before any model loads (or is pretrained); a dataset that split of is not here is left to the loading."""
    if data_cfg.train_classes is None:
        return
    try:
        ds = get_dataset(data_cfg.dataset, data_cfg.eval_split, root=data_cfg.root)
    except (OSError, ImportError):
        return
    ds.restrict_classes(data_cfg.train_classes)


def load_data(data_cfg: DataConfig, split: str, image_size: int, progress: bool = True) -> ZSDataset:
    """The configured dataset's ``split``; file-based datasets are resized to the model's ``image_size``."""
    from ..data.registry import ZEROSHOT_DATASETS

    kwargs = {}
    if data_cfg.dataset.startswith("folder:"):
        kwargs = {"image_size": image_size, "num_workers": data_cfg.num_workers}
    if data_cfg.dataset in ZEROSHOT_DATASETS:
        kwargs = {"image_size": image_size, "download": data_cfg.download, "num_workers": data_cfg.num_workers,
                  "prompt_names": data_cfg.prompt_names, "caltech101_background": data_cfg.caltech101_background,
                  "allow_partial": data_cfg.allow_partial, "max_damaged": data_cfg.max_damaged, "progress": progress}
    ds = get_dataset(data_cfg.dataset, split, root=data_cfg.root, **kwargs)
    if data_cfg.templates is not None:
        bad = [t for t in data_cfg.templates if t.count("{}") != 1]
        if bad or not data_cfg.templates:
            raise ConfigError(f"data.templates must be a non-empty list of prompts with one '{{}}' each; got {bad}")
        ds.templates = list(data_cfg.templates)
    return ds

