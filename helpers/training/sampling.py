"""Batches of one task each, tasks mixed by a rule (``mixing: proportional | round_robin | temperature``).

Each batch holds pairs of one task only (LLM-Embedder's homogeneous in-batch negatives), because a
``DatasetDict`` goes through a multi-dataset batch sampler: ``proportional`` and ``round_robin`` use
sentence-transformers' samplers, ``temperature`` uses :class:`TaskMixingBatchSampler` (task ``i`` drawn
with weight ``n_i ** (1/T)``, seeded). Inside a task batches are ``NO_DUPLICATES`` (no text twice in a
batch, so no false in-batch negatives).

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

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np

from helpers.training.config import MIXINGS


def temperature_weights(sizes: Sequence[int], temperature: float) -> np.ndarray:
    """Sampling weights ``n_i ** (1/T)``, normalised. ``T=1``: proportional; large ``T``: uniform."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    s = np.asarray(sizes, dtype=np.float64)
    if (s < 0).any() or s.sum() <= 0:
        raise ValueError(f"sizes must be >= 0 with a positive sum, got {list(sizes)}")
    w = np.where(s > 0, s ** (1.0 / temperature), 0.0)
    return w / w.sum()


def _sampler_base():
    from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler
    return MultiDatasetDefaultBatchSampler


try:  # the class must be importable at module level (training args are pickled with checkpoints)
    _Base = _sampler_base()
except Exception:  # pragma: no cover - sentence-transformers missing or moved
    _Base = object


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
