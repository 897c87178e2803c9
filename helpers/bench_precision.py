"""Encoding speed and recall of one retriever at several precisions, side by side on this machine
(``python -m helpers.bench --precisions ...``; the CLI and the per-retriever benchmark are in
:mod:`helpers.bench`)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from helpers.encoders import prompt_names_for
from helpers.io import DataError

# Issue #13's bar for adopting int8: encoding at least this much faster, recall no further than this
# from fp32 on any task. Otherwise fp32 stays the default.
TARGET_SPEEDUP = 2.5
TARGET_RECALL_DELTA = 0.005


def load_eval_tasks(data: str | os.PathLike, tasks: Sequence[str], split: str = "dev",
                    max_queries: int | None = None, seed: int = 0) -> dict[str, tuple[dict, dict, dict]]:
    """``{task: (corpus, queries, qrels)}`` from ``<data>/beir/<task>/<split>`` (or ``<data>/<task>/<split>``).

    The queries are the evaluated sample (:func:`helpers.evaluation.load_sampled`), as in every evaluation.
    """
    from helpers.evaluation import find_eval_folder, load_sampled
    from helpers.tasks import validate_tasks

    out = {}
    for task in validate_tasks(list(tasks)):
        folder = find_eval_folder(data, task, split)
        if folder is None:
            raise DataError(f"no BEIR folder for task {task!r} split {split!r} (expected "
                            f"<dataset>/beir/<task>/<split>/corpus.jsonl)", file=Path(data) / "beir" / task / split)
        out[task] = load_sampled(folder, max_queries, seed)[:3]
    return out


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def bench_precisions(spec: str, precisions: Sequence[str], tasks: dict[str, tuple[dict, dict, dict | None]],
                     chunk: int = 128, batch_size: int = 64, max_seq_length: int | None = None,
                     progress: bool = True) -> dict:
    """Encoding speed and recall of one encoder at several precisions, measured side by side.

    ``tasks`` maps a task name to ``(corpus, queries, qrels)``; with qrels ``None`` only speed is
    measured. Each task uses the model's prompts for it (:func:`helpers.encoders.prompt_names_for`).
    Returns ``{"spec", "precisions": {p: {docs_per_s, queries_per_s, ...}}, "recall": {task: {p: r}},
    "delta": {task: {p: r_p - r_first}}, "cosine_to_first": {p: {mean, min}}, "target": {...}}``.
    """
    from helpers.models import load_encoder
    from helpers.precision import check_precision
    from helpers.retrieval import DenseRetriever

    precisions = [check_precision(p) for p in dict.fromkeys(precisions)]
    if spec == "bm25" or spec.startswith("hybrid:"):
        raise ValueError(f"--precision compares dense encoders; {spec!r} is not one")
    model = load_encoder(spec, max_seq_length=max_seq_length)
    rows: dict[str, dict] = {p: {"load_s": 0.0, "doc_s": 0.0, "n_docs": 0, "query_s": 0.0, "n_queries": 0}
                             for p in precisions}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as cache:
        retrievers = {}
        for p in precisions:
            t0 = time.perf_counter()
            for task in tasks:
                q_name, d_name = prompt_names_for(model, task if task in _task_names() else None)
                retrievers[p, task] = DenseRetriever(model, query_prompt_name=q_name, doc_prompt_name=d_name,
                                                     batch_size=batch_size, cache_dir=cache, show_progress=False,
                                                     name=spec, precision=p)
            rows[p]["load_s"] = time.perf_counter() - t0  # int8: export (first time) or load of the ONNX file
        chunk_s = _time_encoding(retrievers, tasks, precisions, rows, chunk, f"encode {spec}", progress)
        recall, per_query, embeddings = _recall_by_precision(retrievers, tasks, precisions)
    summary = _compare_precisions(precisions, rows, chunk_s, recall, per_query, embeddings)
    return {"spec": spec, "max_seq_length": model.max_seq_length, "chunk": chunk, "batch_size": batch_size,
            "precisions": rows, "recall": recall, **summary,
            "n_eval_queries": {t: len(q) for t, (_, q, qr) in tasks.items() if qr is not None}}


def _time_encoding(retrievers: dict, tasks: dict, precisions: list[str], rows: dict, chunk: int, desc: str,
                   progress: bool) -> dict[str, list[float]]:
    """Encode every task's texts in chunks at each precision, adding model seconds and counts to ``rows``;
    returns each precision's seconds per document chunk (a ratio within a chunk compares two runs seconds
    apart, so its median over chunks shrugs off a burst of load on the machine)."""
    from tqdm.auto import tqdm

    from helpers.retrieval import doc_text

    jobs = []
    for task, (corpus, queries, _) in tasks.items():
        docs = list(dict.fromkeys(doc_text(corpus[d]) for d in sorted(corpus)))
        jobs += [(task, "document", c) for c in _chunks(docs, chunk)]
        texts = list(dict.fromkeys(queries[q] for q in sorted(queries)))
        jobs += [(task, "query", c) for c in _chunks(texts, chunk)]
    chunk_s: dict[str, list[float]] = {p: [] for p in precisions}
    for i, (task, side, texts) in enumerate(tqdm(jobs, desc=desc, disable=not progress)):
        # ABBA: each precision goes first half of the time, so load drift hits both alike.
        for p in (precisions if i % 2 == 0 else precisions[::-1]):
            r = retrievers[p, task]
            (r.encode_documents if side == "document" else r.encode_queries)(texts)
            seconds, count = ("doc_s", "n_docs") if side == "document" else ("query_s", "n_queries")
            rows[p][seconds] += r.last_encode["seconds"]
            rows[p][count] += r.last_encode["n_encoded"]
            if side == "document":
                chunk_s[p].append(r.last_encode["seconds"])
    return chunk_s


def _recall_by_precision(retrievers: dict, tasks: dict, precisions: list[str]) -> tuple[dict, dict, dict]:
    """``(recall, per_query, embeddings)`` of each task (with qrels) at each precision; the vectors come
    from the cache :func:`_time_encoding` filled."""
    from helpers.evaluation import evaluate_retriever
    from helpers.tasks import get_task

    recall: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, dict]] = {}
    embeddings: dict[str, list[np.ndarray]] = {p: [] for p in precisions}
    for task, (corpus, queries, qrels) in tasks.items():
        for p in precisions:
            r = retrievers[p, task]
            if qrels is None:
                embeddings[p].append(r.index(corpus).embeddings)  # served by the cache filled above
                continue
            key = get_task(task).metric_key
            res = evaluate_retriever(r, corpus, queries, qrels, ks=(get_task(task).k,), metrics=("recall",))
            embeddings[p].append(r.embeddings)
            recall.setdefault(task, {})[p] = res["metrics"][key]
            per_query.setdefault(task, {})[p] = {q: v[key] for q, v in res["per_query"].items()}
    return recall, per_query, embeddings


def _compare_precisions(precisions: list[str], rows: dict, chunk_s: dict, recall: dict, per_query: dict,
                        embeddings: dict) -> dict:
    """Speed-ups, cosine and recall changes against the first precision, and the issue #13 verdict.

    Fills the speed fields of ``rows`` in place; returns ``delta``, ``queries_changed``,
    ``cosine_to_first`` and ``target``.
    """
    base = precisions[0]
    for p, row in rows.items():
        row["docs_per_s"] = row["n_docs"] / row["doc_s"] if row["doc_s"] > 0 else None
        row["queries_per_s"] = row["n_queries"] / row["query_s"] if row["query_s"] > 0 else None
        row["docs_speedup"] = (row["docs_per_s"] / rows[base]["docs_per_s"]
                               if row["docs_per_s"] and rows[base]["docs_per_s"] else None)
        row["queries_speedup"] = (row["queries_per_s"] / rows[base]["queries_per_s"]
                                  if row["queries_per_s"] and rows[base]["queries_per_s"] else None)
        ratios = [b / t for b, t in zip(chunk_s[base], chunk_s[p]) if b > 0 and t > 0]
        row["docs_speedup_chunks"] = ({"median": float(np.median(ratios)), "p25": float(np.percentile(ratios, 25)),
                                       "p75": float(np.percentile(ratios, 75)), "n_chunks": len(ratios)}
                                      if ratios else None)
    ref = np.concatenate(embeddings[base])
    cosine = {}
    for p in precisions:
        c = (np.concatenate(embeddings[p]) * ref).sum(1)
        cosine[p] = {"mean": float(c.mean()), "min": float(c.min()), "n_docs": int(len(c))}
    delta = {t: {p: r[p] - r[base] for p in precisions} for t, r in recall.items()}
    changed = {t: {p: sum(1 for q in pq[base] if abs(pq[p][q] - pq[base][q]) > 1e-12) for p in precisions}
               for t, pq in per_query.items()}
    target = {}
    for p in precisions[1:]:
        speed_ok = rows[p]["docs_speedup"] is not None and rows[p]["docs_speedup"] >= TARGET_SPEEDUP
        # The bar is on what int8 costs: a task where it scores higher is not a failure, but the
        # largest change either way is reported too, as a measure of faithfulness.
        loss = max((-d[p] for d in delta.values()), default=None)
        recall_ok = loss <= TARGET_RECALL_DELTA + 1e-12 if loss is not None else None
        target[p] = {"speedup": rows[p]["docs_speedup"], "speedup_ok": speed_ok, "max_recall_loss": loss,
                     "max_abs_recall_delta": max((abs(d[p]) for d in delta.values()), default=None),
                     "recall_ok": recall_ok, "met": bool(speed_ok and recall_ok)}
    return {"delta": delta, "queries_changed": changed, "cosine_to_first": cosine,
            "target": {"speedup": TARGET_SPEEDUP, "recall_delta": TARGET_RECALL_DELTA, "by_precision": target}}


def _task_names() -> set[str]:
    from helpers.tasks import TASKS

    return set(TASKS)


def format_precisions(res: dict) -> str:
    """Side-by-side table of one :func:`bench_precisions` result."""
    tasks = list(res["recall"])
    labels = {t: _task_label(t) for t in tasks}
    head = f"{'precision':<10}{'docs/s':>9}{'x':>7}{'queries/s':>11}{'x':>7}{'cos':>8}" + \
        "".join(f"{labels[t]:>10}" for t in tasks)
    lines = [f"{res['spec']} (max_seq_length {res['max_seq_length']}): model time only, precisions interleaved "
             f"per {res['chunk']} texts", head]
    base = next(iter(res["precisions"]))

    def num(v, fmt):
        return fmt.format(v) if v is not None else "-"

    for p, row in res["precisions"].items():
        lines.append(f"{p:<10}{num(row['docs_per_s'], '{:.1f}'):>9}{num(row['docs_speedup'], '{:.2f}'):>7}"
                     f"{num(row['queries_per_s'], '{:.1f}'):>11}{num(row['queries_speedup'], '{:.2f}'):>7}"
                     f"{res['cosine_to_first'][p]['mean']:>8.4f}"
                     + "".join(f"{res['recall'][t][p]:>10.4f}" for t in tasks))
    for p in list(res["precisions"])[1:]:
        ch = res["precisions"][p].get("docs_speedup_chunks")
        if ch:
            lines.append(f"{p} docs speed-up per chunk of {res['chunk']}: median {ch['median']:.2f}x, "
                         f"quartiles {ch['p25']:.2f}-{ch['p75']:.2f} over {ch['n_chunks']} chunks")
        if tasks:
            lines.append(f"{p + '-' + base:<52}" + "".join(f"{res['delta'][t][p]:>+10.4f}" for t in tasks))
            lines.append(f"{'queries changed':<52}" + "".join(
                f"{str(res['queries_changed'][t][p]) + '/' + str(res['n_eval_queries'][t]):>10}" for t in tasks))
        tg = res["target"]["by_precision"][p]
        if tg["recall_ok"] is None:
            verdict = ("speed target met" if tg["speedup_ok"] else "speed target NOT met") + " (no recall measured)"
        else:
            why = [w for w, ok in (("too slow", tg["speedup_ok"]), ("loses too much recall", tg["recall_ok"])) if not ok]
            verdict = "met" if tg["met"] else f"NOT met ({', '.join(why)}): keep {base}"
            verdict += f"; largest change either way {tg['max_abs_recall_delta']:.4f}"
        lines.append(f"target for {p} (>= {res['target']['speedup']}x docs/s, recall loss <= "
                     f"{res['target']['recall_delta']} on every task): {verdict}")
    return "\n".join(lines)


def _task_label(task: str) -> str:
    from helpers.tasks import TASKS

    return TASKS[task].label if task in TASKS else task
