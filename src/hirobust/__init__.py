"""hirobust: hierarchically robust zero-shot CLIP classifiers (HiRo and baselines under one protocol).

The public API is flat: ``import hirobust as hr``; ``hr.Hierarchy``, ``hr.pgd``, ``hr.METHODS``, ... Names are
imported on first use, so the command line can check its arguments before torch is loaded.
"""

from importlib import import_module

__version__ = "0.1.0"

_WHERE = {
    "ThreatModel": "attacks", "ce": "attacks", "cw_margin": "attacks", "level_objective": "attacks", "pgd": "attacks",
    "targeted_ce": "attacks",
    "ZSDataset": "data", "dataset_forest": "data", "get_dataset": "data", "make_synthetic": "data",
    "EvalConfig": "settings", "evaluate_model": "evaluate",
    "Forest": "hierarchy", "Hierarchy": "hierarchy", "load_forest": "hierarchy", "load_tree": "hierarchy",
    "METHODS": "methods", "FrozenReference": "methods", "Method": "methods", "build_method": "methods",
    "LoadedCLIP": "models.clip", "export_open_clip": "models.clip", "load_clip": "models.clip",
    "register_configs": "models.clip",
    "CosineHead": "models.zeroshot", "ZeroShotClassifier": "models.zeroshot",
    "build_cosine_classifier": "models.zeroshot", "encode_prompts": "models.zeroshot",
    "TrainConfig": "settings", "Trainer": "train",
    "ConfigError": "errors", "HirobustError": "errors",
    "load_classifier": "models.rundir", "save_run": "models.rundir",
}

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hirobust' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
