"""Range and type checks of config values, where each value is defined (its dataclass's ``__post_init__``).

A bad value raises ``ValueError`` naming the key, the value and what is allowed, before any heavy work: a NaN
learning rate, a negative step size or a negative sample count never reaches training or an attack.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


def number(key: str, value: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           integer: bool = False, optional: bool = False) -> None:
    """``value`` is a finite number (an integer if ``integer``) in [lo, hi] ((lo, hi] if ``lo_open``); None is
    accepted if ``optional``."""
    if value is None and optional:
        return
    kind = "an integer" if integer else "a finite number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise ConfigError(f"{key}={value!r}: must be {kind}{_range(lo, hi, lo_open)}"
                         + (" (or null)" if optional else ""))
    if lo is not None and (value <= lo if lo_open else value < lo) or hi is not None and value > hi:
        raise ConfigError(f"{key}={value!r}: must be {kind}{_range(lo, hi, lo_open)}")


def _range(lo, hi, lo_open) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


def fraction(key: str, value: Any) -> None:
    """``value`` is a fraction in [0, 1) (a share of a split, e.g. ``data.max_damaged``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r} must be a fraction in [0, 1) (0.001 is 0.1%)")


def numbers(key: str, values: Any, **kw) -> None:
    """Every element of the list ``values`` passes :func:`number`."""
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{key}={values!r}: must be a list, e.g. [1, 2]")
    for v in values:
        number(key, v, **kw)


def attack_fields(prefix: str, cfg) -> None:
    """The attack settings every method config shares: ε ≥ 0, α > 0 (or default), steps ≥ 0."""
    for name in ("eps", "text_eps"):
        if hasattr(cfg, name):
            number(f"{prefix}{name}", getattr(cfg, name), lo=0)
    for name in ("alpha", "text_alpha"):
        if hasattr(cfg, name):
            number(f"{prefix}{name}", getattr(cfg, name), lo=0, lo_open=True, optional=True)
    if hasattr(cfg, "steps"):
        number(f"{prefix}steps", cfg.steps, lo=0, integer=True)
    for name in ("eps", "alpha"):  # image-space sizes: pixels are in [0, 1]
        pixel_units(f"{prefix}{name}", getattr(cfg, name, None), getattr(cfg, "norm", "linf"))


def pixel_units(key: str, value, norm: str = "linf") -> None:
    """An L∞ radius or step in pixel units is at most 1 (the whole pixel range); a larger one is almost always an
    ε meant in /255 units: refused with the fraction it probably meant."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and norm == "linf" and value > 1:
        raise ConfigError(f"{key}={value:g} is larger than the whole pixel range [0, 1] (L∞ sizes are in pixel "
                         f"units); did you mean {value:g}/255?")
