"""Training pairs regrouped for whole-catalog training: one group per query, one catalog per task.

The pairs of :func:`helpers.training.pairs.load_training_pairs` (``anchor``, ``positive``,
``positive_id`` per task) hold each query once per gold object: 103,175 pairs are 45,706 distinct queries
in the cpu profile's data. :func:`query_groups` turns them into one :class:`QueryGroup` per
``(task, query)`` with *all* its gold objects, so a step scores a query once against every object instead
of once per pair. :func:`task_catalogs` gathers each task's *training catalog*, every distinct positive
object of the task (128 steps, 47 tables, 891 fields), or takes a catalog the caller gives (e.g. a
corpus), which must then cover every gold object: :func:`check_coverage` fails in one line naming the task
and the object otherwise. :func:`sample_catalog` draws a step's part of a large catalog: the batch's gold
objects and a seeded sample of the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from helpers.io import DataError


@dataclass(frozen=True)
class QueryGroup:
    """A training query with every gold object it has in the pairs; ``pairs`` counts its rows."""

    task: str
    query: str
    gold: tuple[str, ...]        # object ids, first-seen order
    pairs: int
    # gold objects of the query whose pairs a frequency cap removed: neither positives nor negatives
    other_gold: tuple[str, ...] = ()


@dataclass
class TaskCatalog:
    """A task's objects: ids and texts in a fixed order (first seen), and each id's position."""

    task: str
    ids: list[str]
    texts: list[str]

    def __post_init__(self):
        self.index = {i: n for n, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


def _golds(ds) -> tuple[dict[str, dict[str, None]], dict[str, int]]:
    gold: dict[str, dict[str, None]] = {}
    rows: dict[str, int] = {}
    for query, pid in zip(ds["anchor"], ds["positive_id"]):
        gold.setdefault(query, {})[pid] = None
        rows[query] = rows.get(query, 0) + 1
    return gold, rows


def query_groups(datasets: Mapping, known: Mapping | None = None) -> dict[str, list[QueryGroup]]:
    """``{task: [QueryGroup]}`` from ``{task: Dataset(anchor, positive, positive_id)}``, queries in first-seen
    order. A pair repeated in the data counts in ``pairs`` but adds no second gold entry.

    ``known``: the pairs before a frequency cap (same form). A cap keeps some of a query's pairs and drops
    others, but the objects of the dropped pairs are still its gold: they become the group's
    ``other_gold``, left out of the loss (:func:`other_gold_matrix`) instead of being scored as negatives.
    """
    out = {}
    for task, ds in datasets.items():
        gold, rows = _golds(ds)
        every = _golds(known[task])[0] if known is not None and task in known else {}
        out[task] = [QueryGroup(task, q, tuple(g), rows[q], tuple(p for p in every.get(q, ()) if p not in g))
                     for q, g in gold.items()]
    return out


def task_catalogs(datasets: Mapping, corpus: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, TaskCatalog]:
    """Each task's catalog: ``corpus[task]`` (``{id: text}``) when given, else the task's distinct positives.

    An object id seen with two different texts in one task is ambiguous and fails in one line.
    """
    out = {}
    for task, ds in datasets.items():
        if corpus is not None and task in corpus:
            docs = dict(corpus[task])
        else:
            docs = {}
            for text, pid in zip(ds["positive"], ds["positive_id"]):
                if docs.setdefault(pid, text) != text:
                    raise DataError(f"task {task!r}: object {pid!r} has two different positive texts "
                                    f"({docs[pid][:40]!r}..., {text[:40]!r}...)", field="positive_id")
        if not docs:
            raise DataError(f"task {task!r}: the catalog is empty", field="catalog")
        out[task] = TaskCatalog(task, list(docs), list(docs.values()))
    return out


def check_coverage(groups: Mapping[str, list[QueryGroup]], catalogs: Mapping[str, TaskCatalog]) -> None:
    """Every gold object of every group is in its task's catalog, or one DataError line naming both."""
    for task, gs in groups.items():
        if task not in catalogs:
            raise DataError(f"task {task!r} has training queries but no catalog", field="catalog")
        index = catalogs[task].index
        for g in gs:
            for pid in g.gold:
                if pid not in index:
                    raise DataError(f"task {task!r}: the catalog does not cover object {pid!r} "
                                    f"(a gold object of the query {g.query[:60]!r})", field="catalog")


def gold_matrix(batch: list[QueryGroup], columns: list[int], catalog: TaskCatalog):
    """``[len(batch), len(columns)]`` bool tensor: True where the column's object is a gold of the query."""
    import torch

    where = {c: n for n, c in enumerate(columns)}
    gold = torch.zeros(len(batch), len(columns), dtype=torch.bool)
    for r, g in enumerate(batch):
        for pid in g.gold:
            gold[r, where[catalog.index[pid]]] = True
    return gold


def other_gold_matrix(batch: list[QueryGroup], columns: list[int], catalog: TaskCatalog):
    """``[len(batch), len(columns)]`` bool tensor: True where the column's object is one of the query's
    ``other_gold`` (an object the catalog lacks, or a column not scored, is simply not there)."""
    import torch

    where = {c: n for n, c in enumerate(columns)}
    mask = torch.zeros(len(batch), len(columns), dtype=torch.bool)
    for r, g in enumerate(batch):
        for pid in g.other_gold:
            col = where.get(catalog.index.get(pid, -1))
            if col is not None:
                mask[r, col] = True
    return mask


def sample_catalog(batch: list[QueryGroup], catalog: TaskCatalog, size: int | None,
                   rng: np.random.Generator) -> list[int]:
    """Catalog positions a step scores, sorted: all of them (``size`` None or >= the catalog), else the
    batch's gold objects plus a seeded sample of the others, ``max(size, golds)`` in all."""
    n = len(catalog)
    if size is None or size >= n:
        return list(range(n))
    gold = sorted({catalog.index[pid] for g in batch for pid in g.gold})
    others = np.setdiff1d(np.arange(n), np.asarray(gold, dtype=np.int64), assume_unique=True)
    extra = max(0, size - len(gold))
    drawn = rng.choice(others, size=min(extra, len(others)), replace=False) if extra else []
    return sorted(gold + [int(i) for i in drawn])
