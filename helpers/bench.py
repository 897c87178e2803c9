"""Speed and memory of the retrievers on this machine.

CLI::

    python -m helpers.bench [--data BEIR_DIR] [--retrievers bm25 minilm-l6 me5-small]
        [--n-docs N] [--n-queries N] [--out bench.json] [--seed S]
    python -m helpers.bench --precision fp32 int8 --retrievers me5-small [--data DATASET_DIR]
        [--tasks step table field] [--eval-split dev] [--max-seq-length N] [--out bench.json]

Per retriever, in one process and one after the other:

``load_s``          building the retriever (loading the model weights for encoders)
``index_s``         indexing the corpus (tokenizing + BM25 index, or encoding every document)
``docs_per_s``      indexing throughput, documents per second
``query_p50_ms``    single-query latency (one ``search`` call per query, after one warm-up query),
``query_p95_ms``    median and 95th percentile
``batch_qps``       queries per second when all queries are searched in one call
``peak_rss_mb``     peak resident memory above the level before the retriever was built, i.e. model
                    + index + search working set. Measured from ``/proc/self/status``: VmHWM (peak
                    RSS) is reset through ``/proc/self/clear_refs`` before each retriever, so each
                    peak is its own; where that reset is refused the value is an upper bound and
                    ``memory_method`` says so.

Without ``--data`` a deterministic (seeded) corpus of enterprise-workflow-like texts is generated.
The embedding cache is off, so encoders are really timed. Numbers depend on the machine's load; they
are for orders of magnitude, not for tests.

``--precision fp32 int8`` compares encoding precisions of each dense retriever instead (see
:func:`bench_precisions`): documents and queries per second of model time side by side, and, when
``--data`` is a dataset folder (``beir/<task>/<split>``), recall at each task's k (Step@15, Table@5,
Field@5) for every precision, the change against the first precision, and whether the issue #13 target
holds (int8 at least ``TARGET_SPEEDUP`` times faster at encoding documents, losing no more than
``TARGET_RECALL_DELTA`` recall on any task). To make the ratio robust to a shared, fluctuating CPU the
precisions take turns on chunks of ``--chunk`` texts (ABBA order) rather than running one after the
other; each unique text is encoded once per precision (a temporary embedding cache serves the
evaluation afterwards).
"""

from __future__ import annotations

import gc
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from helpers.cli import Parser, entry, positive_int
from helpers.encoders import prompt_names_for
from helpers.io import DataError, atomic_write_json, check_output_file, read_json_object
from helpers.precision import PRECISIONS

DEFAULT_RETRIEVERS = ("bm25", "minilm-l6", "me5-small")

# Issue #13's bar for adopting int8: encoding at least this much faster, recall no further than this
# from fp32 on any task. Otherwise fp32 stays the default.
TARGET_SPEEDUP = 2.5
TARGET_RECALL_DELTA = 0.005

_TABLES = ["sn_hr_core_case", "incident", "change_request", "sys_user", "sys_user_group", "cmn_department",
           "cmn_location", "core_company", "sc_req_item", "problem", "alm_asset", "cmdb_ci_server",
           "sn_customerservice_case", "fm_expense_line", "pm_project", "kb_knowledge"]
_FIELDS = ["assigned_to", "u_cost_center", "manager", "state", "priority", "short_description", "due_date",
           "approval", "opened_by", "location", "department", "category", "assignment_group", "impact"]
_VERBS = ["Create a record in", "Update the record in", "Look up records in", "Ask for approval on",
          "Send a notification about", "Wait for a condition on", "Delete the record in", "Copy fields from"]
_NOUNS = ["employee", "manager", "laptop", "onboarding", "expense report", "purchase order", "vendor",
          "customer", "server outage", "password reset", "travel request", "contract", "invoice", "badge"]
_ADJ = ["new", "urgent", "pending", "approved", "rejected", "overdue", "assigned", "closed", "escalated"]


def synth_corpus(n_docs: int, n_queries: int, seed: int = 0) -> tuple[dict, dict]:
    """A seeded corpus of workflow-step descriptions and queries paraphrasing some of them."""
    rng = random.Random(seed)
    corpus, queries = {}, {}
    for i in range(n_docs):
        table, field, verb = rng.choice(_TABLES), rng.choice(_FIELDS), rng.choice(_VERBS)
        noun, adj = rng.choice(_NOUNS), rng.choice(_ADJ)
        text = (f"{verb} {table} when the {adj} {noun} changes; set {field} from the trigger record "
                f"and route it to the {rng.choice(_FIELDS).replace('_', ' ')} owner. "
                f"Step {rng.randint(1, 40)} of the {rng.choice(_NOUNS)} flow.")
        corpus[f"doc{i:06d}"] = {"title": f"{verb} {table}".strip(), "text": text}
    ids = sorted(corpus)
    for j in range(n_queries):
        doc = corpus[rng.choice(ids)]["text"]
        words = re.findall(r"\w+", doc)
        start = rng.randrange(0, max(1, len(words) - 8))
        queries[f"q{j:05d}"] = "how do I " + " ".join(words[start:start + rng.randint(4, 8)]).replace("_", " ")
    return corpus, queries


def _status() -> dict[str, int]:
    """VmRSS and VmHWM in kB from /proc/self/status ({} where /proc is absent)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    out = {}
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+)\s+kB", text, re.M)
        if m:
            out[key] = int(m.group(1))
    return out


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5 = reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else float("nan")


def bench_one(spec: str, corpus: dict, queries: dict, n_latency: int = 50, k: int = 10) -> dict:
    """Time and measure one retriever spec (see the module doc for the fields)."""
    from helpers.evaluation import make_retriever

    gc.collect()
    reset = _reset_peak()
    before = _status()
    t0 = time.perf_counter()
    retriever = make_retriever(spec, show_progress=False)
    for r in getattr(retriever, "retrievers", [retriever]):
        if hasattr(r, "cache_dir"):
            r.cache_dir = None  # timing must include the encoding, never a cache hit
    load_s = time.perf_counter() - t0
    after_load = _status()

    t0 = time.perf_counter()
    retriever.index(corpus)
    index_s = time.perf_counter() - t0

    qids = sorted(queries)
    retriever.search({qids[0]: queries[qids[0]]}, k)  # warm-up: first call pays lazy initialisation
    lat = []
    for qid in qids[:n_latency]:
        t0 = time.perf_counter()
        retriever.search({qid: queries[qid]}, k)
        lat.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    retriever.search(queries, k)
    batch_s = time.perf_counter() - t0
    after = _status()

    row = {"retriever": spec, "identity": retriever.identity(), "n_docs": len(corpus), "n_queries": len(queries),
           "load_s": load_s, "index_s": index_s, "docs_per_s": len(corpus) / index_s if index_s > 0 else None,
           "query_p50_ms": _percentile(lat, 0.5), "query_p95_ms": _percentile(lat, 0.95),
           "n_latency_queries": len(lat), "batch_qps": len(queries) / batch_s if batch_s > 0 else None,
           "batch_s": batch_s}
    if before and after:
        row["rss_before_mb"] = before["VmRSS"] / 1024
        row["load_rss_mb"] = (after_load["VmRSS"] - before["VmRSS"]) / 1024
        row["peak_rss_mb"] = (after["VmHWM"] - before["VmRSS"]) / 1024
        row["memory_method"] = ("/proc/self/status VmHWM - VmRSS before, VmHWM reset via /proc/self/clear_refs"
                                if reset else "/proc/self/status VmHWM (not resettable here: upper bound)")
    else:
        row["memory_method"] = "unavailable (no /proc)"
    del retriever
    gc.collect()
    return row


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


def format_rows(rows: list[dict]) -> str:
    cols = [("retriever", "{}", 12), ("load_s", "{:.2f}", 8), ("index_s", "{:.2f}", 9), ("docs_per_s", "{:.0f}", 11),
            ("query_p50_ms", "{:.2f}", 13), ("query_p95_ms", "{:.2f}", 13), ("batch_qps", "{:.0f}", 10),
            ("peak_rss_mb", "{:.0f}", 12)]
    lines = ["".join(f"{name:>{w}}" for name, _, w in cols)]
    for r in rows:
        cells = []
        for name, fmt, w in cols:
            v = r.get(name)
            cells.append(f"{(fmt.format(v) if v is not None else '-'):>{w}}")
        lines.append("".join(cells))
    return "\n".join(lines)


CREATOR = "helpers.bench"


def _parser() -> Parser:
    p = Parser(prog="python -m helpers.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="a BEIR folder (or a directory: its first BEIR folder); default synthetic")
    p.add_argument("--split", default="test")
    p.add_argument("--retrievers", nargs="+", default=list(DEFAULT_RETRIEVERS))
    p.add_argument("--n-docs", type=positive_int, help="documents (default 2000 synthetic / all of --data)")
    p.add_argument("--n-queries", type=positive_int, help="queries (default 200 synthetic / all of --data)")
    p.add_argument("--n-latency", type=positive_int, default=50, help="queries timed one by one; default 50")
    p.add_argument("--k", type=positive_int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write JSON here (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out file this tool did not write")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS,
                   help="compare encoding precisions of each dense retriever (first = reference), e.g. "
                        "--precision fp32 int8; with --data DATASET also dev recall per task")
    p.add_argument("--tasks", nargs="+", default=["step", "table", "field"], help="with --precision and --data")
    p.add_argument("--eval-split", default="dev", help="with --precision and --data: beir/<task>/<split>")
    p.add_argument("--max-queries", type=positive_int, help="with --precision: seeded sample per task")
    p.add_argument("--max-seq-length", type=positive_int, help="with --precision: override the model's")
    p.add_argument("--chunk", type=positive_int, default=128, help="with --precision: texts per interleaved turn")
    p.add_argument("--batch-size", type=positive_int, default=64)
    return p


@entry
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.bench``: exit code 0, or 2 for bad input (one line on stderr, nothing written)."""
    args = _parser().parse_args(argv)
    from helpers.evaluation import check_specs

    check_specs(args.retrievers, "--retrievers")
    if args.out:
        check_output_file(args.out, overwrite=args.overwrite, creator=CREATOR, ours=_written_before_created_by)
    if args.precision:
        return _main_precision(args)
    corpus, queries, source = _bench_data(args)

    import torch

    meta = {"data": source, "n_docs": len(corpus), "n_queries": len(queries), "k": args.k,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    rows = []
    for spec in args.retrievers:
        print(f"benchmarking {spec} ...", flush=True)
        rows.append(bench_one(spec, corpus, queries, n_latency=args.n_latency, k=args.k))
    print(f"{meta['data']}: {meta['n_docs']} docs, {meta['n_queries']} queries, torch threads {meta['torch_threads']}")
    print(format_rows(rows))
    if args.out:
        atomic_write_json(args.out, {"created_by": CREATOR, "meta": meta, "results": rows})
        print(f"wrote {args.out}")
    return 0


def _written_before_created_by(path: Path) -> bool:
    meta = (read_json_object(path) or {}).get("meta")
    return isinstance(meta, dict) and "torch_threads" in meta


def _bench_data(args) -> tuple[dict, dict, str]:
    """The corpus and queries to time: the first BEIR folder of ``--data``, or a synthetic corpus."""
    if not args.data:
        corpus, queries = synth_corpus(args.n_docs or 2000, args.n_queries or 200, args.seed)
        return corpus, queries, f"synthetic(seed={args.seed})"
    from helpers.beir import find_beir_folders, load_beir

    folder = Path(args.data)
    if not folder.is_dir():
        raise DataError("folder not found (--data)", file=folder)
    if not (folder / "corpus.jsonl").is_file():
        folders = find_beir_folders(folder)
        if not folders:
            raise DataError("no BEIR folder (corpus.jsonl, queries.jsonl, qrels/) under it (--data)", file=folder)
        folder = folders[0]
    corpus, queries, _ = load_beir(folder, args.split)
    ids, qids = sorted(corpus)[:args.n_docs], sorted(queries)[:args.n_queries]
    if not ids or not qids:
        raise DataError(f"nothing to time: {len(ids)} documents, {len(qids)} queries (--data)", file=folder)
    return {d: corpus[d] for d in ids}, {q: queries[q] for q in qids}, str(folder)


def _main_precision(args) -> int:
    import torch

    specs = [s for s in args.retrievers if s != "bm25" and not s.startswith("hybrid:")]
    if args.retrievers == list(DEFAULT_RETRIEVERS):
        specs = ["me5-small"]  # the study's encoder, unless named otherwise
    if not specs:
        raise DataError("--precision needs a dense retriever in --retrievers (e.g. me5-small)")
    if args.data:
        tasks = load_eval_tasks(args.data, args.tasks, args.eval_split, args.max_queries, args.seed)
        source = f"{args.data} ({args.eval_split}: {', '.join(tasks)})"
    else:
        corpus, queries = synth_corpus(args.n_docs or 2000, args.n_queries or 200, args.seed)
        tasks = {"synthetic": (corpus, queries, None)}
        source = f"synthetic(seed={args.seed}), no recall"
    meta = {"data": source, "n_docs": sum(len(c) for c, _, _ in tasks.values()),
            "n_queries": sum(len(q) for _, q, _ in tasks.values()), "precisions": list(args.precision),
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "load_1min_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    results = []
    for spec in specs:
        print(f"benchmarking {spec} at {' vs '.join(args.precision)} ...", flush=True)
        results.append(bench_precisions(spec, args.precision, tasks, chunk=args.chunk, batch_size=args.batch_size,
                                        max_seq_length=args.max_seq_length))
    meta["load_1min_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    load = (f", load average {meta['load_1min_before']:.1f} -> {meta['load_1min_after']:.1f}"
            if meta["load_1min_before"] is not None else "")
    print(f"{meta['data']}: {meta['n_docs']} docs, {meta['n_queries']} queries, torch threads "
          f"{meta['torch_threads']}{load}")
    for res in results:
        print(format_precisions(res))
    if args.out:
        atomic_write_json(args.out, {"created_by": CREATOR, "meta": meta, "precision": results})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
