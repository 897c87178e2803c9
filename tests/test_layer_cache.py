"""helpers.training.layer_cache: states computed once, read back from disk, stale or corrupt shards rebuilt."""

import logging

import pytest
import torch

from helpers.io import DataError
from helpers.training.layer_cache import LayerCache, layer_cache_dir
from helpers.training.split_encoder import SplitEncoder

TEXTS = ["reset a password", "Close the incident task when every approval is granted", "x", "notify the group"]
PROMPT = "query: "


@pytest.fixture
def split():
    from helpers.models import load_encoder

    return SplitEncoder(load_encoder("minilm-l6"), 2)


def _embed(split, cache, texts, prompt=PROMPT):
    split.model.eval()
    with torch.no_grad():
        return split.top(cache.states(texts, prompt), cache.prompt_length(prompt))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cached_states_give_the_full_embedding(split, tmp_path, dtype):
    cache = LayerCache(split, 32, folder=tmp_path, dtype=dtype)
    assert cache.ensure(TEXTS + TEXTS[:2], PROMPT) == 4 and cache.ensure(TEXTS, PROMPT) == 0
    assert cache.states(TEXTS, PROMPT)[0].dtype == (torch.bfloat16 if dtype == "bf16" else torch.float32)
    got = _embed(split, cache, TEXTS)
    split.model.max_seq_length = 32
    want = split.model.encode(TEXTS, prompt=PROMPT, convert_to_tensor=True)
    if dtype == "fp32":
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    else:
        assert torch.nn.functional.cosine_similarity(got, want).min() > 0.999


@pytest.mark.slow
def test_second_cache_reads_disk_and_gets_identical_states(split, tmp_path):
    first = LayerCache(split, 32, folder=tmp_path)
    first.ensure(TEXTS, PROMPT)
    second = LayerCache(split, 32, folder=tmp_path)
    assert second.ensure(TEXTS, PROMPT) == 0 and second.stats["read_from_disk"] == 4
    for a, b in zip(first.states(TEXTS, PROMPT), second.states(TEXTS, PROMPT)):
        assert torch.equal(a, b)
    # another prompt, length or cut is another space: nothing is shared
    assert LayerCache(split, 32, folder=tmp_path).ensure(TEXTS, "passage: ") == 4
    assert LayerCache(split, 16, folder=tmp_path).ensure(TEXTS, PROMPT) == 4


@pytest.mark.slow
def test_memory_only_cache_writes_nothing(split, tmp_path):
    cache = LayerCache(split, 32)
    cache.ensure(TEXTS, PROMPT)
    assert len(cache.states(TEXTS, PROMPT)) == 4 and not any(tmp_path.iterdir())
    with pytest.raises(KeyError, match="ensure"):
        cache.states(["never cached"], PROMPT)


def _corrupt_bytes(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF                     # inside the states: only the checksum can tell
    path.write_bytes(bytes(data))


def _garbage(path):
    path.write_bytes(b"not a safetensors file")


def _stale(path):
    """A shard whose header describes another space, under this space's name."""
    from safetensors import safe_open
    from safetensors.torch import save

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {n: f.get_tensor(n) for n in f.keys()}
    meta["space"] = meta["space"].replace('"cut": 4', '"cut": 3')
    path.write_bytes(save(tensors, metadata=meta))


def _wrong_shape(path):
    from safetensors import safe_open
    from safetensors.torch import save

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {n: f.get_tensor(n) for n in f.keys()}
    tensors["lengths"] = tensors["lengths"] + 1
    path.write_bytes(save(tensors, metadata=meta))


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_corrupt_bytes, _garbage, _stale, _wrong_shape])
def test_corrupt_or_stale_shard_is_rebuilt_not_used(split, tmp_path, caplog, damage):
    good = LayerCache(split, 32, folder=tmp_path)
    good.ensure(TEXTS, PROMPT)
    (shard,) = tmp_path.glob("*.safetensors")
    damage(shard)
    with caplog.at_level(logging.WARNING, logger="helpers.training.layer_cache"):
        again = LayerCache(split, 32, folder=tmp_path)
        assert again.ensure(TEXTS, PROMPT) == 4
    assert again.stats == {"computed": 4, "read_from_disk": 0, "rejected_shards": 1}
    assert "rejecting" in caplog.text
    for a, b in zip(good.states(TEXTS, PROMPT), again.states(TEXTS, PROMPT)):
        assert torch.equal(a, b)
    # the rebuilt shard replaces the bad one and is read back
    third = LayerCache(split, 32, folder=tmp_path)
    assert third.ensure(TEXTS, PROMPT) == 0 and third.stats["rejected_shards"] == 0


@pytest.mark.slow
def test_weights_below_the_cut_are_part_of_the_key(split, tmp_path):
    LayerCache(split, 32, folder=tmp_path).ensure(TEXTS, PROMPT)
    with torch.no_grad():
        split.layers[5].output.dense.bias.add_(1.0)      # a top layer: the cache still holds
    assert LayerCache(split, 32, folder=tmp_path).ensure(TEXTS, PROMPT) == 0
    with torch.no_grad():
        split.layers[0].output.dense.bias.add_(1.0)      # a bottom layer: every state is stale
    assert LayerCache(split, 32, folder=tmp_path).ensure(TEXTS, PROMPT) == 4


@pytest.mark.slow
def test_cache_folder_that_is_a_file_fails_in_one_line(split, tmp_path):
    f = tmp_path / "cache"
    f.write_text("x")
    with pytest.raises(DataError) as e:
        LayerCache(split, 32, folder=f)
    msg = str(e.value)
    assert "is a file" in msg and "layer_cache_dir" in msg and str(f) in msg and "\n" not in msg


def test_cache_dir_is_under_the_one_cache_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CASE_STUDY_CACHE", str(tmp_path))
    assert layer_cache_dir() == tmp_path / "layers"
