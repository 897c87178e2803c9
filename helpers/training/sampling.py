"""Batches of one task each, tasks mixed by a rule (``mixing: proportional | round_robin | temperature``).

Each batch holds pairs of one task only (LLM-Embedder's homogeneous in-batch negatives), because a
``DatasetDict`` goes through a multi-dataset batch sampler: ``proportional`` and ``round_robin`` use
sentence-transformers' samplers, ``temperature`` uses :class:`TaskMixingBatchSampler` (task ``i`` drawn
with weight ``n_i ** (1/T)``, seeded). Inside a task batches come from
:class:`FullBatchNoDuplicatesSampler`: no text twice in a batch (so no false in-batch negatives) *and*
every batch full. sentence-transformers' ``NO_DUPLICATES`` sampler ends each
pass with the pairs it had to defer, and those share their positives (the many queries of one popular table
or step), so a pass ends in a run of small batches: in the cpu study table batches averaged 16 of 32 pairs
and some held one pair (loss 0), so a run saw 51-71% of the pairs its budget paid for, differently per task.

*Length-grouped batches are not used*: HF ``group_by_length`` is ignored once a batch sampler is set,
and a length-bucketing sampler would have to run inside the no-duplicates, per-task samplers, where it
would group queries of the same template (and so often the same objects), starving in-batch negatives.
Dynamic padding to the longest sequence of each batch plus a fitted ``max_seq_length`` already removes
most padding waste (see ``helpers.bench_train``).

Under DDP the sampler emits ``N`` consecutive batches of the same task so every process of a step works
on the same task (accelerate hands batch ``i`` to process ``i % N``), keeping the gathered negatives
homogeneous.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np

from helpers.training.config import MIXINGS

logger = logging.getLogger(__name__)


def temperature_weights(sizes: Sequence[int], temperature: float) -> np.ndarray:
    """Sampling weights ``n_i ** (1/T)``, normalised. ``T=1``: proportional; large ``T``: uniform."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    s = np.asarray(sizes, dtype=np.float64)
    if (s < 0).any() or s.sum() <= 0:
        raise ValueError(f"sizes must be >= 0 with a positive sum, got {list(sizes)}")
    w = np.where(s > 0, s ** (1.0 / temperature), 0.0)
    return w / w.sum()


# The samplers must be importable at module level: the training arguments name them and are pickled
# with checkpoints.
try:
    from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler as _Base
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler as _NoDupBase
except Exception:  # pragma: no cover - sentence-transformers missing or moved
    _Base = _NoDupBase = object


class FullBatchNoDuplicatesSampler(_NoDupBase):
    """One task's batches: no value (query or document text) twice in a batch, every batch full.

    The rows are read as one stream of seeded permutations (``seed + epoch``, then the next draws of the
    generator). A row whose text clashes with the batch being filled is deferred and tried first for the next
    batch; when the current permutation runs out mid-batch the next one takes over, so a pass never ends in
    the small leftover batches of ``NoDuplicatesBatchSampler``. An epoch is ``len(self)`` batches (the
    base class's: ``ceil(rows / batch_size)``; ``drop_last`` rounds down). A permutation is used up (deferred rows
    first) before the next one starts, so rows repeat only at the seam or in an epoch longer than the
    dataset; rows the epoch never reached (a popular positive's queries beyond one per batch) are
    counted in ``self.unused_rows``. A batch can only be short when the whole dataset has fewer than
    ``batch_size`` mutually distinct rows; such batches are counted in ``self.short_batches`` and logged.
    """

    def _row_values(self) -> list[frozenset]:
        if getattr(self, "_values", None) is None:
            from sentence_transformers.base.sampler import _EXCLUDE_DATASET_COLUMNS, _sample_value_str
            cols = [list(self.dataset[c]) for c in self.dataset.column_names if c not in _EXCLUDE_DATASET_COLUMNS]
            self._values = [frozenset(_sample_value_str(col[i]) for col in cols) for i in range(len(self.dataset))]
        return self._values

    def __iter__(self) -> Iterator[list[int]]:
        import torch

        n, bs = len(self.dataset), self.batch_size
        if n == 0:
            return
        gen = self.generator if self.generator is not None else torch.Generator()
        gen.manual_seed(int(self.seed or 0) + int(self.epoch))
        values = self._row_values()
        deferred: list[int] = []
        stream: list[int] = torch.randperm(n, generator=gen).tolist()
        pos = 0
        self.short_batches = 0
        used: set[int] = set()
        for _ in range(len(self)):
            batch: list[int] = []
            seen: set = set()
            still_deferred: list[int] = []
            appended = False

            def take(idx: int) -> None:
                if values[idx].isdisjoint(seen):
                    batch.append(idx)
                    seen.update(values[idx])
                else:
                    still_deferred.append(idx)

            for idx in deferred:
                if len(batch) < bs:
                    take(idx)
                else:
                    still_deferred.append(idx)
            while len(batch) < bs:
                if pos == len(stream):
                    if appended:    # a whole fresh permutation could not fill it: too few distinct rows
                        break
                    stream, pos, appended = torch.randperm(n, generator=gen).tolist(), 0, True
                take(stream[pos])
                pos += 1
            deferred = still_deferred
            if len(batch) < bs:
                self.short_batches += 1
                logger.warning("FullBatchNoDuplicatesSampler: %d distinct rows cannot fill a batch of %d",
                               len(batch), bs)
                if not batch:
                    return
            used.update(batch)
            self.unused_rows = n - len(used)
            yield batch


class TaskMixingBatchSampler(_Base):
    """Multi-dataset batch sampler: every batch from one task; tasks mixed by ``mode``.

    ``mode="temperature"``: each group of batches picks task ``i`` with probability ``n_i ** (1/T)`` (normalised;
    ``n_i`` = pairs of task ``i``), drawn from a NumPy RNG seeded with ``seed + epoch``; a task whose batches run
    out starts a new reshuffled pass, so small tasks can be up-sampled. ``"proportional"``: every batch of every
    task once, in seeded random order. ``"round_robin"``: tasks in turn until the smallest runs out.
    ``group_size``: consecutive batches of the same task per draw (= number of processes under DDP, so the
    processes of one optimizer step all train on the same task). Length: the sum of the per-task batch counts
    (``min * n_tasks`` for round robin), rounded down to a multiple of ``group_size``.
    """

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, temperature: float = 2.0,
                 mode: str = "temperature", group_size: int = 1) -> None:
        super().__init__(dataset, batch_samplers=batch_samplers, generator=generator, seed=seed)
        if mode not in MIXINGS:
            raise ValueError(f"mode must be one of {MIXINGS}")
        self.mode = mode
        self.temperature = float(temperature)
        self.group_size = max(1, int(group_size))
        self.sizes = [len(d) for d in dataset.datasets]
        self.weights = temperature_weights(self.sizes, self.temperature)

    def _plan(self) -> list[int]:
        g = self.group_size
        rng = np.random.default_rng(int(self.seed or 0) + int(self.epoch))
        lens = [len(s) // g for s in self.batch_samplers]
        if self.mode == "round_robin":
            return list(range(len(lens))) * min(lens)
        if self.mode == "proportional":
            plan = [i for i, n in enumerate(lens) for _ in range(n)]
            return [plan[j] for j in rng.permutation(len(plan))]
        return rng.choice(len(lens), size=sum(lens), p=self.weights).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        iters: dict[int, Iterator] = {}
        passes = defaultdict(int)

        def next_batch(i: int) -> list[int]:
            for _ in range(3):
                if i not in iters:
                    sampler = self.batch_samplers[i]
                    if hasattr(sampler, "set_epoch"):
                        sampler.set_epoch(self.epoch * 1009 + passes[i])
                    passes[i] += 1
                    iters[i] = iter(sampler)
                try:
                    return next(iters[i])
                except StopIteration:
                    del iters[i]
            raise RuntimeError(f"batch sampler of dataset {i} yields no batch")

        for i in self._plan():
            for _ in range(self.group_size):
                yield [idx + offsets[i] for idx in next_batch(i)]

    def __len__(self) -> int:
        g = self.group_size
        lens = [len(s) // g for s in self.batch_samplers]
        n = min(lens) * len(lens) if self.mode == "round_robin" else sum(lens)
        return n * g


class _MixingFactory:
    """Picklable callable handed to the training arguments as ``multi_dataset_batch_sampler``.

    Checkpoints pickle it by module path: ``helpers.train`` re-exports it so checkpoints written
    before the split into ``helpers.training`` still resume.
    """

    def __init__(self, mode: str, temperature: float, group_size: int):
        self.mode, self.temperature, self.group_size = mode, temperature, group_size

    def __call__(self, dataset, batch_samplers, generator=None, seed=0):
        return TaskMixingBatchSampler(dataset, batch_samplers, generator=generator, seed=seed,
                                      temperature=self.temperature, mode=self.mode, group_size=self.group_size)
