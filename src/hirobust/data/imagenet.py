"""ImageNet-1k's class facts, one copy each: WordNet ids (timm's wheel), WordNet lemmas, class names (open_clip's
curated names made unique) and the names CLIP_benchmark puts in its prompts.

Torch-free to import; :func:`imagenet_classnames` imports open_clip (and so torch) when first called.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["imagenet_wnids", "imagenet_lemmas", "imagenet_classnames", "imagenet_prompt_names"]


def _timm_info(name: str) -> str:
    return resources.files("timm").joinpath("data", "_info", name).read_text()


@functools.lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids (``'n01440764'``, ...) in canonical label order (timm's
    ``imagenet_synsets.txt``)."""
    wnids = tuple(_timm_info("imagenet_synsets.txt").split())
    if len(wnids) != 1000:
        raise RuntimeError(f"timm's imagenet_synsets.txt lists {len(wnids)} ids, expected 1000")
    return wnids


def imagenet_lemmas() -> list[str]:
    """WordNet lemmas of each class as timm lists them (``'kit fox, Vulpes macrotis'``), class order."""
    table = dict(line.split("\t", 1) for line in _timm_info("imagenet_synset_to_lemma.txt").splitlines() if line)
    return [table[w] for w in imagenet_wnids()]


@functools.lru_cache(maxsize=1)
def imagenet_classnames() -> tuple[str, ...]:
    """open_clip's curated ImageNet-1k names (OpenAI's CLIP names), class order, made unique (the leaves of the
    shipped ImageNet hierarchy).

    The curated list names two pairs of classes alike ("missile" for n03773504 and n04008634, "sunglasses" for
    n04355933 and n04356056). A leaf must be unique, so within such a pair every class whose first WordNet lemma
    differs from the shared name takes that lemma ("projectile", "sunglass").
    """
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    names, lemmas = list(IMAGENET_CLASSNAMES), imagenet_lemmas()
    if len(names) != len(lemmas):
        raise RuntimeError(f"open_clip has {len(names)} ImageNet class names, timm {len(lemmas)} synsets")
    counts = {n: names.count(n) for n in names}
    for i, n in enumerate(names):
        first = lemmas[i].split(",")[0].strip()
        if counts[n] > 1 and first != n:
            names[i] = first
    if len(set(names)) != len(names):
        raise RuntimeError("ImageNet class names are still not unique after disambiguation")
    return tuple(names)


def imagenet_prompt_names(names: list[str]) -> dict[str, str]:
    """Our class name -> CLIP_benchmark's, where they differ: the two names made unique are CLIP_benchmark's
    duplicates again ("projectile" -> "missile", "sunglass" -> "sunglasses")."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return {ours: theirs for ours, theirs in zip(names, IMAGENET_CLASSNAMES) if ours != theirs}
