import os

import pytest
import torch

# every test runs offline and on the CPU, with hirobust's cache in a temporary folder
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HIROBUST_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_clip():
    from hirobust.models.clip import load_clip

    torch.manual_seed(0)
    return load_clip("hirobust-tiny", None)


@pytest.fixture(scope="session")
def synth():
    from hirobust.data import dataset_forest, make_synthetic

    train = make_synthetic("train", n_per_class=16)
    test = make_synthetic("test", n_per_class=8)
    return train, test, dataset_forest(train)


@pytest.fixture()
def tiny_classifier(tiny_clip, synth):
    import copy

    from hirobust.models.clip import LoadedCLIP
    from hirobust.models.zeroshot import build_cosine_classifier

    clip = LoadedCLIP(**{**tiny_clip.__dict__, "model": copy.deepcopy(tiny_clip.model)})
    return build_cosine_classifier(clip, synth[2], synth[0].templates), clip
