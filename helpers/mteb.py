"""Score a model on our tasks with MTEB, writing MTEB's own result files.

CLI::

    python -m helpers.mteb --model {bm25, minilm-l6, me5-small, PATH, owner/name} --data DIR --out OUT
        [--tasks step table field workflow] [--splits GLOB ...] [--overwrite] [--batch-size N] [--no-progress]

``DIR`` is a built dataset (``python -m helpers.data build``); ``--splits`` globs pick its split folders
(``dev``, ``'ood*'``, ``'dev-*'``; default all but train), which are MTEB subsets. ``OUT`` receives
``results/<model>/<revision>/Enterprise<Task>Retrieval.json`` and ``model_meta.json`` as ``mteb.evaluate``
writes them (``mteb.load_results`` / ``ResultCache(OUT)`` read them back); results of other models
already there are kept. The tasks, prompts and conventions are in :mod:`helpers.mteb_tasks`.
"""

from __future__ import annotations

import sys
from typing import Sequence

from helpers.cli import Parser, entry, log_warnings, positive_int
from helpers.evaluation import SPEC_HELP
from helpers.mteb_tasks import CREATOR, MTEB_NAMES, run_mteb
from helpers.tasks import EVAL_TASKS, TASKS, validate_tasks


def build_parser() -> Parser:
    p = Parser(prog="python -m helpers.mteb", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help=SPEC_HELP.replace(", or hybrid:A+B", ""))
    p.add_argument("--data", required=True, help="a built dataset folder (it holds beir/<task>/<split>/)")
    p.add_argument("--out", required=True, help="folder for MTEB's result files")
    p.add_argument("--tasks", nargs="+", default=list(EVAL_TASKS), help=f"default: {' '.join(EVAL_TASKS)}")
    p.add_argument("--splits", nargs="+", metavar="GLOB", help="split folders to score, e.g. dev 'ood*' (default: "
                   "all but train)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out this tool did not create")
    p.add_argument("--batch-size", type=positive_int, default=64, help="encoding batch size; default 64")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


@entry
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.mteb``: exit code 0, or 2 for bad input (one line on stderr, nothing written)."""
    args = build_parser().parse_args(argv)
    log_warnings()
    try:
        tasks = validate_tasks(args.tasks)
    except ValueError as e:
        raise ValueError(f"--tasks: {e}") from None
    result = run_mteb(args.model, args.data, tasks, args.splits, out=args.out, overwrite=args.overwrite,
                      batch_size=args.batch_size, show_progress=not args.no_progress)
    print(f"{result['model']} (revision {result['revision']}), MTEB main score per task and split:")
    for task, by_subset in result["scores"].items():
        for subset, value in by_subset.items():
            skipped = result["load_reports"][task].get(subset, {}).get("n_skipped", 0)
            note = f"  ({skipped} queries without a relevant document skipped)" if skipped else ""
            print(f"  {MTEB_NAMES[task]:<29} {subset:<7} {TASKS[task].label:<12} {value:.4f}{note}")
    empty = {k: n for k, n in result["empty_rankings"].items() if n}
    if empty:
        print("queries with an empty ranking (scored 0): " + ", ".join(f"{k} {n}" for k, n in empty.items()))
    print(f"wrote MTEB result files under {args.out}/results ({CREATOR})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
