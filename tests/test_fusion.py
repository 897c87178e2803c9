"""helpers.fusion: convex and weighted-RRF fusion, the dev tuner, the hybrid:A+B@w spec and the CLI."""

from __future__ import annotations

import json

import pytest

from helpers.evaluation import RetrieverFactory, evaluate_folder, hybrid_weights, spec_parts
from helpers.fusion import (convex_fuse, cut_run, fuse_runs, main, normalise, tune_hybrid, tune_weight,
                            two_weights)
from helpers.metrics import rank_documents
from helpers.retrieval import BM25Retriever, HybridRetriever, Retriever

A = {"q": {"d1": 3.0, "d2": 1.0, "d3": 2.0}}
B = {"q": {"d1": 0.2, "d2": 0.8, "d4": 0.6}}


class FixedRetriever(Retriever):
    def __init__(self, name, run):
        super().__init__()
        self.name, self.fixed = name, run

    def _index(self, corpus):
        pass

    def _search(self, queries, k):
        return {q: dict(sorted(self.fixed.get(q, {}).items(), key=lambda x: -x[1])[:k]) for q in queries}


def test_convex_fusion_equals_a_hand_computed_example():
    # min-max: A -> d1 1, d2 0, d3 0.5; B -> d1 0, d2 1, d4 2/3; a document a run missed gets its minimum (0)
    fused = convex_fuse([A, B], [0.7, 0.3])["q"]
    assert fused == pytest.approx({"d1": 0.7, "d2": 0.3, "d3": 0.35, "d4": 0.3 * 2 / 3})
    assert rank_documents(fused) == ["d1", "d3", "d2", "d4"]
    # z-score: A's scores 3, 1, 2 -> (x - 2) / sd, sd = sqrt(2/3); B's minimum fills in d3
    sd_a, z = (2 / 3) ** 0.5, normalise(B["q"], "zscore")
    fused_z = convex_fuse([A, B], [0.5, 0.5], norm="zscore")["q"]
    assert fused_z["d1"] == pytest.approx(0.5 * 1 / sd_a + 0.5 * z["d1"])
    assert fused_z["d3"] == pytest.approx(0.5 * 0.0 + 0.5 * min(z.values()))
    assert fused_z["d4"] == pytest.approx(0.5 * (-1 / sd_a) + 0.5 * z["d4"])
    assert normalise({"a": 2.0, "b": 2.0}) == {"a": 1.0, "b": 1.0}  # a flat run: every document its best


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_weight_one_or_zero_gives_each_input_ranking(fusion):
    assert rank_documents(fuse_runs([A, B], fusion, [1.0, 0.0])["q"]) == rank_documents(A["q"])
    assert rank_documents(fuse_runs([A, B], fusion, [0.0, 1.0])["q"]) == rank_documents(B["q"])
    # the tuner's grid ends are the two inputs as well
    assert two_weights(0.0, 2) == [1.0, 0.0] and two_weights(1.0, 2) == [0.0, 1.0]


def test_convex_weights_are_checked():
    with pytest.raises(ValueError, match="sum to 1"):
        convex_fuse([A, B], [0.7, 0.7])
    with pytest.raises(ValueError, match="needs 2 weights"):
        convex_fuse([A, B], [1.0])
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse_runs([A, B], "max")


def _constructed():
    """Two queries whose relevant document (d0) is first only for w in (0.355, 0.5): the best w on a 0.1
    grid is 0.4. Competitors are named d9 so that a tie sends them first (trec_eval order)."""
    first = {"q1": {"d9": 1.0, "d0": 0.45, "z": 0.0}, "q2": {"d0": 1.0, "z": 0.0}}
    second = {"q1": {"d0": 1.0, "d9": 0.0, "z": 0.0}, "q2": {"d9": 1.0, "d0": 0.0, "z": 0.0}}
    qrels = {"q1": {"d0": 1}, "q2": {"d0": 1}}
    return [first, second], qrels


def test_tuner_picks_the_known_best_weight_deterministically():
    runs, qrels = _constructed()
    t = tune_weight(runs, qrels, ks=[1, 5], metric="recall@1")
    assert t.weight == pytest.approx(0.4)
    assert t.scores[0.4]["recall@1"] == 1.0
    assert all(v["recall@1"] == 0.5 for w, v in t.scores.items() if w != 0.4)
    # equal RRF on the same runs, by hand: q1 d0 1/62 + 1/61 > d9 1/61 + 1/63; q2 d0 1/61 + 1/63 > z 2/62
    assert t.rrf["recall@1"] == 1.0
    again = tune_weight(runs, qrels, ks=[1, 5], metric="recall@1")
    assert json.dumps(again.as_dict(), sort_keys=True) == json.dumps(t.as_dict(), sort_keys=True)
    with pytest.raises(ValueError, match="grid"):
        tune_weight(runs, qrels, ks=[1], metric="recall@1", grid=[0.5, 1.5])


def test_hybrid_spec_with_weights():
    assert hybrid_weights("hybrid:bm25+me5-small@0.3") == pytest.approx([0.7, 0.3])
    assert hybrid_weights("hybrid:bm25@0.2+a@0.3+b") == pytest.approx([0.2, 0.3, 0.5])
    assert hybrid_weights("hybrid:bm25+me5-small") is None and hybrid_weights("bm25") is None
    assert spec_parts("hybrid:bm25@0.2+me5-small@0.8") == ["bm25", "me5-small"]
    for bad, why in (("hybrid:bm25@0.6+x@0.6", "at most 1"), ("hybrid:bm25@0.2+x@0.3", "sum to 1"),
                     ("hybrid:bm25+x@2", "at most 1")):
        with pytest.raises(ValueError, match=why):
            hybrid_weights(bad)
    h = RetrieverFactory(cache_dir=None)("hybrid:bm25+bm25@0.25", "table")
    assert isinstance(h, HybridRetriever) and h.fusion == "convex" and h.weights == [0.75, 0.25]
    assert h.name == "hybrid:bm25@0.75+bm25@0.25" and h.identity()["norm"] == "minmax"
    plain = RetrieverFactory(cache_dir=None)("hybrid:bm25+bm25", "table")
    assert plain.fusion == "rrf" and plain.weights is None and "norm" not in plain.identity()


def test_tuned_scores_are_what_the_evaluation_reports(tiny):
    """The grid fuses runs searched once; each weight's score equals evaluate_folder on the hybrid at that
    weight. Two BM25 settings stand in for BM25 + dense (no model to load)."""
    folder = tiny / "beir" / "table" / "dev"
    parts = [BM25Retriever(), BM25Retriever(k1=1.5, b=0.9)]
    t = tune_hybrid(parts, folder, "table", grid=[0.0, 0.4, 1.0], max_queries=20, seed=1)
    assert t.n_queries == 20 and t.metric == "recall@5"
    for w in (0.0, 0.4, 1.0):
        h = HybridRetriever(parts, fusion="convex", weights=two_weights(w, 2))
        r = evaluate_folder(h, folder, "table", max_queries=20, seed=1)
        assert r["metrics"] == pytest.approx(t.scores[w]), w
    single = evaluate_folder(BM25Retriever(k1=1.5, b=0.9), folder, "table", max_queries=20, seed=1)
    assert single["metrics"]["recall@5"] == pytest.approx(t.scores[1.0]["recall@5"])
    with pytest.raises(ValueError, match="dev folder only"):
        tune_hybrid(parts, tiny / "beir" / "table" / "ood01", "table")


def test_cli(tiny, tmp_path, capsys):
    out = tmp_path / "fusion.json"
    args = ["--retriever", "hybrid:bm25+bm25", "--data", str(tiny), "--tasks", "table", "workflow",
            "--grid", "0", "0.5", "1", "--max-queries", "20", "--out", str(out)]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res["created_by"] == "helpers.fusion" and set(res["tasks"]) == {"table", "workflow"}
    assert res["tasks"]["table"]["spec"].startswith("hybrid:bm25+bm25@")
    assert [s["weight"] for s in res["tasks"]["table"]["scores"]] == [0.0, 0.5, 1.0]
    assert main(args) == 0  # its own file is replaced
    capsys.readouterr()
    for bad in (["--retriever", "hybrid:bm25+bm25@0.3", "--data", str(tiny)],
                ["--retriever", "bm25", "--data", str(tiny)],
                ["--retriever", "hybrid:bm25+bm25", "--data", str(tmp_path / "missing")],
                ["--retriever", "hybrid:bm25+bm25", "--data", str(tiny), "--tasks", "tabel"],
                ["--retriever", "hybrid:bm25+bm25", "--data", str(tiny), "--grid", "2"]):
        assert main(bad) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    user = tmp_path / "mine.json"
    user.write_text("{}")
    assert main(args[:-1] + [str(user)]) == 2 and user.read_text() == "{}"
    assert "--overwrite" in capsys.readouterr().err
