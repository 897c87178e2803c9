"""Retrievers with one interface: ``index(corpus)`` then ``search(queries, k) -> run``.

``corpus`` is BEIR's ``{doc_id: {"title", "text"}}``, ``queries`` is ``{qid: text}`` and the run is
``{qid: {doc_id: score}}`` holding at most ``k`` documents per query.

Choices shared by every retriever:

* Document text is ``f"{title}: {text}"`` when the title is non-empty, else ``text``
  (:func:`doc_text`). The same string is fed to BM25 and to the encoders so they compete on equal
  input; the colon keeps a title from running into the first sentence.
* Top-k is deterministic and agrees with :mod:`helpers.metrics`: score descending, ties broken by
  document id descending (trec_eval's order), so a run cut at k and the metric's view of it match.
* Each retriever keeps ``timings`` (``index_seconds``, ``search_seconds`` of the last call,
  ``n_docs``, ``n_queries``) and describes itself with ``identity()`` for result files.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from helpers.encoders import DenseEncoder

logger = logging.getLogger(__name__)

Corpus = Mapping[str, Mapping[str, str]]
Queries = Mapping[str, str]
Run = dict[str, dict[str, float]]


def doc_text(doc: Mapping[str, str]) -> str:
    """The text a retriever sees for one corpus entry: ``"title: text"`` or just ``text``."""
    title = (doc.get("title") or "").strip()
    text = doc.get("text") or ""
    return f"{title}: {text}" if title else text


def top_k(scores: np.ndarray, k: int, id_rank: np.ndarray, min_score: float | None = None) -> np.ndarray:
    """Indices of the ``k`` best scores, best first; ties go to the larger document id.

    ``id_rank[i]`` is the position of document ``i``'s id in sorted id order. ``argpartition`` finds
    the k-th best score; every document tied with it is then a candidate, so which of the tied
    documents make the cut does not depend on argpartition's internal order.
    """
    n = len(scores)
    candidates = np.arange(n)
    if min_score is not None:
        candidates = np.nonzero(scores > min_score)[0]
    if len(candidates) == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    sub = scores[candidates]
    if len(candidates) > k:
        kth = np.partition(sub, len(sub) - k)[len(sub) - k]
        keep = sub >= kth
        candidates, sub = candidates[keep], sub[keep]
    order = np.lexsort((-id_rank[candidates], -sub))
    return candidates[order[:k]]


def _id_ranks(ids: Sequence[str]) -> np.ndarray:
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return ranks


class Retriever:
    """Base class: subclasses implement ``_index`` and ``_search``; this class keeps the timings."""

    name = "retriever"

    def __init__(self):
        self.timings: dict[str, float] = {"index_seconds": 0.0, "search_seconds": 0.0, "n_docs": 0, "n_queries": 0}
        self.doc_ids: list[str] = []

    def index(self, corpus: Corpus) -> "Retriever":
        if not corpus:
            raise ValueError("cannot index an empty corpus")
        t0 = time.perf_counter()
        self.doc_ids = list(corpus)
        self._id_rank = _id_ranks(self.doc_ids)
        self._index(corpus)
        self.timings["index_seconds"] = time.perf_counter() - t0
        self.timings["n_docs"] = len(corpus)
        return self

    def search(self, queries: Queries, k: int = 10) -> Run:
        if not self.doc_ids:
            raise RuntimeError(f"{type(self).__name__}.search called before index()")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        t0 = time.perf_counter()
        run = self._search(queries, k)
        self.timings["search_seconds"] = time.perf_counter() - t0
        self.timings["n_queries"] = len(queries)
        return run

    def identity(self) -> dict:
        return {"type": type(self).__name__, "name": self.name}

    def _index(self, corpus: Corpus) -> None:
        raise NotImplementedError

    def _search(self, queries: Queries, k: int) -> Run:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- BM25

# Deliberately short: function words only. Domain words that look generic ("record", "field",
# "table", "update") carry meaning in workflow queries and must stay.
STOPWORDS = frozenset("""
a an the of to in on at by for from with as and or but if then than so
is are was were be been being am do does did has have had it its this that these those
i me my we our you your he she they them their there here
can could should would will shall may might must please
what which who whom whose when where how why
into onto about over under up out off
""".split())

_COMPOUND = re.compile(r"\w+(?:\.\w+)*")
# Splits camelCase / PascalCase / ACRONYMWords / digits: "HTTPServerError2" -> HTTP Server Error 2.
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _words(part: str) -> list[str]:
    if part.isascii():
        return [w.lower() for w in _CAMEL.findall(part)]
    return [part.lower()]


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens that understand code identifiers.

    ``sn_hr_core_case`` -> ``sn hr core case sn_hr_core_case``; ``assignedTo`` -> ``assigned
    assignedto``; ``sys_user.manager`` -> ``sys user manager sys_user.manager sys_user``. A compound
    identifier yields its words (stopwords dropped) and then the whole identifier lowercased, plus
    each dotted part that is itself compound, so a query can match either "cost center" or the exact
    field ``u_cost_center``. Plain words are lowercased and stopwords dropped; no stemming (BM25
    over exact identifiers matters more here than morphology).
    """
    tokens: list[str] = []
    for raw in _COMPOUND.findall(text):
        parts = [p for p in re.split(r"[._]+", raw) if p]
        words = [w for p in parts for w in _words(p)]
        tokens.extend(w for w in words if w not in STOPWORDS)
        lowered = raw.lower()
        if len(words) > 1 or (words and words[0] != lowered):
            tokens.append(lowered)
            if "." in raw:
                for piece in raw.split("."):
                    if len(_words(piece)) > 1:
                        tokens.append(piece.lower())
    return tokens


def _bm25s():
    import bm25s

    # bm25s sets its own logger to DEBUG on import, which floods any app that configures logging;
    # give the level back to the application.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


class BM25Retriever(Retriever):
    """BM25 over :func:`tokenize`, Lucene's scoring, k1=0.9, b=0.4 (Anserini's BEIR defaults).

    Backend: ``bm25s`` (``method="lucene"``, float64). It gives the same scores as ``rank_bm25``'s
    ``BM25Okapi`` given Lucene's idf, up to the constant factor (k1 + 1) that Lucene drops, hence the
    same rankings (tests/test_retrieval.py checks the top-k on a fixture); bm25s scores a query
    from a sparse index instead of a Python loop over every document: on 10k synthetic documents
    and 200 queries, search takes 0.12 s against rank_bm25's 5.1 s (indexing is equal, ~2 s, spent
    in the tokenizer).
    rank_bm25's own idf differs: it floors negative idf at 0.25 x mean idf instead of
    ``log(1 + ...)``. Only documents sharing a term with the query (score > 0) are returned, as in
    Lucene, so a run may hold fewer than k documents.
    """

    name = "bm25"

    def __init__(self, k1: float = 0.9, b: float = 0.4, tokenizer: Callable[[str], list[str]] = tokenize):
        super().__init__()
        self.k1, self.b, self.tokenizer = k1, b, tokenizer

    def identity(self) -> dict:
        bm25s = _bm25s()
        return {"type": "BM25Retriever", "name": self.name, "library": f"bm25s {bm25s.__version__}",
                "method": "lucene", "k1": self.k1, "b": self.b, "tokenizer": getattr(self.tokenizer, "__name__", "?")}

    def _index(self, corpus: Corpus) -> None:
        bm25s = _bm25s()
        tokens = [self.tokenizer(doc_text(corpus[d])) for d in self.doc_ids]
        self._bm25 = bm25s.BM25(k1=self.k1, b=self.b, method="lucene", dtype="float64")
        self._bm25.index(tokens, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed document (in ``doc_ids`` order) for one query."""
        ids = self._bm25.get_tokens_ids(self.tokenizer(query))
        if not ids:
            return np.zeros(len(self.doc_ids))
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float64)

    def _search(self, queries: Queries, k: int) -> Run:
        run: Run = {}
        for qid, text in queries.items():
            s = self.scores(text)
            best = top_k(s, k, self._id_rank, min_score=0.0)
            run[qid] = {self.doc_ids[i]: float(s[i]) for i in best}
        return run


# -------------------------------------------------------------------------------------------- dense

def _from_encoder(attr: str, settable: bool = True) -> property:
    """A DenseRetriever attribute that is its encoder's (read, and set, as before the encoder was its own)."""
    def get(self):
        return getattr(self.dense_encoder, attr)

    def set_(self, value):
        setattr(self.dense_encoder, attr, value)

    return property(get, set_ if settable else None, doc=f"``dense_encoder.{attr}``")


class DenseRetriever(Retriever):
    """Bi-encoder retrieval: a :class:`helpers.encoders.DenseEncoder` encodes, this indexes and searches.

    Search is cosine similarity (the vectors are normalised) with exact top-k. The arguments are the
    encoder's: the model or its name, the prompts of each side, the batch size, the embedding cache
    folder, the label, the precision (``fp32``, ``bf16``, ``int8``) and the encoding length; see
    :class:`~helpers.encoders.DenseEncoder`. Its settings read through (``r.model``, ``r.encoder``,
    ``r.query_prompt``, ``r.precision``, ...), and ``identity()`` records what was encoded.
    """

    name = "dense"

    def __init__(self, model_or_name, query_prompt_name: str | None = None, doc_prompt_name: str | None = None,
                 query_prompt: str | None = None, doc_prompt: str | None = None, batch_size: int = 64,
                 cache_dir: str | os.PathLike | None = None, show_progress: bool = True, name: str | None = None,
                 precision: str = "fp32", max_seq_length: int | None = None):
        super().__init__()
        self.dense_encoder = DenseEncoder(
            model_or_name, query_prompt_name=query_prompt_name, doc_prompt_name=doc_prompt_name,
            query_prompt=query_prompt, doc_prompt=doc_prompt, batch_size=batch_size, cache_dir=cache_dir,
            show_progress=show_progress, name=name, precision=precision, max_seq_length=max_seq_length)
        self.name = self.dense_encoder.model_name
        self.cache_hit = False
        self.n_encoded_docs = 0
        self.n_cached_docs = 0
        self.embeddings: np.ndarray | None = None

    model = _from_encoder("model")
    model_name = _from_encoder("model_name")
    encoder = _from_encoder("encoding_model", settable=False)
    precision = _from_encoder("precision")
    query_prompt_name = _from_encoder("query_prompt_name")
    doc_prompt_name = _from_encoder("doc_prompt_name")
    query_prompt = _from_encoder("query_prompt")
    doc_prompt = _from_encoder("doc_prompt")
    batch_size = _from_encoder("batch_size")
    max_seq_length = _from_encoder("max_seq_length")
    cache_dir = _from_encoder("cache_dir")
    show_progress = _from_encoder("show_progress")
    last_encode = _from_encoder("last_encode")

    def model_identity(self) -> dict:
        return self.dense_encoder.model_identity()

    def identity(self) -> dict:
        return {"type": "DenseRetriever", "name": self.name, **self.dense_encoder.identity(), "similarity": "cosine"}

    def space(self, side: str, prompt: str) -> tuple[str, dict]:
        return self.dense_encoder.space(side, prompt)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Normalised query embeddings (rows in order), through the cache like the corpus."""
        return self.dense_encoder.encode_queries(texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Normalised document embeddings (rows in order) without indexing them: cache warm-up, benchmarks."""
        return self.dense_encoder.encode_documents(texts)

    def _index(self, corpus: Corpus) -> None:
        texts = [doc_text(corpus[d]) for d in self.doc_ids]
        t0 = time.perf_counter()
        self.dense_encoder.refresh()  # weights or max_seq_length may have changed
        self.embeddings, n_new = self.dense_encoder.embed(texts, "document")
        self.n_encoded_docs += n_new
        n_unique = len(set(texts))
        self.n_cached_docs = n_unique - n_new
        self.cache_hit = self.cache_dir is not None and n_new == 0
        self.timings["encode_seconds"] = time.perf_counter() - t0
        self.timings["cache_hit"] = self.cache_hit
        self.timings["n_encoded_docs"], self.timings["n_cached_docs"] = n_new, self.n_cached_docs

    def _search(self, queries: Queries, k: int) -> Run:
        qids = list(queries)
        if not qids:
            return {}
        q = self.encode_queries([queries[qid] for qid in qids])
        run: Run = {}
        # Blocks of queries bound the score matrix to block x n_docs floats.
        block = 256
        for start in range(0, len(qids), block):
            scores = q[start:start + block] @ self.embeddings.T
            for row, qid in enumerate(qids[start:start + block]):
                s = scores[row]
                best = top_k(s, k, self._id_rank)
                run[qid] = {self.doc_ids[i]: float(s[i]) for i in best}
        return run


# ------------------------------------------------------------------------------------------- hybrid

def rrf_fuse(runs: Sequence[Mapping[str, Mapping[str, float]]], k_rrf: int = 60,
             weights: Sequence[float] | None = None) -> Run:
    """Reciprocal-rank fusion: ``score(d) = sum_r w_r / (k_rrf + rank_r(d))`` with 1-based ranks.

    Ranks follow the trec_eval order of each run (score descending, id descending). A document
    absent from a run gets nothing from it. Returns every fused document (not cut to k).
    """
    from helpers.metrics import rank_documents

    weights = list(weights) if weights is not None else [1.0] * len(runs)
    fused: Run = {}
    qids = sorted(set().union(*(r.keys() for r in runs))) if runs else []
    for qid in qids:
        acc: dict[str, float] = {}
        for w, run in zip(weights, runs):
            for rank, doc in enumerate(rank_documents(run.get(qid, {})), start=1):
                acc[doc] = acc.get(doc, 0.0) + w / (k_rrf + rank)
        fused[qid] = acc
    return fused


class HybridRetriever(Retriever):
    """Fusion of several retrievers, each searched ``depth`` deep (default 100).

    ``fusion="rrf"`` (default): reciprocal-rank fusion, equal weights unless ``weights`` are given;
    ``fusion="convex"``: ``weights`` (summing to 1) times per-query normalised scores (``norm``:
    ``"minmax"`` or ``"zscore"``); see :mod:`helpers.fusion`.
    """

    def __init__(self, retrievers: Sequence[Retriever], k_rrf: int = 60, depth: int = 100,
                 weights: Sequence[float] | None = None, fusion: str = "rrf", norm: str = "minmax"):
        from helpers.fusion import check_fusion, check_weights

        super().__init__()
        if len(retrievers) < 2:
            raise ValueError("a hybrid needs at least two retrievers")
        self.retrievers = list(retrievers)
        self.fusion, self.norm = check_fusion(fusion, norm)
        if fusion == "convex":
            weights = check_weights(weights if weights is not None else [1 / len(retrievers)] * len(retrievers),
                                    len(retrievers))
        self.k_rrf, self.depth, self.weights = k_rrf, depth, weights
        self.name = "hybrid:" + "+".join(r.name for r in self.retrievers)
        if fusion == "convex":  # the spec form, every part with its weight (helpers.evaluation.hybrid_weights)
            self.name = "hybrid:" + "+".join(f"{r.name}@{w:g}" for r, w in zip(self.retrievers, weights))

    def identity(self) -> dict:
        ident = {"type": "HybridRetriever", "name": self.name, "fusion": self.fusion, "k_rrf": self.k_rrf,
                 "depth": self.depth, "weights": self.weights, "retrievers": [r.identity() for r in self.retrievers]}
        if self.fusion == "convex":
            ident["norm"] = self.norm
        return ident

    def _index(self, corpus: Corpus) -> None:
        for r in self.retrievers:
            r.index(corpus)
        self.timings["components"] = [dict(r.timings) for r in self.retrievers]

    def _search(self, queries: Queries, k: int) -> Run:
        depth = max(k, self.depth)
        runs = [r.search(queries, depth) for r in self.retrievers]
        self.timings["components"] = [dict(r.timings) for r in self.retrievers]
        from helpers.fusion import fuse_runs

        fused = fuse_runs(runs, self.fusion, self.weights, self.k_rrf, self.norm)
        index_of = {d: i for i, d in enumerate(self.doc_ids)}
        out: Run = {}
        for qid in queries:
            acc = fused.get(qid, {})
            if not acc:
                out[qid] = {}
                continue
            docs = list(acc)
            s = np.array([acc[d] for d in docs])
            ranks = self._id_rank[[index_of[d] for d in docs]]
            best = top_k(s, k, ranks)
            out[qid] = {docs[i]: float(s[i]) for i in best}
        return out
