"""WordNet 3.0 offline, through nltk's reader, and trees built from hypernym paths.

nltk reads WordNet only from a ``corpora/wordnet`` directory on its data path. We use nltk's own
data when it is installed; otherwise we assemble that directory in a cache from the Debian
packages ``wordnet-base`` and ``wordnet-sense-index`` (``/usr/share/wordnet``), adding the
``lexnames`` file Debian does not ship (its 45 lines are fixed by the WordNet 3.0 format, see
lexnames(5WN)).
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from pathlib import Path

from ..errors import ConfigError, NotFound

DEBIAN_WORDNET = Path("/usr/share/wordnet")
_WN_FILES = [
    "data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb", "index.adj", "index.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc", "index.sense", "cntlist.rev",
]
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive "
    "noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation "
    "noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception "
    "verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_POS_NUM = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def lexnames_text() -> str:
    """The WordNet 3.0 ``lexnames`` file: ``NN<TAB>name<TAB>pos`` for the 45 lexicographer files."""
    return "".join(f"{i:02d}\t{n}\t{_POS_NUM[n.split('.')[0]]}\n" for i, n in enumerate(_LEXNAMES))


def cache_dir() -> Path:
    """hirobust's cache root: ``$HIROBUST_CACHE`` or ``~/.cache/hirobust`` (a file there is a clear error)."""
    root = Path(os.environ.get("HIROBUST_CACHE", Path.home() / ".cache" / "hirobust"))
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                from ..errors import ConfigError

                raise ConfigError(f"cache path {str(root)!r}: {str(p)!r} is a file, not a folder; point "
                                 f"$HIROBUST_CACHE at a folder")
            break
    return root


def _assemble_from_debian(src: Path, dest_root: Path) -> Path:
    dest = dest_root / "corpora" / "wordnet"
    if (dest / "lexnames").exists() and all((dest / f).exists() for f in _WN_FILES if (src / f).exists()):
        return dest_root
    tmp = dest.with_name(f"wordnet.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in _WN_FILES:
        if (src / f).exists():
            target = tmp / f
            if not target.exists():
                # nltk (>= 3.9) refuses symlinks and hard links into its data root: copy (36 MB, once)
                shutil.copyfile(src / f, target)
    (tmp / "lexnames").write_text(lexnames_text())
    if dest.exists():  # another process finished first
        return dest_root
    tmp.rename(dest)
    return dest_root


@functools.lru_cache(maxsize=1)
def wordnet():
    """nltk's WordNet corpus reader over nltk's data if present, else over the Debian files.

    Raises ``RuntimeError`` saying what to install when neither exists.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    try:
        nltk.data.find("corpora/wordnet")
        from nltk.corpus import wordnet as wn

        wn.ensure_loaded()
        return wn
    except LookupError:
        pass
    src = Path(os.environ.get("HIROBUST_WORDNET_DIR", DEBIAN_WORDNET))
    if not (src / "data.noun").exists():
        raise NotFound(
            "WordNet 3.0 not found: install nltk's data (python -m nltk.downloader wordnet) or, on Debian/Ubuntu, "
            "`apt-get install wordnet-base wordnet-sense-index` (or set HIROBUST_WORDNET_DIR to a WordNet dict folder)"
        )
    root = _assemble_from_debian(src, cache_dir() / "nltk_data")
    # nltk (>= 3.9) only reads corpora below a directory on its data path
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():  # "multilingual functions are not available": we need none
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)


def synset_from_wnid(wnid: str):
    """``'n02119789'`` -> Synset('kit_fox.n.01')."""
    if len(wnid) < 2 or wnid[0] not in "nvar" or not wnid[1:].isdigit():
        raise ConfigError(f"not a WordNet id: {wnid!r} (expected like 'n02119789')")
    return wordnet().synset_from_pos_and_offset(wnid[0], int(wnid[1:]))


def synset_name(syn) -> str:
    """First lemma with underscores as spaces: Synset('kit_fox.n.01') -> 'kit fox'."""
    return syn.lemmas()[0].name().replace("_", " ")


def hypernym_paths(syn) -> list[list]:
    """All hypernym paths of ``syn``, each leaf-first ``[syn, parent, ..., entity]``, shortest first, deduplicated."""
    paths = [list(reversed(p)) for p in syn.hypernym_paths()]
    uniq = {tuple(s.name() for s in p): p for p in paths}
    return sorted(uniq.values(), key=lambda p: (len(p), [s.name() for s in p]))


def tree_from_cuts(leaf_synsets: dict[str, str], cuts: list[list[str]]) -> dict[str, list[str]]:
    """Paths from WordNet: level ``l`` (1-based) of leaf ``k`` is the nearest hypernym of synset
    ``leaf_synsets[k]`` among the synset names ``cuts[l-1]`` (over all its hypernym paths).

    Returns ``{leaf: [name at level 1, ..., name at level L]}`` with :func:`synset_name` names.
    Raises ``ValueError`` naming the leaf when no synset of a cut lies above it.
    """
    wn = wordnet()
    out = {}
    for leaf, syn_name in leaf_synsets.items():
        syn = wn.synset(syn_name)
        chain = []
        for lvl, cut in enumerate(cuts, start=1):
            best = None
            for path in hypernym_paths(syn):
                for depth, s in enumerate(path):
                    if s.name() in cut and (best is None or depth < best[0]):
                        best = (depth, s)
            if best is None:
                raise ConfigError(f"no synset of level {lvl}'s cut {cut} lies above {leaf!r} ({syn_name})")
            chain.append(synset_name(best[1]))
        out[leaf] = chain
    return out
