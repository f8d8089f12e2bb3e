"""Fine-tuning methods, by name. Each is a :class:`~.base.Method` with a ``Config`` dataclass; see :mod:`.base`
(the hooks the trainer calls) and :mod:`.reference` (the frozen reference and its per-sample cache). Adding a
method = one module + its config and one line in ``REGISTRY`` (both in :mod:`.configs`).

Importing this package loads no torch: the method classes (``METHODS``, ``Method``, ...) are imported on first
use, while the configs (:mod:`.configs`, ``method_config``) are torch-free, so the command line checks a method's
options before anything heavy loads."""

from __future__ import annotations

import importlib

from .configs import CONFIGS, REGISTRY, method_config

_MODULES = {name: (module, cls) for name, (module, cls, _) in REGISTRY.items()}
_LAZY = {"Method": "base", "Trainable": "base", "StepPasses": "base", "FrozenReference": "reference",
         "ReferenceCache": "reference", **{cls: mod for mod, cls in _MODULES.values()}}

__all__ = ["METHODS", "CONFIGS", "Method", "Trainable", "StepPasses", "FrozenReference", "ReferenceCache",
           "build_method", "method_config"]


def __getattr__(name: str):
    if name == "METHODS":  # name -> method class, in registry order
        methods = {key: getattr(importlib.import_module(f".{mod}", __name__), cls) for key, (mod, cls) in
                   _MODULES.items()}
        globals()["METHODS"] = methods
        return methods
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_method(name: str, model, forest, options: dict | None = None, reference=None, clip=None):
    """Method ``name`` over ``model`` (a ZeroShotClassifier) and ``forest``; ``reference`` is the frozen
    starting model for methods that need one, ``clip`` the open_clip model for methods that train text parts."""
    cfg = method_config(name, options)
    return __getattr__("METHODS")[name](model, forest, cfg, reference=reference, clip=clip)
