"""One dataset's facts: :class:`DatasetSpec` (and :class:`Source`, where torchvision finds a zero-shot dataset's
files), with the readers of its class names and prompt templates (JSON files under ``data/classnames/`` and
``data/templates/``).

The bottom of :mod:`hirobust.data`: the registry (:mod:`.registry`) builds its table :data:`~.registry.SPECS` from
these, and hands a spec to the loaders (:mod:`.zeroshot`, :mod:`.fashion_mnist`), which never look a dataset up by
name. Imports no torch and no other module of this package.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import ZSDataset

__all__ = ["DatasetSpec", "Source", "data_file"]


@functools.cache
def data_file(kind: str, stem: str) -> tuple[str, ...]:
    """The list in ``data/<kind>/<stem>.json`` (``{"dataset", "source", <kind>: [...]}``)."""
    text = resources.files(__package__).joinpath(kind, f"{stem}.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)[kind])


@dataclass(frozen=True)
class Source:
    """Where torchvision finds a zero-shot dataset: split map, expected files, layout, download URL, builder."""

    splits: dict[str, Any]  # our split -> torchvision's split argument
    files: Callable[[str], list[str]]  # our split -> paths under root that must exist
    layout: str  # the folder layout, for error messages
    url: str | None  # where torchvision downloads from; None: the user must fetch it by hand
    # (root, split arg, download, transform, our class names in label order) -> (torch Dataset, labels)
    build: Callable[..., tuple[Any, Sequence[int]]] | None = None
    needs: tuple[str, ...] = ()  # extra Python packages torchvision needs here

    @property
    def downloadable(self) -> bool:
        return self.url is not None

    @property
    def how_to_get(self) -> str:
        if self.url is None:
            return f"Expected layout: {self.layout}. torchvision cannot download this dataset: get it by hand."
        return (f"Expected layout: {self.layout}. Pass download=True to let torchvision fetch it ({self.url}) into "
                f"the data root, or put the files there yourself.")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset's facts. ``classnames`` / ``templates``: a file stem under ``data/classnames/`` /
    ``data/templates/``, a function returning the list, or ``None`` where the loader generates them (synthetic)."""

    name: str
    loader: Callable[..., ZSDataset]  # (split, root=None, **options) -> ZSDataset
    classnames: str | Callable[[], Sequence[str]] | None = None
    templates: str | None = None
    trees: str | None = None  # the shipped hierarchy file hierarchy/data/<trees>.json
    eval_images: int | None = None  # images in the evaluation split (official counts, for time projections)
    clip_benchmark: str | None = None  # CLIP_benchmark's name of the dataset; None: not in CLIP_benchmark
    prompt_names: Callable[[list[str]], dict[str, str]] | None = None  # class name -> CLIP_benchmark's prompt name
    source: Source | None = None  # the zero-shot datasets: torchvision's files

    def _generated(self, what: str) -> ConfigError:
        return ConfigError(f"dataset {self.name!r} generates its {what} when loaded "
                           f"(get_dataset({self.name!r}).{what})")

    def class_names(self) -> list[str]:
        """The class names in label order."""
        src = self.classnames
        if src is None:
            raise self._generated("classnames")
        return list(src()) if callable(src) else list(data_file("classnames", src))

    def prompt_templates(self) -> list[str]:
        """The prompt templates (each with one ``{}`` for the class name)."""
        if self.templates is None:
            raise self._generated("templates")
        return list(data_file("templates", self.templates))

    def clip_benchmark_prompt_names(self) -> dict[str, str]:
        """Class name -> the name CLIP_benchmark puts in the prompt, where the two differ (``{}``: nowhere)."""
        return {} if self.prompt_names is None else self.prompt_names(self.class_names())
