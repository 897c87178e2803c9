"""Fusing the runs of several retrievers with one weight each, and tuning that weight on dev.

Two fusions (:func:`fuse_runs`), both over each retriever's run searched ``depth`` deep:

* ``"rrf"``: reciprocal-rank fusion, ``sum_r w_r / (k_rrf + rank_r(d))``
  (:func:`helpers.retrieval.rrf_fuse`); equal weights are the study's plain hybrid.
* ``"convex"``: a convex combination of normalised scores, ``sum_r w_r * norm_r(d)`` with the weights
  summing to 1 (:func:`convex_fuse`). Scores are normalised per query and per run, min-max by default
  (the run's best document 1, its last 0) or z-score (mean 0, standard deviation 1); a document a run
  did not return gets that run's lowest normalised score for the query, as if ranked last. Bruch et
  al. (2023, "An Analysis of Fusion Functions for Hybrid Retrieval") find this combination, tuned on
  a few queries, ahead of RRF.

A retriever with weight 0 contributes nothing, not even candidates, so weights ``(1, 0)`` give the
first run's ranking exactly and ``(0, 1)`` the second's.

The weight is one per task, chosen on a dev folder from a grid (:func:`tune_weight`,
:func:`tune_hybrid`): each retriever indexes and searches once, and every weight of the grid fuses
those runs, so a grid never re-encodes. The chosen weight is a retriever spec,
``hybrid:bm25+me5-small@0.3`` (0.3 on me5-small, the rest on bm25; see
:func:`helpers.evaluation.hybrid_weights`), for ``helpers.evaluate --retriever``.

CLI::

    python -m helpers.fusion --retriever hybrid:A+B --data DATA [--tasks step table field workflow]
        [--fusion convex|rrf] [--norm minmax|zscore] [--grid 0 0.1 ... 1] [--max-queries N] [--seed S]
        [--cache-dir DIR] [--out FILE [--overwrite]]
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from helpers.cli import Parser, entry, positive_int
from helpers.io import DataError

Run = dict[str, dict[str, float]]
FUSIONS = ("rrf", "convex")
NORMS = ("minmax", "zscore")
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
CREATOR = "helpers.fusion"


def check_fusion(fusion: str, norm: str = "minmax") -> tuple[str, str]:
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
    if norm not in NORMS:
        raise ValueError(f"unknown score normalisation {norm!r}; expected one of {', '.join(NORMS)}")
    return fusion, norm


def normalise(scores: Mapping[str, float], norm: str = "minmax") -> dict[str, float]:
    """One query's scores normalised: min-max to [0, 1] (all 1 when every score is equal) or z-score
    (all 0 when every score is equal)."""
    if not scores:
        return {}
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if norm == "minmax":
        lo, span = values.min(), values.max() - values.min()
        out = (values - lo) / span if span > 0 else np.ones_like(values)
    elif norm == "zscore":
        sd = values.std()
        out = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
    else:
        raise ValueError(f"unknown score normalisation {norm!r}; expected one of {', '.join(NORMS)}")
    return dict(zip(scores, out.tolist()))


def check_weights(weights: Sequence[float], n: int) -> list[float]:
    """Weights of a convex fusion: one per run, each in [0, 1], summing to 1."""
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ValueError(f"a fusion of {n} runs needs {n} weights, got {len(weights)}")
    if any(not 0.0 <= w <= 1.0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise ValueError(f"convex fusion weights must lie in [0, 1] and sum to 1, got {weights}")
    return weights


def convex_fuse(runs: Sequence[Mapping[str, Mapping[str, float]]], weights: Sequence[float],
                norm: str = "minmax") -> Run:
    """``score(d) = sum_r w_r * norm_r(d)`` per query, over the documents of the runs with a weight > 0.

    A document missing from a run gets that run's lowest normalised score for the query (0 for
    min-max); a query missing from a run gets nothing from it. Returns every fused document (not cut).
    """
    weights = check_weights(weights, len(runs))
    used = [(w, run) for w, run in zip(weights, runs) if w > 0]
    fused: Run = {}
    for qid in sorted(set().union(*(r.keys() for _, r in used))) if used else []:
        parts = [(w, normalise(run.get(qid, {}), norm)) for w, run in used]
        docs = sorted(set().union(*(p.keys() for _, p in parts)))
        acc = dict.fromkeys(docs, 0.0)
        for w, scores in parts:
            if not scores:
                continue
            floor = min(scores.values())
            for d in docs:
                acc[d] += w * scores.get(d, floor)
        fused[qid] = acc
    return fused


def fuse_runs(runs: Sequence[Mapping[str, Mapping[str, float]]], fusion: str = "rrf",
              weights: Sequence[float] | None = None, k_rrf: int = 60, norm: str = "minmax") -> Run:
    """Fuse runs by ``fusion`` (module docstring); ``weights=None`` is equal weights."""
    from helpers.retrieval import rrf_fuse

    check_fusion(fusion, norm)
    if fusion == "rrf":
        if weights is not None and len(weights) != len(runs):
            raise ValueError(f"a fusion of {len(runs)} runs needs {len(runs)} weights, got {len(weights)}")
        keep = [i for i in range(len(runs)) if weights is None or weights[i] > 0]
        return rrf_fuse([runs[i] for i in keep], k_rrf, None if weights is None else [weights[i] for i in keep])
    return convex_fuse(runs, weights if weights is not None else [1.0 / len(runs)] * len(runs), norm)


def cut_run(fused: Mapping[str, Mapping[str, float]], k: int) -> Run:
    """The ``k`` best documents per query, in trec_eval order (score descending, id descending), as
    :class:`helpers.retrieval.HybridRetriever` cuts them."""
    from helpers.metrics import rank_documents

    return {qid: {d: float(scores[d]) for d in rank_documents(scores)[:k]} for qid, scores in fused.items()}


# ----------------------------------------------------------------------------------------------------------
# tuning on dev
# ----------------------------------------------------------------------------------------------------------

@dataclass
class FusionTuning:
    """A grid over the weight ``w`` of the last retriever (the others share ``1 - w``) on one dev folder.

    ``scores[w]`` holds the mean metrics of the fused run; ``rrf`` those of equal-weight RRF on the same
    runs, for comparison; ``weight`` is the chosen one (best ``metric``, ties to the smaller ``w``).
    """

    parts: list[str]
    task: str | None
    folder: str
    metric: str
    fusion: str
    norm: str
    scores: dict[float, dict[str, float]] = field(default_factory=dict)
    rrf: dict[str, float] = field(default_factory=dict)
    n_queries: int = 0

    @property
    def weight(self) -> float:
        return max(sorted(self.scores), key=lambda w: (self.scores[w][self.metric], -w))

    @property
    def spec(self) -> str:
        """The chosen hybrid as a retriever spec (convex fusion only: RRF weights have no spec form)."""
        return f"hybrid:{'+'.join(self.parts)}@{self.weight:g}"

    def curve(self) -> list[tuple[float, float]]:
        return [(w, self.scores[w][self.metric]) for w in sorted(self.scores)]

    def as_dict(self) -> dict:
        return {"parts": self.parts, "task": self.task, "folder": self.folder, "metric": self.metric,
                "fusion": self.fusion, "norm": self.norm, "n_queries": self.n_queries, "weight": self.weight,
                "spec": self.spec if self.fusion == "convex" else None, "rrf": self.rrf,
                "scores": [{"weight": w, "metrics": self.scores[w]} for w in sorted(self.scores)]}


def two_weights(w: float, n: int) -> list[float]:
    """``w`` on the last of ``n`` runs, ``1 - w`` shared equally by the others."""
    return [(1.0 - w) / (n - 1)] * (n - 1) + [w]


def tune_weight(runs: Sequence[Run], qrels: Mapping[str, Mapping[str, int]], ks: Sequence[int], metric: str,
                grid: Sequence[float] = WEIGHT_GRID, fusion: str = "convex", norm: str = "minmax",
                k_rrf: int = 60) -> FusionTuning:
    """Score the fusion of fixed ``runs`` at each weight of ``grid`` (pure: the runs are not recomputed)."""
    from helpers.metrics import evaluate_run

    check_fusion(fusion, norm)
    if len(runs) < 2:
        raise ValueError("a fusion needs at least two runs")
    grid = sorted({float(w) for w in grid})
    if not grid or any(not 0.0 <= w <= 1.0 for w in grid):
        raise ValueError(f"--grid: weights must lie in [0, 1], got {grid}")
    k = max(ks)
    tuning = FusionTuning([], None, "", metric, fusion, norm, n_queries=len(qrels))
    for w in grid:
        fused = cut_run(fuse_runs(runs, fusion, two_weights(w, len(runs)), k_rrf, norm), k)
        tuning.scores[w] = evaluate_run(qrels, fused, ks)[0]
    tuning.rrf = evaluate_run(qrels, cut_run(fuse_runs(runs, "rrf", None, k_rrf), k), ks)[0]
    if metric not in tuning.rrf:
        raise ValueError(f"metric {metric!r} is not computed at k = {list(ks)}")
    return tuning


def check_dev_folder(folder: str | os.PathLike) -> None:
    """Weights are tuned on a ``dev`` folder only: OOD, translated, train and test folders are refused."""
    if Path(folder).name != "dev":
        raise ValueError(f"fusion weights are tuned on a dev folder only, not {Path(folder).name!r} ({folder}): "
                         "OOD, translated and test splits are for reporting")


def tune_hybrid(parts: Sequence, folder: str | os.PathLike, task: str | None, factory=None,
                grid: Sequence[float] = WEIGHT_GRID, fusion: str = "convex", norm: str = "minmax",
                depth: int = 100, k_rrf: int = 60, max_queries: int | None = None, seed: int = 0) -> FusionTuning:
    """Tune the weight of a hybrid of ``parts`` (specs or built retrievers) on one dev BEIR folder.

    The queries are :func:`helpers.evaluation.evaluate_folder`'s (the same seeded sample), each part is
    searched ``depth`` deep once, and each weight is scored on the task's cutoffs by its headline metric,
    so ``tune_hybrid(...).scores[w]`` is what ``evaluate_folder`` reports for the hybrid at ``w``.
    """
    from helpers.evaluation import RetrieverFactory, load_sampled, task_ks
    from helpers.tasks import get_task

    check_dev_folder(folder)
    check_fusion(fusion, norm)
    factory = factory or RetrieverFactory(cache_dir=None)
    retrievers = [factory(p, task) if isinstance(p, (str, os.PathLike)) else p for p in parts]
    corpus, queries, qrels, _ = load_sampled(folder, max_queries, seed)
    ks = task_ks(task)
    runs = [r.index(corpus).search(queries, max(depth, max(ks))) for r in retrievers]
    metric = get_task(task).metric_key if task else f"recall@{max(ks)}"
    tuning = tune_weight(runs, qrels, ks, metric, grid, fusion, norm, k_rrf)
    tuning.parts = [str(p) if isinstance(p, (str, os.PathLike)) else p.name for p in parts]
    tuning.task, tuning.folder = task, str(folder)
    return tuning


def tune_hybrid_tasks(parts: Sequence, data_root: str | os.PathLike, tasks: Sequence[str], **options) -> dict:
    """``{task: FusionTuning}`` on each task's dev folder under ``data_root`` (one weight per task)."""
    from helpers.evaluation import RetrieverFactory, find_eval_folder

    folders = {}
    for task in tasks:
        folder = find_eval_folder(data_root, task, "dev")
        if folder is None:
            raise DataError(f"no dev folder for task {task!r} (expected {task}/dev or beir/{task}/dev inside)",
                            file=data_root)
        folders[task] = folder
    options.setdefault("factory", RetrieverFactory(cache_dir=None))  # one model load for every task
    return {task: tune_hybrid(parts, folder, task, **options) for task, folder in folders.items()}


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------

def build_parser() -> Parser:
    p = Parser(prog="python -m helpers.fusion", description=__doc__.split("\n\n")[0])
    p.add_argument("--retriever", required=True, help="a hybrid without weights, e.g. hybrid:bm25+me5-small")
    p.add_argument("--data", required=True, help="a dataset: its <task>/dev (or beir/<task>/dev) folders are used")
    p.add_argument("--tasks", nargs="+", default=["step", "table", "field", "workflow"], help="default: all four")
    p.add_argument("--fusion", choices=FUSIONS, default="convex", help="default convex")
    p.add_argument("--norm", choices=NORMS, default="minmax", help="convex fusion's score normalisation")
    p.add_argument("--grid", type=float, nargs="+", default=list(WEIGHT_GRID),
                   help="weights of the last part to try; default 0 0.1 ... 1")
    p.add_argument("--max-queries", type=positive_int, help="a seeded sample of at most N dev queries per task")
    p.add_argument("--seed", type=int, default=0, help="seed of the query sample; default 0")
    p.add_argument("--cache-dir", help="embedding cache folder (default: none)")
    p.add_argument("--out", help="write the tuning as JSON here (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out file this tool did not write")
    return p


def run(args) -> dict:
    """What the CLI does: ``{task: FusionTuning}``, raising ``ValueError`` / :class:`DataError` on bad input."""
    from helpers.evaluation import RetrieverFactory, hybrid_weights, spec_parts
    from helpers.io import check_output_file
    from helpers.tasks import validate_tasks

    if args.out:
        check_output_file(args.out, overwrite=args.overwrite, creator=CREATOR)
    if not args.retriever.strip().startswith("hybrid:") or hybrid_weights(args.retriever) is not None:
        raise ValueError(f"--retriever: expected a hybrid without weights (hybrid:A+B), got {args.retriever!r}")
    if not Path(args.data).is_dir():
        raise DataError("folder not found (--data)", file=args.data)
    tasks = validate_tasks(args.tasks)
    factory = RetrieverFactory(cache_dir=args.cache_dir)
    return tune_hybrid_tasks(spec_parts(args.retriever), args.data, tasks, factory=factory, grid=args.grid,
                             fusion=args.fusion, norm=args.norm, max_queries=args.max_queries, seed=args.seed)


@entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tunings = run(args)   # bad input: one line and exit 2 (helpers.cli.entry)
    for task, t in tunings.items():
        curve = "  ".join(f"{w:g}:{v:.3f}" for w, v in t.curve())
        chosen = t.spec if t.fusion == "convex" else f"weights {two_weights(t.weight, len(t.parts))}"
        print(f"{task} ({t.n_queries} dev queries, {t.metric}): equal RRF {t.rrf[t.metric]:.4f}; "
              f"{t.fusion} by w: {curve}; chosen w = {t.weight:g} -> {chosen}")
    if args.out:
        from helpers.io import atomic_write_json

        atomic_write_json(args.out, {"created_by": CREATOR, "args": vars(args),
                                     "tasks": {task: t.as_dict() for task, t in tunings.items()}})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
