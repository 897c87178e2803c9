"""Training pairs, from files to what a run trains on: load, cap, budget, mine hard negatives.

1. **Load** (:func:`load_training_pairs`): either the dataset builder's folders ``DATA/train/<task>/``
   (HF ``datasets`` saved with ``save_to_disk``; columns ``query``, ``positive``, ``query_id``,
   ``positive_id``, ``flow_id``) or the user's own JSONL files, one
   ``{"task", "query", "positive"[, "negative"][, "positive_id"]}`` object a line. Each task becomes one
   named dataset with columns ``anchor``, ``positive`` (``negative``) and ``positive_id``; the id column is
   dropped before training (the trainer would otherwise tokenize it as text).
2. **Frequency-based downsampling** (``cap_per_positive: K``, optionally ``cap_per_task: {task: K}``).
   The paper balances over-represented objects but does not give its rule; ours is: *within a task, group
   the pairs by their positive object (``positive_id``; the positive text when no id is given); any object
   with more than K pairs keeps a seeded random K of them, objects with K or fewer keep all*. Order is
   preserved, the RNG is seeded by ``(seed, task)``, so the result depends only on the data, K and the seed.
   The log reports pairs and objects before/after per task and the head (most frequent objects) and tail
   (objects with one pair) of the distribution before and after.
3. **Budget.** ``train_pairs`` (profile) pairs are drawn (seeded; per-task quotas proportional to the
   downsampled task sizes) and the run takes ``ceil(train_pairs * epochs / batch_size)`` optimizer steps.
   Single-task and multi-task runs under the same profile therefore take the same number of steps on the
   same number of pairs; a pool smaller than the budget is repeated (more epochs), never cut short.
   A cap shrinks the popular tasks' pools, so it also moves the budget between tasks; ``task_mix:
   uncapped`` keeps each task's quota as it was before the cap (repeating a pool smaller than it), so a
   cap changes which pairs of a task are trained on, not the task mix.
   ``budget_per_task: true`` multiplies the budget by the number of tasks instead, so a multi-task run sees
   about as many pairs of each task as the single-task run of that task (the paper's setup, where the
   multi-task model trains on the union of the single-task data).
4. **Optional hard negatives** (``hard_negatives: model | bm25``), mined within each task's object set:
   ``model`` uses ``sentence_transformers.util.mine_hard_negatives`` with the base encoder and the task
   prompts, skipping the top ``hn_range_min`` candidates and any candidate within ``hn_relative_margin`` of
   the positive's score; ``bm25`` ranks objects with the baseline's BM25 (:mod:`helpers.retrieval`). Both
   exclude every known positive of the same query text (a query with several gold objects is never given
   one of them as a negative).
"""

from __future__ import annotations

import math
import os
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from helpers.io import DataError, read_jsonl
from helpers.tasks import TASKS, TRAIN_TASKS, validate_tasks


def default_data_dir(profile: str) -> Path:
    """Where ``make data`` and the notebooks build the profile's dataset (data seed 0)."""
    from helpers.workspace import dataset_dir

    return dataset_dir(profile, 0)


def _rows_to_dataset(rows: dict[str, list]):
    from datasets import Dataset

    cols = ["anchor", "positive"] + (["negative"] if "negative" in rows else []) + ["positive_id"]
    return Dataset.from_dict({c: rows[c] for c in cols})


def _read_pairs_jsonl(files: Sequence[str | os.PathLike], tasks: list[str] | None) -> dict[str, dict[str, list]]:
    rows: dict[str, dict[str, list]] = {}
    has_neg: dict[str, bool] = {}
    for path in files:
        for lineno, rec in read_jsonl(path, required=("task", "query", "positive")):
            task = rec["task"]
            if not isinstance(task, str) or task not in TASKS:
                raise DataError(f"unknown task {task!r}; valid tasks: {', '.join(TRAIN_TASKS)}",
                                file=path, line=lineno, field="task")
            if not TASKS[task].trainable:
                raise DataError(f"task {task!r} is evaluation-only; trainable tasks: {', '.join(TRAIN_TASKS)}",
                                file=path, line=lineno, field="task")
            for key in ("query", "positive", "negative", "positive_id"):
                if key in rec and rec[key] is not None and not isinstance(rec[key], str):
                    raise DataError(f"expected a string, got {type(rec[key]).__name__}",
                                    file=path, line=lineno, field=key)
            neg = rec.get("negative")
            if "negative" in rec and (neg is None or not neg.strip()):
                raise DataError("empty value", file=path, line=lineno, field="negative")
            if tasks is not None and task not in tasks:
                continue
            r = rows.setdefault(task, {"anchor": [], "positive": [], "negative": [], "positive_id": []})
            if task in has_neg and has_neg[task] != (neg is not None):
                raise DataError(f"either every line of task {task!r} has a 'negative' or none does",
                                file=path, line=lineno, field="negative")
            has_neg[task] = neg is not None
            r["anchor"].append(rec["query"])
            r["positive"].append(rec["positive"])
            r["negative"].append(neg)
            r["positive_id"].append(rec.get("positive_id") or rec["positive"])
    for task, r in rows.items():
        if not has_neg.get(task):
            del r["negative"]
    return rows


def load_training_pairs(source: str | os.PathLike | Sequence[str | os.PathLike],
                        tasks: Iterable[str] | None = None) -> dict:
    """Training pairs per task: ``{task: Dataset(anchor, positive[, negative], positive_id)}``.

    ``source`` is the dataset builder's output folder (reads ``source/train/<task>/``, saved with
    ``Dataset.save_to_disk``), or one or more JSONL files of ``{"task", "query", "positive"}`` lines
    (optional ``"negative"``, ``"positive_id"``). ``tasks=None`` means every trainable task found.
    Bad lines raise :class:`~helpers.io.DataError` naming the file, line and field; unknown task names list
    the valid ones.
    """
    tasks = None if tasks is None else validate_tasks(tasks, trainable=True)
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from datasets import load_from_disk

        root = Path(source)
        train_root = root / "train" if (root / "train").is_dir() else root
        wanted = tasks if tasks is not None else [t for t in TRAIN_TASKS if (train_root / t).is_dir()]
        if not wanted:
            raise DataError(f"no task folder ({', '.join(TRAIN_TASKS)}) found", file=train_root)
        out = {}
        for t in wanted:
            folder = train_root / t
            if not folder.is_dir():
                raise DataError(f"no training data for task {t!r} (expected a saved dataset folder)", file=folder)
            ds = load_from_disk(str(folder))
            for col in ("query", "positive"):
                if col not in ds.column_names:
                    raise DataError(f"missing column; columns are {ds.column_names}", file=folder, field=col)
            ids = ds["positive_id"] if "positive_id" in ds.column_names else ds["positive"]
            rows = {"anchor": list(ds["query"]), "positive": list(ds["positive"]),
                    "positive_id": [str(i) for i in ids]}
            if "negative" in ds.column_names:
                rows["negative"] = list(ds["negative"])
            if not rows["anchor"]:
                raise DataError(f"task {t!r} has no training pairs", file=folder)
            out[t] = _rows_to_dataset(rows)
        return out

    files = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not files:
        raise DataError("no training JSONL file given")
    rows = _read_pairs_jsonl(files, tasks)
    names = ", ".join(str(f) for f in files)
    if tasks is not None:
        for t in tasks:
            if t not in rows:
                raise DataError(f"no training pairs for task {t!r} in {names}")
    if not rows:
        raise DataError(f"no training pairs in {names}")
    order = tasks if tasks is not None else [t for t in TRAIN_TASKS if t in rows]
    return {t: _rows_to_dataset(rows[t]) for t in order}


def task_rng(seed: int, task: str, purpose: str) -> np.random.Generator:
    """A NumPy RNG seeded by ``(seed, task, purpose)``: each use draws independently of the others."""
    return np.random.default_rng([seed, zlib.crc32(f"{task}:{purpose}".encode())])


def frequency_summary(positive_ids: Sequence[str], head: int = 5) -> dict:
    """Pairs and objects, the ``head`` most frequent objects and the tail (objects with one pair)."""
    c = Counter(positive_ids)
    top = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:head]
    return {"pairs": len(positive_ids), "objects": len(c),
            "max_per_object": max(c.values()) if c else 0,
            "head": [[k, v] for k, v in top],
            "head_share": round(sum(v for _, v in top) / max(1, len(positive_ids)), 4),
            "tail_objects": sum(1 for v in c.values() if v == 1)}


def cap_indices(positive_ids: Sequence[str], cap: int, seed: int, task: str = "") -> list[int]:
    """Indices kept by frequency-based downsampling: at most ``cap`` pairs per positive object.

    Objects with more than ``cap`` pairs keep a random ``cap`` of them (RNG seeded by ``seed`` and
    ``task``); the others keep all. Returned indices are sorted, so the original order is preserved.
    """
    if cap < 1:
        raise ValueError("cap must be >= 1")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, pid in enumerate(positive_ids):
        groups[pid].append(i)
    rng = task_rng(seed, task, "cap")
    keep: list[int] = []
    for pid in sorted(groups):
        idx = groups[pid]
        if len(idx) > cap:
            idx = sorted(rng.choice(idx, size=cap, replace=False).tolist())
        keep.extend(idx)
    return sorted(keep)


def downsample(datasets: dict, cap: int | None, seed: int, cap_per_task: dict[str, int] | None = None,
               head: int = 5) -> tuple[dict, dict]:
    """Apply :func:`cap_indices` per task; returns ``(datasets, report)`` with before/after summaries."""
    report = {}
    out = {}
    for task, ds in datasets.items():
        k = (cap_per_task or {}).get(task, cap)
        before = frequency_summary(ds["positive_id"], head)
        if k is not None:
            ds = ds.select(cap_indices(ds["positive_id"], k, seed, task))
        out[task] = ds
        report[task] = {"cap": k, "before": before, "after": frequency_summary(ds["positive_id"], head)}
    return out, report


def run_budget(cfg, prof, n_tasks: int) -> int | None:
    """Pairs a run draws: the config's ``train_pairs`` or the profile's, times ``n_tasks`` with
    ``budget_per_task``; ``None`` (``train_pairs: all``) keeps every pair."""
    if cfg.train_pairs == "all":
        return None
    if cfg.train_pairs == "ablation":
        budget = prof.ablation_pairs or prof.train_pairs
    else:
        budget = cfg.train_pairs or prof.train_pairs
    if budget is not None and cfg.budget_per_task:
        budget *= n_tasks
    return budget


def sample_budget(datasets: dict, budget: int | None, seed: int, mix_sizes: dict | None = None) -> tuple[dict, dict]:
    """Draw ``budget`` pairs in all, per task in proportion to its size (largest remainder), seeded.

    ``mix_sizes`` (``task_mix: uncapped``): the quotas follow these sizes (the pools before the cap)
    instead of the pools' own, and a pool smaller than its quota is repeated (whole seeded passes, then a
    seeded part), so a cap changes which pairs a task trains on but not how many. Otherwise a task
    smaller than its quota keeps everything. ``budget=None`` keeps all.
    """
    sizes = {t: len(d) for t, d in datasets.items()}
    weights = {t: (mix_sizes or sizes)[t] for t in sizes}
    total = sum(weights.values())
    if budget is None or (mix_sizes is None and budget >= total):
        return dict(datasets), dict(sizes)
    raw = {t: budget * n / total for t, n in weights.items()}
    quota = {t: int(math.floor(v)) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: (-(raw[t] - quota[t]), t))[: budget - sum(quota.values())]:
        quota[t] += 1
    out = {}
    for t, ds in datasets.items():
        rng = task_rng(seed, t, "budget")
        if mix_sizes is None or quota[t] <= len(ds):
            q = max(1, min(quota[t], len(ds)))
            idx = np.sort(rng.choice(len(ds), size=q, replace=False)).tolist()
        else:   # repeated pool: every pair the same number of times, give or take one
            passes, rest = divmod(quota[t], len(ds))
            idx = list(range(len(ds))) * passes + np.sort(rng.choice(len(ds), size=rest, replace=False)).tolist()
        out[t] = ds.select(idx)
    return out, {t: len(d) for t, d in out.items()}


def mine_bm25_negatives(ds, num_negatives: int = 1, range_min: int = 0, range_max: int = 30, seed: int = 0):
    """BM25 hard negatives among the task's own positives, known positives excluded.

    The BM25 is the baseline's (:class:`helpers.retrieval.BM25Retriever`: bm25s, Lucene scoring, the
    identifier-aware tokenizer), so a mined negative is what the baseline would have confused.
    For each distinct query text, objects are ranked by BM25 score (ties: first seen first); ranks
    ``[range_min, range_max)`` that are not a positive of that query are candidates, the top
    ``num_negatives`` are kept. Rows with too few candidates are dropped (counted in the returned stats).
    """
    from helpers.retrieval import BM25Retriever

    docs = list(dict.fromkeys(ds["positive"]))
    doc_idx = {d: i for i, d in enumerate(docs)}
    bm25 = BM25Retriever().index({str(i): {"title": "", "text": d} for i, d in enumerate(docs)})
    positives_of: dict[str, set[int]] = defaultdict(set)
    for a, p in zip(ds["anchor"], ds["positive"]):
        positives_of[a].add(doc_idx[p])
    chosen: dict[str, list[int]] = {}
    for a, pos in positives_of.items():
        scores = bm25.scores(a)
        order = np.lexsort((np.arange(len(docs)), -scores))   # score desc, then index
        cands = [int(i) for i in order if int(i) not in pos][range_min:range_max]
        chosen[a] = cands[:num_negatives]
    return _with_negatives(ds, docs, chosen, num_negatives)


def _with_negatives(ds, docs: list[str], chosen: dict[str, list[int]], num_negatives: int):
    """``ds`` with the chosen negative columns; rows whose query has too few negatives are dropped."""
    from datasets import Dataset

    cols: dict[str, list] = {"anchor": [], "positive": []}
    neg_cols = ["negative"] if num_negatives == 1 else [f"negative_{i + 1}" for i in range(num_negatives)]
    for c in neg_cols:
        cols[c] = []
    cols["positive_id"] = []
    dropped = 0
    for a, p, pid in zip(ds["anchor"], ds["positive"], ds["positive_id"]):
        negs = chosen[a]
        if len(negs) < num_negatives:
            dropped += 1
            continue
        cols["anchor"].append(a)
        cols["positive"].append(p)
        for c, n in zip(neg_cols, negs):
            cols[c].append(docs[n])
        cols["positive_id"].append(pid)
    return Dataset.from_dict(cols), {"method": "bm25", "rows": len(cols["anchor"]), "dropped": dropped}


def mine_model_negatives(ds, model, query_prompt: str, doc_prompt: str, num_negatives: int = 1,
                         range_min: int = 0, range_max: int = 30, relative_margin: float = 0.05,
                         batch_size: int = 64):
    """Hard negatives from the base encoder with ``sentence_transformers.util.mine_hard_negatives``."""
    from sentence_transformers.util import mine_hard_negatives

    n_objects = len(set(ds["positive"]))
    range_max = max(min(range_max, n_objects - 1), range_min + num_negatives)
    pid_of = dict(zip(ds["positive"], ds["positive_id"]))
    mined = mine_hard_negatives(
        ds.select_columns(["anchor", "positive"]), model, anchor_column_name="anchor",
        positive_column_name="positive", range_min=range_min, range_max=range_max,
        relative_margin=relative_margin, num_negatives=num_negatives, sampling_strategy="top",
        query_prompt=query_prompt or None, corpus_prompt=doc_prompt or None,
        output_format="triplet" if num_negatives == 1 else "n-tuple", batch_size=batch_size, verbose=False)
    mined = mined.add_column("positive_id", [pid_of[p] for p in mined["positive"]])
    return mined, {"method": "model", "rows": len(mined), "dropped": len(ds) - len(mined)}
