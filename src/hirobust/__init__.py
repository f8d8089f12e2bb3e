"""hirobust: hierarchically robust zero-shot CLIP classifiers (HiRo and baselines under one protocol).

The public API is flat: ``import hirobust as hr``; ``hr.Hierarchy``, ``hr.pgd``, ``hr.METHODS``, ...
"""

__version__ = "0.1.0"

from .attacks import ce, cw_margin, level_objective, pgd, targeted_ce
from .data import ZSDataset, dataset_forest, get_dataset, make_synthetic
from .evaluate import EvalConfig, evaluate_model
from .hierarchy import Forest, Hierarchy, load_forest, load_tree
from .methods import METHODS, FrozenReference, Method, build_method
from .models.clip import LoadedCLIP, export_open_clip, load_clip, register_configs
from .models.zeroshot import CosineHead, ZeroShotClassifier, build_cosine_classifier, encode_prompts
from .train import TrainConfig, Trainer

__all__ = [
    "__version__", "Hierarchy", "Forest", "load_forest", "load_tree", "ZSDataset", "get_dataset", "dataset_forest",
    "make_synthetic", "pgd", "ce", "cw_margin", "targeted_ce", "level_objective", "METHODS", "Method",
    "FrozenReference", "build_method", "LoadedCLIP", "load_clip", "export_open_clip", "register_configs",
    "ZeroShotClassifier", "CosineHead", "build_cosine_classifier", "encode_prompts", "TrainConfig", "Trainer",
    "EvalConfig", "evaluate_model",
]
