"""Fine-tuning methods, by name. Each is an ``nn.Module`` with a ``Config`` dataclass; see :mod:`.base`."""

from __future__ import annotations

from dataclasses import fields

from .base import FrozenReference, Method
from .fare import FARE
from .hiro import HiRo
from .pmg import PMG
from .tecoa import TeCoA
from .tga import TGA

METHODS: dict[str, type[Method]] = {
    "tecoa": TeCoA,
    "pmg": PMG,
    "fare": FARE,
    "tga": TGA,
    "hiro": HiRo,
}

__all__ = ["METHODS", "Method", "FrozenReference", "build_method", "method_config"]


def method_config(name: str, options: dict | None = None):
    """The method's config dataclass from ``options``; unknown names or options raise ``ValueError``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    cls = METHODS[name].Config
    known = {f.name for f in fields(cls)}
    bad = sorted(set(options or {}) - known)
    if bad:
        raise ValueError(f"unknown option {bad[0]!r} for method {name!r}; its options: {', '.join(sorted(known))}")
    from ..config import from_dict

    cfg = from_dict(cls, options or {}, "options")  # each option checked against its type, then its range
    from ..checks import attack_fields

    attack_fields("options.", cfg)
    return cfg


def build_method(name: str, model, forest, options: dict | None = None, reference=None, clip=None) -> Method:
    """Method ``name`` over ``model`` (a ZeroShotClassifier) and ``forest``; ``reference`` is the frozen
    starting model for methods that need one, ``clip`` the open_clip model for methods that train text parts."""
    cfg = method_config(name, options)
    return METHODS[name](model, forest, cfg, reference=reference, clip=clip)
