"""helpers.evaluation: the one evaluation function and the one retriever factory."""

import pytest

from helpers.evaluation import (RetrieverFactory, evaluate_folder, evaluate_model, evaluate_retriever, make_retriever,
                                sample_queries, split_group)
from helpers.metrics import evaluate_run
from helpers.retrieval import BM25Retriever, HybridRetriever
from tests.fixtures import CORPUS
from tests.test_evaluate import QRELS, QUERIES


def test_evaluate_retriever_api_matches_metrics():
    r = BM25Retriever()
    res = evaluate_retriever(r, CORPUS, {q: QUERIES[q] for q in QRELS}, QRELS, ks=(1, 5))
    run = r.search({q: QUERIES[q] for q in QRELS}, 5)
    means, _ = evaluate_run(QRELS, run, (1, 5))
    assert res["metrics"] == means and res["ks"] == [1, 5]


def test_make_retriever_hybrid_of_bm25s():
    h = make_retriever("hybrid:bm25+bm25")
    assert isinstance(h, HybridRetriever) and h.name == "hybrid:bm25+bm25"


def test_hub_ids_reach_load_encoder(monkeypatch):
    """An owner/name spec is not rejected as unknown: it is handed to load_encoder (offline it fails there)."""
    import helpers.models as models

    seen = []

    def fake_load(name, **kw):
        seen.append(name)
        raise OSError("offline")

    monkeypatch.setattr(models, "load_encoder", fake_load)
    with pytest.raises(OSError, match="offline"):
        make_retriever("someone/some-encoder")
    assert seen == ["someone/some-encoder"]


def test_groups_are_per_task_under_a_beir_root(tmp_path):
    assert split_group("field/ood03") == "field/ood" and split_group("step/dev-ja") == "step/translations"
    assert split_group("dev") == "dev" and split_group("nested/b") == "other" and split_group("a") == "other"


def test_k_comes_from_the_task_registry_and_queries_from_the_one_sample(built):
    data = built  # tests/conftest.py: a small dataset built once per session
    from helpers.beir import load_beir
    from helpers.experiments import evaluate_grid

    folder = data / "beir" / "step" / "dev"
    res = evaluate_folder(BM25Retriever(), folder, "step", max_queries=7, seed=4)
    assert res["k"] == 15 and res["headline"] == "recall@15" and res["label"] == "Step@15"
    assert res["ks"] == [1, 5, 10, 15] and "recall@15" in res["metrics"]
    assert set(res["per_query"]) == set(sample_queries(load_beir(folder)[1], 7, seed=4))
    # the notebooks' grid is the same computation, not a second loop
    cell = evaluate_grid({"bm25": "bm25"}, data, ["step"], ["dev"], max_queries=7, seed=4, progress=False)
    assert cell["bm25"]["step"]["dev"]["recall"] == res["metrics"]["recall@15"]
    assert cell["bm25"]["step"]["dev"]["per_query"] == {q: v["recall@15"] for q, v in res["per_query"].items()}
    table = evaluate_folder(BM25Retriever(), data / "beir" / "table" / "dev", "table")
    assert table["k"] == 5 and table["headline"] == "recall@5"


def test_max_seq_length_belongs_to_the_retriever():
    """Two retrievers on one shared model: each encodes at its own length, the model keeps its own."""
    import numpy as np

    factory = RetrieverFactory(cache_dir=None)
    model = factory.model("minilm-l6")
    own = model.max_seq_length
    short = factory("minilm-l6", "step", max_seq_length=8)
    full = factory("minilm-l6", "step")
    assert factory.model("minilm-l6") is model                   # loaded once
    corpus = {"a": {"title": "", "text": "notify the manager of the caller when a priority one incident opens " * 4}}
    e_short = short.index(corpus).embeddings
    assert model.max_seq_length == own and short.identity()["model"]["max_seq_length"] == 8
    e_full = full.index(corpus).embeddings
    model.max_seq_length = 8
    try:
        direct = model.encode_document([corpus["a"]["text"]], normalize_embeddings=True)
    finally:
        model.max_seq_length = own
    np.testing.assert_allclose(e_short, direct, atol=1e-5)
    assert not np.allclose(e_short, e_full, atol=1e-3)


def test_training_time_evaluation_is_the_same_evaluation(built):
    data = built
    from helpers.models import load_encoder

    model = load_encoder("minilm-l6")
    report = evaluate_model(model, data / "beir", ["table"], ["dev"], max_queries=5, seed=1)
    m = report["dev"]["table"]
    res = evaluate_folder(make_retriever("minilm-l6", "table", show_progress=False),
                          data / "beir" / "table" / "dev", "table", max_queries=5, seed=1)
    assert m["n_queries"] == 5 and m["headline"] == "recall@5"
    assert m["recall@5"] == round(res["metrics"]["recall@5"], 4)
