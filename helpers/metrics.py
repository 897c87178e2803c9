"""Retrieval metrics on plain BEIR dicts, computed by trec_eval (``pytrec_eval``), plus significance tools.

Inputs are ``qrels {qid: {doc_id: grade}}`` and ``run {qid: {doc_id: score}}``. Metrics (all "@k"):

``recall``  relevant documents (grade > 0) in the top k / all relevant documents (trec_eval ``recall_k``)
``hit``     1 if any relevant document is in the top k (trec_eval ``success_k``)
``mrr``     1 / rank of the first relevant document if it is within the top k, else 0
            (trec_eval ``recip_rank`` on the run cut to k; trec_eval itself has no cutoff)
``ndcg``    trec_eval ``ndcg_cut_k``: gain = grade (grades <= 0 gain nothing), discount log2(rank + 1),
            ideal from all judged documents sorted by grade
``map``     trec_eval ``map_cut_k``: sum of precision at each relevant rank <= k / all relevant documents

The numbers come from ``pytrec_eval`` (trec_eval's own code); this module is the thin wrapper that
keeps our conventions on top of it:

* Ranking order is trec_eval's: score descending, ties broken by document id *descending*
  (trec_eval sorts by ``(sim, docno)`` both decreasing, comparing docnos with ``strcmp``; Python's
  ``str`` order is code-point order, the same as UTF-8 byte order). :func:`rank_documents` gives that
  order, for cutting a run to k for ``mrr`` and for fusion (:func:`helpers.retrieval.rrf_fuse`).
* Queries in ``qrels`` that are missing from ``run`` (or have an empty ranking): trec_eval skips them,
  which flatters a system that returns nothing for hard queries. Here they score 0 on every metric and
  count in the mean by default (``include_missing=True``); pass ``include_missing=False`` for
  trec_eval's behaviour. Queries in ``run`` but not in ``qrels`` are ignored, as in trec_eval. A query
  with no relevant document scores 0 (as in trec_eval); :func:`helpers.beir.load_beir` drops such
  queries up front.

Significance: the bootstrap resampling is ``scipy.stats.bootstrap`` (percentile intervals). With our
seed and batch it draws the very resamples our own loop drew, so the intervals are the ones every
results file records (equal to 1e-16 on the smoke dataset's per-query recall). What scipy has not
stays ours: the stratified paired bootstrap and its p-value (:func:`paired_bootstrap_strata`) and the
sign-flip randomization test (:func:`randomization_test`, see there why not ``permutation_test``).
ranx (the library that has paired tests) has neither a paired bootstrap with a confidence interval
nor our seeded sign-flip randomization, and it is not in this environment (it needs numba).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

METRICS = ("recall", "hit", "mrr", "ndcg", "map")
DEFAULT_KS = (1, 5, 10, 15)

# our name -> trec_eval's measure (mrr is recip_rank on the run cut to k, see per_query_metrics)
_TREC_MEASURES = {"recall": "recall", "hit": "success", "ndcg": "ndcg_cut", "map": "map_cut"}

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


def rank_documents(scores: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval order: score descending, then document id descending."""
    return [d for d, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def metric_names(ks: Iterable[int] = DEFAULT_KS, metrics: Iterable[str] = METRICS) -> list[str]:
    """``["recall@1", "recall@5", ..., "map@15"]`` in metric-then-k order."""
    return [f"{m}@{k}" for m in metrics for k in ks]


def _check(ks, metrics) -> tuple[tuple[int, ...], tuple[str, ...]]:
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"cutoffs must be positive integers, got {ks}")
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    return ks, metrics


def _trec_eval(qrels: Qrels, run: Run, ks: tuple[int, ...], metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{qid: {"recall@5": v, ...}}`` from pytrec_eval, for the queries it scores (judged and ranked)."""
    import pytrec_eval

    qrels = {q: {d: int(g) for d, g in rels.items()} for q, rels in qrels.items()}
    run = {q: {d: float(s) for d, s in scores.items()} for q, scores in run.items() if q in qrels and scores}
    out: dict[str, dict[str, float]] = {q: {} for q in run}
    cutoffs = ",".join(map(str, ks))
    measures = {f"{_TREC_MEASURES[m]}.{cutoffs}" for m in metrics if m in _TREC_MEASURES}
    if measures:
        for q, vals in pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run).items():
            out[q].update({f"{m}@{k}": vals[f"{_TREC_MEASURES[m]}_{k}"]
                           for m in metrics if m in _TREC_MEASURES for k in ks})
    if "mrr" in metrics:
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
        for k in ks:
            cut = {q: {d: scores[d] for d in rank_documents(scores)[:k]} for q, scores in run.items()}
            for q, vals in rr.evaluate(cut).items():
                out[q][f"mrr@{k}"] = vals["recip_rank"]
    return out


def per_query_metrics(qrels: Qrels, run: Run, ks: Iterable[int] = DEFAULT_KS, metrics: Iterable[str] = METRICS,
                      include_missing: bool = True) -> dict[str, dict[str, float]]:
    """``{qid: {"recall@5": value, ...}}`` for each query of ``qrels`` (see the module doc for missing ones)."""
    ks, metrics = _check(ks, metrics)
    scored = _trec_eval(qrels, run, ks, metrics)
    names = metric_names(ks, metrics)
    out: dict[str, dict[str, float]] = {}
    for qid in sorted(qrels):
        if qid not in run and not include_missing:
            continue
        values = scored.get(qid, {})
        out[qid] = {name: float(values.get(name, 0.0)) for name in names}
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean over queries of each metric in a :func:`per_query_metrics` result (empty -> {})."""
    if not per_query:
        return {}
    names = list(next(iter(per_query.values())))
    n = len(per_query)
    # math.fsum: the mean must not depend on dict order.
    return {name: math.fsum(v[name] for v in per_query.values()) / n for name in names}


def evaluate_run(qrels: Qrels, run: Run, ks: Iterable[int] = DEFAULT_KS, metrics: Iterable[str] = METRICS,
                 include_missing: bool = True) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score a run: returns ``(means, per_query)``, e.g. ``({"recall@5": 0.81, ...}, {qid: {...}})``."""
    per_query = per_query_metrics(qrels, run, ks, metrics, include_missing)
    return mean_metrics(per_query), per_query


def weighted_mean(results_by_split: Mapping[str, Mapping[str, float]],
                  weights: Mapping[str, float]) -> dict[str, float]:
    """Average metric dicts over splits weighted by ``weights`` (the paper uses the number of queries).

    Only metrics present in every split are averaged.
    """
    if not results_by_split:
        raise ValueError("no splits to average")
    missing = [s for s in results_by_split if s not in weights]
    if missing:
        raise ValueError(f"no weight for split(s) {missing}")
    total = float(sum(weights[s] for s in results_by_split))
    if total <= 0:
        raise ValueError("weights sum to zero")
    common = set.intersection(*(set(r) for r in results_by_split.values()))
    names = [n for n in next(iter(results_by_split.values())) if n in common]
    return {n: math.fsum(weights[s] * r[n] for s, r in results_by_split.items()) / total for n in names}


def _values(per_query: Mapping[str, float] | Sequence[float]) -> np.ndarray:
    if isinstance(per_query, Mapping):
        return np.array([per_query[q] for q in sorted(per_query)], dtype=np.float64)
    return np.asarray(per_query, dtype=np.float64)


def _paired(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise ValueError("pass both systems as {qid: value} dicts or both as sequences")
    if isinstance(a, Mapping):
        if set(a) != set(b):
            only_a, only_b = sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5]
            raise ValueError(f"paired tests need the same queries; only in a: {only_a}, only in b: {only_b}")
    va, vb = _values(a), _values(b)
    if va.shape != vb.shape or va.ndim != 1 or len(va) == 0:
        raise ValueError("paired tests need two non-empty sequences of equal length")
    return va, vb


def _bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator,
                     chunk: int = 500) -> np.ndarray:
    """``n_resamples`` means of ``values`` resampled with replacement (scipy's percentile bootstrap).

    Batches of ``chunk`` resamples keep memory at chunk * n_queries indices; with the same generator
    and batch, scipy draws the indices our earlier loop drew (``rng.integers(0, n, (chunk, n))``), so
    seeded results did not move. scipy needs two values; one value resamples to itself, and numpy
    draws nothing for a range of one, so the generator is left where the loop left it.
    """
    from scipy.stats import bootstrap

    if len(values) == 1:
        return np.full(n_resamples, float(values[0]))
    res = bootstrap((values,), np.mean, n_resamples=n_resamples, batch=chunk, vectorized=True,
                    method="percentile", rng=rng)
    return np.asarray(res.bootstrap_distribution, dtype=np.float64)


def bootstrap_ci(per_query: Mapping[str, float] | Sequence[float], n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap confidence interval of the mean over queries: ``{mean, low, high}``.

    Percentile, not scipy's default BCa: on our per-query recall BCa moves the ends by up to 0.03,
    and the percentile interval is the one the results and the paired tests use.
    """
    values = _values(per_query)
    if len(values) == 0:
        raise ValueError("no values")
    means = _bootstrap_means(values, n_resamples, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high)}


def paired_bootstrap(a: Mapping[str, float] | Sequence[float], b: Mapping[str, float] | Sequence[float],
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap over queries of ``mean(b) - mean(a)``.

    Returns ``{mean_a, mean_b, delta, low, high, p_value}``: the percentile interval of the delta
    and a two-sided p-value from the shifted bootstrap distribution (the fraction of resampled
    deltas at least as far from the observed delta as the observed delta is from 0).
    """
    return paired_bootstrap_strata({"all": a}, {"all": b}, n_resamples=n_resamples, confidence=confidence,
                                   seed=seed)


def paired_bootstrap_strata(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]],
                            weights: Mapping[str, float] | None = None, n_resamples: int = 1000,
                            confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of a weighted average over strata (splits): ``sum_s w_s * mean_s(b - a)``.

    ``a`` and ``b`` are ``{stratum: {qid: value}}``; queries are resampled within each stratum, so the
    statistic is exactly the average a table reports: ``weights=None`` weights each stratum by its
    number of queries (the paper's OOD weighted average, i.e. the mean over all queries), equal
    weights give a plain average over languages. Returns the keys of :func:`paired_bootstrap`.
    """
    if set(a) != set(b) or not a:
        raise ValueError(f"paired tests need the same strata; only in a: {sorted(set(a) - set(b))}, "
                         f"only in b: {sorted(set(b) - set(a))}")
    pairs = {s: _paired(a[s], b[s]) for s in a}
    w = {s: float(len(pairs[s][0]) if weights is None else weights[s]) for s in pairs}
    total = sum(w.values())
    rng = np.random.default_rng(seed)
    means = np.zeros(n_resamples)
    mean_a = mean_b = delta = 0.0
    for s, (va, vb) in pairs.items():
        share = w[s] / total
        means += share * _bootstrap_means(vb - va, n_resamples, rng)
        mean_a, mean_b = mean_a + share * float(va.mean()), mean_b + share * float(vb.mean())
        delta += share * float((vb - va).mean())
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    p = (int((np.abs(means - delta) >= abs(delta) - 1e-12).sum()) + 1) / (n_resamples + 1)
    return {"mean_a": mean_a, "mean_b": mean_b, "delta": delta, "low": float(low), "high": float(high),
            "p_value": min(1.0, p)}


def randomization_test(a: Mapping[str, float] | Sequence[float], b: Mapping[str, float] | Sequence[float],
                       n_resamples: int = 10000, seed: int = 0, chunk: int = 1000) -> dict[str, float]:
    """Paired randomization (sign-flip permutation) test of ``mean(b) - mean(a)``; two-sided p-value.

    Under the null the two systems are exchangeable per query, so each per-query difference keeps
    or flips its sign with probability 1/2. ``p = (#{|permuted delta| >= |observed delta|} + 1) / (n + 1)``.

    Not ``scipy.stats.permutation_test(permutation_type="samples")``, which tests the same null: it
    draws its sign flips from another stream (and enumerates all of them for n <= log2(n_resamples)),
    and its two-sided p is twice the smaller one-sided p. On the smoke dataset's per-query recall its
    p-values differed from these by Monte Carlo noise, up to 0.06 at 1,000 resamples, and one of 72
    comparisons crossed 0.05 (0.054 here, 0.049 there); ours keeps seeded p-values where they were.
    """
    va, vb = _paired(a, b)
    diff = vb - va
    delta = float(diff.mean())
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, len(diff))) * 2 - 1
        perm = (signs * diff).mean(axis=1)
        count += int((np.abs(perm) >= abs(delta) - 1e-12).sum())
    return {"mean_a": float(va.mean()), "mean_b": float(vb.mean()), "delta": delta,
            "p_value": (count + 1) / (n_resamples + 1)}


def recall_by_group(qrels: Qrels, run: Run, k: int, group_of: Mapping[str, str],
                    default: str = "unseen") -> dict[str, dict[str, float]]:
    """Recall@k of the relevant documents, pooled by the group each document belongs to.

    Every (query, relevant document) pair counts once: it is a hit when the document is in the query's
    top ``k`` (:func:`rank_documents` order). ``group_of`` maps a document id to its group (e.g.
    ``"head"``/``"tail"`` by training frequency); a document it does not name goes to ``default``.
    Queries absent from ``run`` count as misses, as in :func:`evaluate_run`. Returns
    ``{group: {"recall": hits / relevant, "relevant": n, "queries": queries with one in the group}}``.
    """
    hits: dict[str, int] = {}
    rel: dict[str, int] = {}
    queries: dict[str, set] = {}
    for q, docs in qrels.items():
        top = set(rank_documents(run.get(q, {}))[:k])
        for d, grade in docs.items():
            if grade <= 0:
                continue
            g = group_of.get(d, default)
            rel[g] = rel.get(g, 0) + 1
            hits[g] = hits.get(g, 0) + (d in top)
            queries.setdefault(g, set()).add(q)
    return {g: {"recall": hits[g] / rel[g], "relevant": rel[g], "queries": len(queries[g])} for g in sorted(rel)}
