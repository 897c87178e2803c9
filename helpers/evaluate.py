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

The evaluation itself lives in :mod:`helpers.evaluation` (:func:`~helpers.evaluation.evaluate_folder`,
:func:`~helpers.evaluation.make_retriever`, ...); its names are importable from here too.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Sequence

from helpers.cli import Parser, entry, log_warnings
from helpers.evaluation import (SPEC_HELP, check_known_task, check_specs, evaluate_folder,  # noqa: F401
                                evaluate_path, evaluate_retriever, format_table, make_retriever, sample_queries,
                                select_folders, spec_parts, split_group)
from helpers.io import DataError, atomic_write_json, check_output_file
from helpers.metrics import DEFAULT_KS
from helpers.precision import AUTO, PRECISIONS, resolve_precision


def build_parser() -> Parser:
    p = Parser(prog="python -m helpers.evaluate", description=__doc__.split("\n\n")[0])
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
    p.add_argument("--cache-dir", help="embedding cache folder (default: none; the notebooks use "
                   "$CASE_STUDY_CACHE/embeddings)")
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size; default 64")
    p.add_argument("--no-progress", action="store_true", help="hide encoding progress bars")
    p.add_argument("--precision", choices=PRECISIONS + (AUTO,), default="fp32",
                   help="dense encoding: fp32 (default), bf16 autocast (2.7x faster on CPUs with AVX512-BF16, "
                        "recall within 0.005; 4x slower where emulated), auto (bf16 if this CPU has it "
                        "natively, else fp32) or int8 ONNX (about 3x faster, recall within ~0.02); see "
                        "helpers/quantize.py")
    return p


@entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_warnings()
    # Every input is checked before the (possibly long) evaluation starts.
    if any(k < 1 for k in args.k):
        raise DataError(f"--k values must be >= 1, got {args.k}")
    for flag, value in (("--max-queries", args.max_queries), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise DataError(f"{flag} must be >= 1, got {value}")
    t0 = time.perf_counter()
    try:
        if args.out:
            check_output_file(args.out, overwrite=args.overwrite, creator=CREATOR)
        if not Path(args.data).exists():
            raise DataError("folder not found (--data)", file=args.data)
        if args.splits and (Path(args.data) / "corpus.jsonl").is_file():
            raise DataError("--splits selects folders inside a directory, but --data is one BEIR folder",
                            file=args.data)
        check_specs([args.retriever], "--retriever")
        if all(p.strip() == "bm25" for p in spec_parts(args.retriever)):
            check_known_task(args.task)  # dense parts check the task against the model's prompts
        retriever = make_retriever(args.retriever, task=args.task, cache_dir=_cache_dir(args.cache_dir),
                                   query_prompt=args.query_prompt, doc_prompt=args.doc_prompt,
                                   batch_size=args.batch_size, show_progress=not args.no_progress,
                                   precision=resolve_precision(args.precision))
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


def _cache_dir(given: str | None):
    """``--cache-dir``, else the folder the deprecated ``$CASE_STUDY_EMBEDDING_CACHE`` names (with a warning)."""
    if given or not os.environ.get("CASE_STUDY_EMBEDDING_CACHE"):
        return given
    from helpers.workspace import embedding_cache_dir

    return embedding_cache_dir()


if __name__ == "__main__":
    sys.exit(main())
