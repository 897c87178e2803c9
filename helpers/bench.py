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
holds (int8 at least :data:`helpers.bench_precision.TARGET_SPEEDUP` times faster at encoding documents, losing no more than
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
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from helpers.cli import Parser, entry, positive_int
from helpers.io import DataError, atomic_write_json, check_output_file, read_json_object
from helpers.bench_precision import bench_precisions, format_precisions, load_eval_tasks
from helpers.precision import PRECISIONS

DEFAULT_RETRIEVERS = ("bm25", "minilm-l6", "me5-small")

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
