"""Evaluate a retriever on one BEIR folder or a directory of them.

CLI::

    python -m helpers.evaluate --retriever {bm25, minilm-l6, me5-small, PATH, hybrid:A+B} --data BEIR_DIR
        [--splits GLOB ...] [--split test] [--k 1 5 10 15] [--task TASK] [--query-prompt TEXT]
        [--doc-prompt TEXT] [--out results.json [--overwrite]] [--max-queries N] [--seed S]
        [--cache-dir DIR] [--batch-size N]

``--data`` is either a BEIR folder (it holds ``corpus.jsonl``) or a directory searched recursively
for BEIR folders; then each is evaluated (``--splits`` globs pick folders by name, e.g. ``'ood*'``)
and, per group of folders, the mean weighted by the number of evaluated queries is reported (the
paper's weighted average over OOD splits). Groups never mix kinds of split: ``train``, ``dev``,
translations (``dev-xx``) and OOD (``oodNN``) folders each get their own mean, per parent folder
(so per task under a dataset's ``beir/``); folders with other names form one group.

Python API, used by the notebooks: :func:`make_retriever`, :func:`evaluate_retriever`,
:func:`evaluate_folder`, :func:`evaluate_path`, :func:`format_table`.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import fnmatch
import re

from helpers.beir import find_beir_folders, load_beir
from helpers.io import DataError, atomic_write_json, check_output_file
from helpers.metrics import DEFAULT_KS, METRICS, evaluate_run, weighted_mean
from helpers.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, Retriever, prompt_names_for

logger = logging.getLogger(__name__)

SPEC_HELP = "bm25, a registered encoder name (minilm-l6, me5-small), a path to a SentenceTransformer folder, " \
            "a Hugging Face Hub id (owner/name; needs hub access), or hybrid:A+B"


def _registered_encoders() -> list[str]:
    from helpers import models

    for attr in ("ENCODERS", "REGISTRY", "MODELS", "BASE_ENCODERS"):
        reg = getattr(models, attr, None)
        if isinstance(reg, dict):
            return sorted(reg)
    return ["me5-small", "minilm-l6"]


def make_retriever(spec: str, task: str | None = None, cache_dir: str | os.PathLike | None = None,
                   query_prompt: str | None = None, doc_prompt: str | None = None, batch_size: int = 64,
                   show_progress: bool = True, precision: str = "fp32") -> Retriever:
    """Build a retriever from a spec string (see :data:`SPEC_HELP`).

    ``precision`` ("fp32" or "int8") applies to dense retrievers (:mod:`helpers.quantize`).

    For dense retrievers ``task`` picks the model's ``<task>_query`` / ``<task>_document`` prompts
    when it has them (:func:`helpers.retrieval.prompt_names_for`); explicit prompt strings win.
    In ``hybrid:A+B`` the same options go to each dense part.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty retriever spec; expected {SPEC_HELP}")
    spec = spec.strip()
    if spec.startswith("hybrid:"):
        parts = _spec_parts(spec)
        if len(parts) < 2 or any(not p.strip() for p in parts):
            raise ValueError(f"bad hybrid spec {spec!r}: expected hybrid:A+B, e.g. hybrid:bm25+minilm-l6")
        if any(p.strip().startswith("hybrid:") for p in parts):
            raise ValueError(f"bad hybrid spec {spec!r}: hybrids do not nest")
        return HybridRetriever([make_retriever(p, task, cache_dir, query_prompt, doc_prompt, batch_size,
                                               show_progress, precision) for p in parts])
    if spec == "bm25":
        return BM25Retriever()
    from helpers.models import _HUB_ID, load_encoder

    # Hub ids (owner/name) go to load_encoder too: users with hub access can evaluate any model.
    if not Path(spec).exists() and spec not in _registered_encoders() and not _HUB_ID.match(spec):
        raise ValueError(f"unknown retriever {spec!r}: expected {SPEC_HELP} "
                         f"(registered encoders: {', '.join(_registered_encoders())})")

    model = load_encoder(spec)
    _check_task(model, spec, task)
    q_name, d_name = prompt_names_for(model, task)
    if task and q_name != f"{task}_query":
        logger.info("%s has no prompts for task %r; using %s/%s", spec, task, q_name, d_name)
    return DenseRetriever(model, query_prompt_name=q_name, doc_prompt_name=d_name, query_prompt=query_prompt,
                          doc_prompt=doc_prompt, batch_size=batch_size, cache_dir=cache_dir,
                          show_progress=show_progress, name=spec, precision=precision)


def _check_task(model, spec: str, task: str | None) -> None:
    """A task a fine-tuned model has no prompts for is an error, not a silent fall-back to generic ones."""
    if not task:
        return
    prompts = getattr(model, "prompts", None) or {}
    trained = sorted(k[: -len("_query")] for k in prompts if k.endswith("_query"))
    if trained and task not in trained:
        raise ValueError(f"--task {task!r}: {spec} has no prompts for this task; it has prompts for: "
                         f"{', '.join(trained)}")
    if not trained:
        _check_known_task(task)


def _check_known_task(task: str | None) -> None:
    from helpers.tasks import TASKS

    if task and task not in TASKS:
        raise ValueError(f"--task: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


def evaluate_retriever(retriever: Retriever, corpus: dict, queries: dict, qrels: dict,
                       ks: Iterable[int] = DEFAULT_KS, metrics: Sequence[str] = METRICS,
                       include_missing: bool = True) -> dict:
    """Index ``corpus``, search ``queries`` to ``max(ks)`` and score against ``qrels``.

    Returns ``{"metrics": {"recall@5": mean, ...}, "per_query": {qid: {...}}, "n_queries", "n_docs",
    "retriever": identity, "timings": {...}}``. Queries absent from ``queries`` are not searched;
    qrels are restricted to the searched queries.
    """
    ks = sorted({int(k) for k in ks})
    retriever.index(corpus)
    run = retriever.search(queries, max(ks))
    qrels = {q: rels for q, rels in qrels.items() if q in queries}
    means, per_query = evaluate_run(qrels, run, ks, metrics, include_missing)
    return {"metrics": means, "per_query": per_query, "n_queries": len(per_query), "n_docs": len(corpus),
            "ks": ks, "retriever": retriever.identity(), "timings": dict(retriever.timings)}


def sample_queries(queries: dict, max_queries: int | None, seed: int = 0) -> dict:
    """At most ``max_queries`` queries, a seeded sample independent of dict order."""
    if max_queries is None or len(queries) <= max_queries:
        return dict(queries)
    chosen = random.Random(seed).sample(sorted(queries), max_queries)
    return {q: queries[q] for q in sorted(chosen)}


def evaluate_folder(retriever: Retriever, folder: str | os.PathLike, split: str = "test",
                    ks: Iterable[int] = DEFAULT_KS, max_queries: int | None = None, seed: int = 0) -> dict:
    """Load one BEIR folder and evaluate; adds ``data``, ``split`` and the loader's ``skipped`` report."""
    corpus, queries, qrels = data = load_beir(folder, split)
    sampled = sample_queries(queries, max_queries, seed)
    result = evaluate_retriever(retriever, corpus, sampled, qrels, ks)
    result.update({"data": str(folder), "split": split, "load_report": data.report.as_dict(),
                   "skipped": {"no_qrels": len(data.report.skipped_no_qrels),
                               "no_relevant": len(data.report.skipped_no_relevant),
                               "not_sampled": len(queries) - len(sampled)}})
    return result


def split_group(name: str) -> str:
    """The group a BEIR folder's mean is taken in, from its path relative to ``--data``.

    ``train``, ``dev``, ``dev-xx`` (translations) and ``oodNN`` folders are kinds that must never
    share a mean; each kind is grouped per parent folder (``field/ood``). Other names share one
    group, ``other``: a user's directory of comparable folders.
    """
    parent, _, last = name.rpartition("/")
    if last == "train":
        kind = "train"
    elif last in ("dev", "test"):
        kind = "dev"
    elif re.fullmatch(r"dev-[A-Za-z_]{2,8}", last):
        kind = "translations"
    elif re.fullmatch(r"ood\d+", last):
        kind = "ood"
    else:
        return "other"
    return f"{parent}/{kind}" if parent else kind


def select_folders(data: Path, folders: list[Path], splits: Sequence[str] | None) -> list[Path]:
    """Folders whose name (relative to ``data``) or last component matches one of the ``splits`` globs."""
    if not splits:
        return folders
    chosen = [f for f in folders
              if any(fnmatch.fnmatchcase(f.name, g) or fnmatch.fnmatchcase(f.relative_to(data).as_posix(), g)
                     for g in splits)]
    if not chosen:
        names = ", ".join(f.relative_to(data).as_posix() for f in folders[:12])
        raise DataError(f"no BEIR folder matches --splits {' '.join(splits)}; found: {names}"
                        f"{' ...' if len(folders) > 12 else ''}", file=data)
    return chosen


def evaluate_path(retriever: Retriever, data: str | os.PathLike, split: str = "test",
                  ks: Iterable[int] = DEFAULT_KS, max_queries: int | None = None, seed: int = 0,
                  splits: Sequence[str] | None = None, progress: bool = False) -> dict:
    """Evaluate a BEIR folder, or every BEIR folder under a directory with a weighted mean per group.

    For a directory: ``{"folders": {relative_name: result}, "groups": {group: {"folders", "weights",
    "weighted_mean", "n_queries"}}}`` with weights = number of evaluated queries per folder and groups
    as :func:`split_group` makes them; ``splits`` (globs) restricts the folders. With a single
    group, its ``weighted_mean`` and ``weights`` are repeated at the top level. ``progress`` shows a
    bar that names the folder being evaluated.
    """
    from tqdm.auto import tqdm

    data = Path(data)
    if (data / "corpus.jsonl").is_file():
        return evaluate_folder(retriever, data, split, ks, max_queries, seed)
    folders = find_beir_folders(data)
    if not folders:
        raise DataError("no BEIR folder (a folder holding corpus.jsonl) found", file=data)
    folders = select_folders(data, folders, splits)
    results = {}
    bar = tqdm(folders, desc="evaluate", unit="folder", disable=not progress)
    for folder in bar:
        name = folder.relative_to(data).as_posix()
        bar.set_description(f"evaluate {name}")
        logger.info("evaluating %s", name)
        results[name] = evaluate_folder(retriever, folder, split, ks, max_queries, seed)
    groups: dict[str, dict] = {}
    for name, r in results.items():
        g = groups.setdefault(split_group(name), {"folders": [], "weights": {}})
        g["folders"].append(name)
        g["weights"][name] = r["n_queries"]
    for g in groups.values():
        g["weighted_mean"] = weighted_mean({n: results[n]["metrics"] for n in g["folders"]}, g["weights"])
        g["n_queries"] = sum(g["weights"].values())
    out = {"data": str(data), "split": split, "splits": list(splits) if splits else None,
           "ks": sorted({int(k) for k in ks}), "retriever": retriever.identity(), "folders": results,
           "groups": groups, "n_queries": sum(r["n_queries"] for r in results.values())}
    if len(groups) == 1:
        only = next(iter(groups.values()))
        out.update(weights=only["weights"], weighted_mean=only["weighted_mean"])
    return out


def format_table(means: dict, ks: Iterable[int], metrics: Sequence[str] = METRICS, title: str = "") -> str:
    """Metrics as a text table: one row per metric, one column per cutoff."""
    ks = sorted({int(k) for k in ks})
    lines = [title] if title else []
    lines.append(f"{'metric':<8}" + "".join(f"{'@' + str(k):>9}" for k in ks))
    for m in metrics:
        cells = "".join(f"{means[f'{m}@{k}']:>9.4f}" if f"{m}@{k}" in means else f"{'-':>9}" for k in ks)
        lines.append(f"{m:<8}" + cells)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--retriever", required=True, help=SPEC_HELP)
    p.add_argument("--data", required=True, help="a BEIR folder, or a directory searched for BEIR folders")
    p.add_argument("--splits", nargs="+", metavar="GLOB",
                   help="in a directory, evaluate only folders whose name matches, e.g. dev 'ood*'")
    p.add_argument("--split", default="test", help="qrels split (qrels/<split>.tsv); default test")
    p.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_KS), help="cutoffs; default 1 5 10 15")
    p.add_argument("--task", help="task name selecting the model's <task>_query/<task>_document prompts")
    p.add_argument("--query-prompt", help="explicit query prompt text (overrides prompt names)")
    p.add_argument("--doc-prompt", help="explicit document prompt text (overrides prompt names)")
    p.add_argument("--out", help="write results as JSON here (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out file this tool did not write")
    p.add_argument("--max-queries", type=int, help="evaluate a seeded sample of at most N queries per folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the query sample; default 0")
    p.add_argument("--cache-dir", help="corpus embedding cache (default $CASE_STUDY_EMBEDDING_CACHE, else none)")
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size; default 64")
    p.add_argument("--no-progress", action="store_true", help="hide encoding progress bars")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                   help="dense encoding: fp32 (default) or int8 ONNX (about 3x faster, see helpers/quantize.py)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Every input is checked before the (possibly long) evaluation starts.
    if any(k < 1 for k in args.k):
        print(f"error: --k values must be >= 1, got {args.k}", file=sys.stderr)
        return 2
    for flag, value in (("--max-queries", args.max_queries), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            print(f"error: {flag} must be >= 1, got {value}", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    try:
        if args.out:
            check_output_file(args.out, overwrite=args.overwrite, creator=CREATOR)
        if not Path(args.data).exists():
            raise DataError("folder not found (--data)", file=args.data)
        if args.splits and (Path(args.data) / "corpus.jsonl").is_file():
            raise DataError("--splits selects folders inside a directory, but --data is one BEIR folder",
                            file=args.data)
        if all(p.strip() == "bm25" for p in _spec_parts(args.retriever)):
            _check_known_task(args.task)  # dense parts check the task against the model's prompts
        retriever = make_retriever(args.retriever, task=args.task, cache_dir=args.cache_dir,
                                   query_prompt=args.query_prompt, doc_prompt=args.doc_prompt,
                                   batch_size=args.batch_size, show_progress=not args.no_progress,
                                   precision=args.precision)
        result = evaluate_path(retriever, args.data, args.split, args.k, args.max_queries, args.seed,
                               splits=args.splits, progress=not args.no_progress)
    except (ValueError, OSError) as e:  # DataError included: it names the file, line and field
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["created_by"] = CREATOR
    result["args"] = vars(args)
    result["wall_seconds"] = time.perf_counter() - t0

    ks = result["ks"]
    if "folders" in result:
        for name, r in result["folders"].items():
            print(format_table(r["metrics"], ks, title=f"{name}  ({r['n_queries']} queries, {r['n_docs']} docs)"))
            print()
        for group, g in result["groups"].items():
            print(format_table(g["weighted_mean"], ks,
                               title=f"{group}: weighted mean over {len(g['folders'])} folder(s) "
                                     f"({g['n_queries']} queries): {', '.join(g['folders'])}"))
            print()
    else:
        sk = result["skipped"]
        print(format_table(result["metrics"], ks, title=f"{args.data} [{args.split}]  {result['retriever']['name']}: "
                           f"{result['n_queries']} queries, {result['n_docs']} docs "
                           f"(skipped: {sk['no_qrels']} without qrels, {sk['no_relevant']} without relevant, "
                           f"{sk['not_sampled']} not sampled)"))
    if args.out:
        try:
            atomic_write_json(args.out, result)
        except OSError as e:
            print(f"error: {args.out}: could not write results ({e.strerror})", file=sys.stderr)
            return 2
        print(f"\nwrote {args.out}")
    return 0


CREATOR = "helpers.evaluate"


def _spec_parts(spec: str) -> list[str]:
    spec = (spec or "").strip()
    return spec[len("hybrid:"):].split("+") if spec.startswith("hybrid:") else [spec]


if __name__ == "__main__":
    sys.exit(main())
