"""helpers.encoders: the prompts a model uses per task, and the DenseEncoder a DenseRetriever searches over."""

import numpy as np
import pytest

from tests.fixtures import CORPUS
from helpers.encoders import DenseEncoder, prompt_names_for
from helpers.retrieval import DenseRetriever, doc_text


class Prompted:
    def __init__(self, prompts):
        self.prompts = prompts


def test_prompt_names_for():
    ft = Prompted({"query": "q: ", "document": "d: ", "step_query": "Find the step: ", "step_document": ""})
    assert prompt_names_for(ft, "step") == ("step_query", "step_document")
    assert prompt_names_for(ft, "table") == ("query", "document")
    assert prompt_names_for(ft, None) == ("query", "document")
    assert prompt_names_for(Prompted({}), "step") == (None, None)
    assert prompt_names_for(Prompted({"query": "query: "}), None) == ("query", None)


@pytest.fixture(scope="module")
def minilm():
    from helpers.models import load_encoder

    return load_encoder("minilm-l6")


@pytest.mark.slow
def test_the_encoder_alone_gives_the_vectors_and_cache_space_its_retriever_uses(minilm, tmp_path):
    own = minilm.max_seq_length
    enc = DenseEncoder(minilm, query_prompt="query: ", cache_dir=tmp_path, show_progress=False, max_seq_length=16)
    emb, n_new = enc.embed([doc_text(doc) for doc in CORPUS.values()], "document")
    assert n_new == len(CORPUS) and emb.shape == (len(CORPUS), 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert minilm.max_seq_length == own  # the encoder's length holds only while it encodes
    assert enc.last_encode == {"side": "document", "n_texts": len(CORPUS), "n_encoded": len(CORPUS),
                               "seconds": enc.last_encode["seconds"]}

    r = DenseRetriever(minilm, query_prompt="query: ", cache_dir=tmp_path, show_progress=False, max_seq_length=16)
    r.index(CORPUS)
    assert r.cache_hit and r.n_encoded_docs == 0  # indexing went through the same cache space
    np.testing.assert_array_equal(r.embeddings, emb)
    assert r.space("document", "") == enc.space("document", "")
    assert r.identity() == {"type": "DenseRetriever", "name": "minilm-l6", **enc.identity(), "similarity": "cosine"}
    assert (r.model, r.encoder, r.query_prompt, r.max_seq_length) == (minilm, minilm, "query: ", 16)
    r.cache_dir = None  # settings set on the retriever reach its encoder (helpers.bench turns the cache off so)
    assert r.dense_encoder.cache_dir is None

    shorter = DenseEncoder(minilm, cache_dir=tmp_path, show_progress=False, max_seq_length=8)
    assert shorter.space("document", "")[0] != enc.space("document", "")[0]  # the length is in the key
