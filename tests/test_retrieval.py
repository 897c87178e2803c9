"""Retrievers: tokenizer, deterministic top-k, BM25 (vs rank_bm25), RRF fusion, dense + cache."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.fixtures import CORPUS
from helpers.bench import synth_corpus
from helpers.retrieval import (BM25Retriever, DenseRetriever, HybridRetriever, Retriever, doc_text, rrf_fuse, tokenize,
                               top_k)



# --------------------------------------------------------------------------------------- tokenizer

@pytest.mark.parametrize("text, expected", [
    ("sn_hr_core_case", ["sn", "hr", "core", "case", "sn_hr_core_case"]),
    ("assignedTo", ["assigned", "assignedto"]),  # "to" is a stopword, the identifier stays whole
    ("u_cost_center", ["u", "cost", "center", "u_cost_center"]),
    ("sys_user.manager", ["sys", "user", "manager", "sys_user.manager", "sys_user"]),
    ("HTTPServerError", ["http", "server", "error", "httpservererror"]),
    ("The Manager of the group.", ["manager", "group"]),
    ("Update the record, e.g. in Zürich", ["update", "record", "e", "g", "e.g", "zürich"]),
    ("", []),
])
def test_tokenize(text, expected):
    assert tokenize(text) == expected


def test_doc_text():
    assert doc_text({"title": "T", "text": "body"}) == "T: body"
    assert doc_text({"title": "", "text": "body"}) == "body"
    assert doc_text({"text": "body"}) == "body"


# ------------------------------------------------------------------------------------------ top-k

def test_top_k_ties_go_to_larger_id():
    ids = ["a", "b", "c", "d", "e"]
    rank = np.array([0, 1, 2, 3, 4])
    scores = np.array([1.0, 2.0, 1.0, 1.0, 0.5])
    assert [ids[i] for i in top_k(scores, 3, rank)] == ["b", "d", "c"]
    assert [ids[i] for i in top_k(scores, 10, rank)] == ["b", "d", "c", "a", "e"]
    assert list(top_k(scores, 2, rank, min_score=1.5)) == [1]
    assert len(top_k(np.zeros(3), 2, rank[:3], min_score=0.0)) == 0


# ------------------------------------------------------------------------------------------- BM25

def test_bm25_finds_identifiers():
    r = BM25Retriever().index(CORPUS)
    run = r.search({"q1": "cost center of the user", "q2": "who is the manager", "q3": "assigned to",
                    "q4": "zzz unknown words"}, k=3)
    assert next(iter(run["q1"])) == "cost"
    assert next(iter(run["q2"])) == "mgr"
    assert next(iter(run["q3"])) == "asg"
    assert run["q4"] == {}  # no shared term: nothing returned, as in Lucene
    assert all(s > 0 for docs in run.values() for s in docs.values())
    assert r.timings["n_docs"] == 5 and r.timings["n_queries"] == 4 and r.timings["index_seconds"] > 0
    assert r.identity()["k1"] == 0.9 and r.identity()["b"] == 0.4


def test_bm25s_matches_rank_bm25_with_lucene_idf():
    """bm25s (method=lucene) == rank_bm25 BM25Okapi with Lucene's idf, up to Lucene's dropped (k1+1)."""
    from rank_bm25 import BM25Okapi

    class LuceneIdfOkapi(BM25Okapi):
        def _calc_idf(self, nd):
            self.idf = {w: math.log(1 + (self.corpus_size - f + 0.5) / (f + 0.5)) for w, f in nd.items()}

    corpus, queries = synth_corpus(300, 40, seed=5)
    r = BM25Retriever().index(corpus)
    ref = LuceneIdfOkapi([tokenize(doc_text(corpus[d])) for d in r.doc_ids], k1=0.9, b=0.4)
    k = 10
    run = r.search(queries, k)
    for qid, text in queries.items():
        theirs = ref.get_scores(tokenize(text))
        ours = r.scores(text)
        np.testing.assert_allclose(theirs, ours * (0.9 + 1), rtol=1e-9, atol=1e-12)
        expected = [r.doc_ids[i] for i in top_k(theirs, k, r._id_rank, min_score=0.0)]
        assert list(run[qid]) == expected


def test_search_before_index_fails():
    with pytest.raises(RuntimeError, match="before index"):
        BM25Retriever().search({"q": "x"}, 1)
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Retriever().index({})


# ----------------------------------------------------------------------------------------- hybrid

class FixedRetriever(Retriever):
    def __init__(self, name, run):
        super().__init__()
        self.name, self.fixed = name, run
        self.depths = []

    def _index(self, corpus):
        pass

    def _search(self, queries, k):
        self.depths.append(k)
        return {q: dict(sorted(self.fixed.get(q, {}).items(), key=lambda x: -x[1])[:k]) for q in queries}


def test_rrf_math():
    a = {"q": {"d1": 0.9, "d2": 0.5, "d3": 0.1}}
    b = {"q": {"d3": 10.0, "d1": 5.0}}
    fused = rrf_fuse([a, b], k_rrf=60)["q"]
    assert fused["d1"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["d2"] == pytest.approx(1 / 62)
    assert fused["d3"] == pytest.approx(1 / 63 + 1 / 61)
    weighted = rrf_fuse([a, b], k_rrf=1, weights=[2.0, 1.0])["q"]
    assert weighted["d2"] == pytest.approx(2 / 3)


def test_hybrid_retriever_fuses_deep_runs():
    corpus = {f"d{i}": {"title": "", "text": str(i)} for i in range(1, 5)}
    a = FixedRetriever("a", {"q": {"d1": 0.9, "d2": 0.5, "d3": 0.1}})
    b = FixedRetriever("b", {"q": {"d3": 10.0, "d1": 5.0}})
    h = HybridRetriever([a, b], k_rrf=60, depth=100).index(corpus)
    run = h.search({"q": "x", "empty": "y"}, k=2)
    assert a.depths == [100] and b.depths == [100]  # components searched deeper than k
    assert list(run["q"]) == ["d1", "d3"]  # d1: 1/61 + 1/62 > d3: 1/63 + 1/61
    assert run["q"]["d1"] == pytest.approx(1 / 61 + 1 / 62)
    assert run["empty"] == {}
    assert h.name == "hybrid:a+b" and len(h.timings["components"]) == 2
    # Equal fused scores: the larger document id wins, as everywhere else.
    tie = HybridRetriever([FixedRetriever("a", {"q": {"d1": 1.0, "d2": 0.5}}),
                           FixedRetriever("b", {"q": {"d2": 1.0, "d1": 0.5}})]).index(corpus)
    assert list(tie.search({"q": "x"}, 2)["q"]) == ["d2", "d1"]
    with pytest.raises(ValueError, match="at least two"):
        HybridRetriever([a])


# ------------------------------------------------------------------------------------------ dense

@pytest.fixture(scope="module")
def minilm():
    from helpers.models import load_encoder

    return load_encoder("minilm-l6")


@pytest.mark.slow
def test_dense_finds_the_obvious_document(minilm):
    r = DenseRetriever(minilm, show_progress=False).index(CORPUS)
    run = r.search({"q1": "my mail server stopped working", "q2": "maternity and paternity leave question"}, k=2)
    assert next(iter(run["q1"])) == "inc"
    assert next(iter(run["q2"])) == "hr"
    assert all(-1.0001 <= s <= 1.0001 for docs in run.values() for s in docs.values())
    assert r.timings["cache_hit"] is False and r.n_encoded_docs == 5
    ident = r.identity()
    assert ident["name"] == "minilm-l6" and ident["model"]["encoder"]["name"] == "minilm-l6"
    assert ident["query_prompt"] == "" and ident["doc_prompt"] == ""


@pytest.mark.slow
def test_dense_cache_hit_skips_encoding(minilm, tmp_path, monkeypatch):
    first = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False).index(CORPUS)
    assert not first.cache_hit and len(list(tmp_path.glob("*.npy"))) == 1
    expected = first.search({"q": "email outage"}, k=5)

    def boom(*args, **kwargs):
        raise AssertionError("encode_document called despite a cache hit")

    monkeypatch.setattr(minilm, "encode_document", boom)
    # Same corpus in another order: still a hit, and the vectors land on the right ids.
    second = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False)
    second.index(dict(reversed(list(CORPUS.items()))))
    assert second.cache_hit and second.n_encoded_docs == 0 and second.timings["cache_hit"]
    got = second.search({"q": "email outage"}, k=5)
    assert list(got["q"]) == list(expected["q"])
    np.testing.assert_allclose(list(got["q"].values()), list(expected["q"].values()), rtol=1e-5)
    # A different document prompt is a different key: no reuse of stale vectors.
    with pytest.raises(AssertionError, match="despite a cache hit"):
        DenseRetriever(minilm, cache_dir=tmp_path, doc_prompt="passage: ", show_progress=False).index(CORPUS)


@pytest.mark.slow
def test_dense_prompts_resolution(minilm):
    r = DenseRetriever(minilm, query_prompt="query: ", doc_prompt="passage: ", show_progress=False)
    assert (r.query_prompt, r.doc_prompt) == ("query: ", "passage: ")
    with pytest.raises(ValueError, match="not one of the model's prompts"):
        DenseRetriever(minilm, query_prompt_name="step_query")
    # The prompt is really applied: the same text embeds differently with and without it.
    plain = DenseRetriever(minilm, show_progress=False)
    assert not np.allclose(r.encode_queries(["leave policy"]), plain.encode_queries(["leave policy"]))


@pytest.mark.slow
def test_hybrid_bm25_dense(minilm):
    h = HybridRetriever([BM25Retriever(), DenseRetriever(minilm, show_progress=False)]).index(CORPUS)
    run = h.search({"q": "u_cost_center for the user"}, k=3)
    assert next(iter(run["q"])) == "cost"
    assert h.identity()["retrievers"][1]["type"] == "DenseRetriever"
