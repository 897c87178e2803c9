"""helpers.embeddings: the per-text embedding cache and the fingerprints that key it."""

import logging

import pytest

from helpers.retrieval import DenseRetriever
from tests.fixtures import CORPUS


@pytest.fixture(scope="module")
def minilm():
    from helpers.models import load_encoder

    return load_encoder("minilm-l6")


def test_unreadable_shard_is_ignored(minilm, tmp_path, caplog):
    from helpers.embeddings import EmbeddingCache

    DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False).index(CORPUS)
    (npy,) = tmp_path.glob("*.npy")
    npy.write_bytes(b"garbage")
    EmbeddingCache._spaces.clear()
    with caplog.at_level(logging.WARNING, logger="helpers.retrieval"):
        r = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False).index(CORPUS)
    assert r.n_encoded_docs == 5 and "unreadable embedding cache shard" in caplog.text


def test_tokenizer_fingerprint_ignores_truncation_state(minilm):
    from helpers.embeddings import _TOKENIZER_FP, tokenizer_fingerprint

    before = tokenizer_fingerprint(minilm)
    minilm.tokenizer(["x " * 600], truncation=True, max_length=7)  # leaves truncation set on the backend
    _TOKENIZER_FP.clear()
    assert tokenizer_fingerprint(minilm) == before
