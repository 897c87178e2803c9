"""Metrics: hand-computed cases, parity with pytrec_eval (trec_eval), missing queries, statistics."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from helpers.metrics import (METRICS, bootstrap_ci, evaluate_run, metric_names, paired_bootstrap, paired_bootstrap_strata,
                             per_query_metrics, randomization_test, rank_documents, weighted_mean)

KS = (1, 3, 5, 10, 15)
TREC = {"recall": "recall", "hit": "success", "ndcg": "ndcg_cut", "map": "map_cut"}


def trec_eval(qrels, run, ks=KS):
    """pytrec_eval values renamed to ours; MRR@k from recip_rank on the run cut to k (trec_eval order)."""
    measures = {f"{m}.{','.join(map(str, ks))}" for m in TREC.values()}
    raw = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    out = {q: {f"{ours}@{k}": vals[f"{theirs}_{k}"] for ours, theirs in TREC.items() for k in ks}
           for q, vals in raw.items()}
    for k in ks:
        cut = {q: {d: run[q][d] for d in rank_documents(run[q])[:k]} for q in run}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        for q, vals in rr.items():
            out[q][f"mrr@{k}"] = vals["recip_rank"]
    return out


def random_case(seed, n_queries=40, n_docs=60, ties=False):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if not any(g > 0 for g in qrels[qid].values()):
            qrels[qid][judged[0]] = 1
        retrieved = rng.sample(docs, rng.randint(0, 30))
        if ties:
            run[qid] = {d: float(rng.randint(0, 4)) for d in retrieved}
        else:
            scores = rng.sample(range(10_000), len(retrieved))  # distinct: tie-free
            run[qid] = {d: s / 7.0 for d, s in zip(retrieved, scores)}
    return qrels, run


def assert_close(ours, theirs):
    assert set(ours) == set(theirs)
    for q in theirs:
        for name, value in theirs[q].items():
            assert ours[q][name] == pytest.approx(value, abs=1e-9), (q, name)


@pytest.mark.parametrize("seed", range(5))
def test_parity_with_pytrec_eval_tie_free(seed):
    qrels, run = random_case(seed)
    assert_close(per_query_metrics(qrels, run, KS), trec_eval(qrels, run))


@pytest.mark.parametrize("seed", range(3))
def test_parity_with_pytrec_eval_on_ties(seed):
    # Ties are broken as trec_eval does (document id descending), so even tied runs agree.
    qrels, run = random_case(100 + seed, ties=True)
    assert_close(per_query_metrics(qrels, run, KS), trec_eval(qrels, run))


def test_tie_break_is_doc_id_descending():
    assert rank_documents({"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5, "y": 2.0}) == ["y", "c", "b", "a", "z"]
    # pytrec_eval agrees: tied a, b, c rank as c, b, a, so the relevant "b" is second.
    qrels = {"q": {"b": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    assert pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"] == 0.5
    assert per_query_metrics(qrels, run, (3,))["q"]["mrr@3"] == 0.5


def test_hand_computed():
    qrels = {"q": {"a": 2, "b": 1, "c": 0, "x": 1}}
    run = {"q": {"c": 0.9, "a": 0.8, "z": 0.7, "b": 0.6}}  # ranking c a z b; x never retrieved
    m = per_query_metrics(qrels, run, (1, 2, 4))["q"]
    assert m["recall@1"] == 0 and m["recall@2"] == pytest.approx(1 / 3) and m["recall@4"] == pytest.approx(2 / 3)
    assert m["hit@1"] == 0 and m["hit@2"] == 1
    assert m["mrr@1"] == 0 and m["mrr@2"] == 0.5 and m["mrr@4"] == 0.5
    assert m["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    idcg2 = 2 + 1 / math.log2(3)
    assert m["ndcg@2"] == pytest.approx((2 / math.log2(3)) / idcg2)
    idcg4 = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@4"] == pytest.approx((2 / math.log2(3) + 1 / math.log2(5)) / idcg4)
    perfect = per_query_metrics(qrels, {"q": {"a": 3, "b": 2, "x": 1}}, (3,))["q"]
    assert all(perfect[f"{name}@3"] == pytest.approx(1.0) for name in METRICS)


def test_negative_grades_gain_nothing_like_trec_eval():
    qrels = {"q": {"a": -1, "b": 2}}
    run = {"q": {"a": 3.0, "b": 2.0}}
    assert_close(per_query_metrics(qrels, run, (1, 2)), trec_eval(qrels, run, (1, 2)))


def test_missing_queries_count_as_zero_by_default():
    qrels, run = random_case(7, n_queries=10)
    del run["q3"], run["q8"]
    means, per_query = evaluate_run(qrels, run, KS)
    assert len(per_query) == 10
    assert all(v == 0.0 for v in per_query["q3"].values())
    # trec_eval skips them; include_missing=False reproduces its per-query set and its means.
    means_trec, per_query_trec = evaluate_run(qrels, run, KS, include_missing=False)
    theirs = trec_eval(qrels, run)
    assert set(per_query_trec) == set(theirs) == set(qrels) - {"q3", "q8"}
    for name in means:
        assert means_trec[name] == pytest.approx(sum(v[name] for v in theirs.values()) / 8, abs=1e-9)
        assert means[name] == pytest.approx(means_trec[name] * 8 / 10, abs=1e-12)


def test_empty_run_for_a_query_scores_zero_in_both_modes():
    qrels = {"q": {"a": 1}, "r": {"b": 1}}
    run = {"q": {}, "r": {"b": 1.0}}
    for include in (True, False):
        means, per_query = evaluate_run(qrels, run, (1,), include_missing=include)
        assert per_query["q"]["recall@1"] == 0.0 and means["recall@1"] == 0.5


def test_evaluate_run_names_and_order():
    qrels, run = random_case(3, n_queries=4)
    means, per_query = evaluate_run(qrels, run, (1, 5), ("ndcg", "recall"))
    assert list(means) == ["ndcg@1", "ndcg@5", "recall@1", "recall@5"] == metric_names((1, 5), ("ndcg", "recall"))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_run(qrels, run, (1,), ("precision",))
    with pytest.raises(ValueError, match="cutoffs"):
        evaluate_run(qrels, run, (0,))


def test_weighted_mean():
    res = {"a": {"recall@5": 0.5, "mrr@5": 0.2, "only_a": 1.0}, "b": {"recall@5": 1.0, "mrr@5": 0.8}}
    out = weighted_mean(res, {"a": 30, "b": 10})
    assert out == {"recall@5": pytest.approx(0.625), "mrr@5": pytest.approx(0.35)}
    with pytest.raises(ValueError, match="no weight"):
        weighted_mean(res, {"a": 1})


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    rng = random.Random(0)
    values = {f"q{i}": rng.random() for i in range(200)}
    ci = bootstrap_ci(values, n_resamples=500, seed=1)
    assert ci == bootstrap_ci(values, n_resamples=500, seed=1)
    assert ci["low"] < ci["mean"] < ci["high"]
    assert ci["high"] - ci["low"] < 0.2


def test_bootstrap_draws_the_resamples_of_the_loop_it_replaced():
    """scipy.stats.bootstrap does the resampling; with our seed and batch of 500 it must draw what our
    former loop drew, or every recorded interval and p-value would move (a scipy upgrade included)."""
    import numpy as np

    def former(values, n_resamples, rng, chunk=500):
        out = np.empty(n_resamples)
        for start in range(0, n_resamples, chunk):
            stop = min(start + chunk, n_resamples)
            out[start:stop] = values[rng.integers(0, len(values), size=(stop - start, len(values)))].mean(axis=1)
        return out

    rng = random.Random(2)
    a = {f"q{i}": float(rng.random() < 0.6) for i in range(90)}      # per-query recall: few distinct values
    b = {q: float(rng.random() < 0.7) for q in a}
    va, vb = (np.array([d[q] for q in sorted(d)]) for d in (a, b))
    ends = [(1 - 0.95) / 2, 1 - (1 - 0.95) / 2]   # as the functions compute them (0.025 + 2e-17)
    for n_resamples in (1000, 1234):
        means = former(vb, n_resamples, np.random.default_rng(5))
        assert bootstrap_ci(b, n_resamples=n_resamples, seed=5) == {
            "mean": float(vb.mean()), "low": float(np.quantile(means, ends[0])), "high": float(np.quantile(means, ends[1]))}
        deltas = former(vb - va, n_resamples, np.random.default_rng(5))
        r = paired_bootstrap(a, b, n_resamples=n_resamples, seed=5)
        assert (r["low"], r["high"]) == tuple(float(x) for x in np.quantile(deltas, ends))
    # a stratum of one query resamples to itself and leaves the generator where the loop left it
    strata = paired_bootstrap_strata({"one": {"q": 0.0}, "s": a}, {"one": {"q": 1.0}, "s": b}, n_resamples=800, seed=5)
    rng_np = np.random.default_rng(5)
    combined = np.zeros(800) + 1 / 91 * former(np.array([1.0]), 800, rng_np)   # strata weighted by queries
    combined += 90 / 91 * former(vb - va, 800, rng_np)
    assert (strata["low"], strata["high"]) == tuple(float(x) for x in np.quantile(combined, ends))


def test_paired_tests():
    rng = random.Random(0)
    a = {f"q{i}": rng.random() for i in range(150)}
    better = {q: min(1.0, v + 0.15 + rng.uniform(-0.05, 0.05)) for q, v in a.items()}
    noise = {q: v + rng.uniform(-0.01, 0.01) for q, v in a.items()}
    for test in (paired_bootstrap, randomization_test):
        r = test(a, better, n_resamples=2000, seed=3)
        assert r == test(a, better, n_resamples=2000, seed=3)
        assert r["delta"] > 0.1 and r["p_value"] < 0.01
        assert test(a, a, n_resamples=500, seed=0)["p_value"] == 1.0
        assert test(a, noise, n_resamples=2000, seed=0)["p_value"] > 0.05
    r = paired_bootstrap(a, better, n_resamples=1000, seed=0)
    assert 0 < r["low"] < r["delta"] < r["high"]
    with pytest.raises(ValueError, match="same queries"):
        randomization_test(a, {"x": 1.0})


def test_stratified_bootstrap_is_the_tables_average():
    rng = random.Random(1)
    # two strata of different sizes: b wins by 0.3 on the small one and loses by 0.1 on the big one
    a = {"s1": {f"q{i}": rng.random() * 0.5 for i in range(40)}, "s2": {f"q{i}": rng.random() for i in range(360)}}
    b = {"s1": {q: v + 0.3 for q, v in a["s1"].items()}, "s2": {q: v - 0.1 for q, v in a["s2"].items()}}
    by_queries = paired_bootstrap_strata(a, b, n_resamples=2000, seed=0)
    assert by_queries["delta"] == pytest.approx((40 * 0.3 - 360 * 0.1) / 400)    # the pooled mean: b loses
    assert by_queries["high"] < 0 and by_queries["p_value"] < 0.01
    equal = paired_bootstrap_strata(a, b, weights={"s1": 1, "s2": 1}, n_resamples=2000, seed=0)
    assert equal["delta"] == pytest.approx((0.3 - 0.1) / 2) and equal["low"] > 0  # the plain average: b wins
    # one stratum equals paired_bootstrap's statistic
    one = paired_bootstrap_strata({"s": a["s2"]}, {"s": b["s2"]}, n_resamples=500, seed=0)
    assert one["delta"] == pytest.approx(paired_bootstrap(a["s2"], b["s2"], n_resamples=500, seed=0)["delta"])
    with pytest.raises(ValueError, match="same strata"):
        paired_bootstrap_strata(a, {"s1": b["s1"]})


def test_recall_by_group_pools_gold_documents():
    from helpers.metrics import recall_by_group

    qrels = {"q1": {"a": 1, "b": 1, "x": 0}, "q2": {"b": 1, "c": 1}, "q3": {"c": 1}}
    run = {"q1": {"a": 3.0, "z": 2.0, "b": 1.0}, "q2": {"c": 2.0, "b": 1.0}}     # q3 returned nothing
    res = recall_by_group(qrels, run, k=2, group_of={"a": "head", "b": "head"})
    # head golds: q1/a hit, q1/b at rank 3 missed, q2/b hit -> 2/3; unseen (c): q2 hit, q3 missed -> 1/2
    assert res == {"head": {"recall": 2 / 3, "relevant": 3, "queries": 2},
                   "unseen": {"recall": 0.5, "relevant": 2, "queries": 2}}
