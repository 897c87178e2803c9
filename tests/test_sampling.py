"""helpers.training.sampling: temperature weights and the task-mixing batch sampler."""

import numpy as np
import pytest

from helpers.training.sampling import TaskMixingBatchSampler, temperature_weights


def test_temperature_weights():
    w = temperature_weights([100, 400, 1600], 1.0)
    assert np.allclose(w, [100 / 2100, 400 / 2100, 1600 / 2100])
    w2 = temperature_weights([100, 400, 1600], 2.0)
    assert np.allclose(w2, np.array([10, 20, 40]) / 70)
    assert np.allclose(temperature_weights([100, 400, 1600], 1e9), [1 / 3] * 3, atol=1e-6)
    assert temperature_weights([0, 10], 2.0)[0] == 0
    with pytest.raises(ValueError):
        temperature_weights([1, 2], 0)


def _mixing_sampler(mode, sizes=(64, 16, 8), batch=4, group=1, T=2.0):
    import torch
    from datasets import Dataset
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
    from torch.utils.data import ConcatDataset

    sets = [Dataset.from_dict({"anchor": [f"{k}-q{i}" for i in range(n)], "positive": [f"{k}-d{i}" for i in range(n)]})
            for k, n in enumerate(sizes)]
    gen = torch.Generator()          # shared, as the trainer does; each child reseeds it with seed + epoch
    samplers = [NoDuplicatesBatchSampler(d, batch_size=batch, drop_last=True, generator=gen, seed=0) for d in sets]
    return TaskMixingBatchSampler(ConcatDataset(sets), samplers, generator=gen, seed=0, temperature=T, mode=mode,
                                  group_size=group)


@pytest.mark.parametrize("mode", ["temperature", "proportional", "round_robin"])
def test_mixing_sampler_batches_are_homogeneous(mode):
    s = _mixing_sampler(mode)
    batches = list(s)
    assert len(batches) == len(s)
    bounds = [0, 64, 80, 88]
    for b in batches:
        task = [i for i in range(3) if bounds[i] <= b[0] < bounds[i + 1]][0]
        assert all(bounds[task] <= j < bounds[task + 1] for j in b)
    assert batches == list(_mixing_sampler(mode))       # seeded


def test_temperature_sampler_follows_weights_and_groups():
    s = _mixing_sampler("temperature", sizes=(400, 100, 100), batch=2, T=1e6)   # ~uniform over tasks
    plan = s._plan()
    share = np.bincount(plan, minlength=3) / len(plan)
    assert np.allclose(share, [1 / 3] * 3, atol=0.08)
    g = _mixing_sampler("proportional", group=2)
    batches = list(g)
    for i in range(0, len(batches), 2):        # both processes of a step get the same task
        assert (batches[i][0] < 64) == (batches[i + 1][0] < 64)
    assert len(batches) % 2 == 0


def _clashing_dataset(n_docs=8, queries_per_doc=(40, 10, 5, 3, 2, 1, 1, 1)):
    """Many queries share a few positives (a popular table): the shape that starves NO_DUPLICATES."""
    from datasets import Dataset
    anchors, positives = [], []
    for d, k in enumerate(queries_per_doc[:n_docs]):
        for j in range(k):
            anchors.append(f"q{d}-{j}")
            positives.append(f"doc{d}")
    return Dataset.from_dict({"anchor": anchors, "positive": positives})


def test_full_batch_sampler_fills_every_batch_without_duplicates():
    import torch
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    from helpers.training.sampling import FullBatchNoDuplicatesSampler

    ds = _clashing_dataset()                                  # 63 rows, 8 distinct positives
    plain = list(NoDuplicatesBatchSampler(ds, batch_size=4, drop_last=False, seed=0))
    assert min(len(b) for b in plain) < 4                     # the bug: the pass ends in small batches

    s = FullBatchNoDuplicatesSampler(ds, batch_size=4, drop_last=False, generator=torch.Generator(), seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 16
    assert all(len(b) == 4 for b in batches) and s.short_batches == 0
    for b in batches:                                         # no query and no document twice in a batch
        assert len({ds[i]["positive"] for i in b}) == 4 and len(set(b)) == 4
    # the budget is spent on full batches: the popular positive is in every batch (16 of its 40 rows, the
    # most a no-duplicates batch allows) and every row of the other positives is used
    used = [i for b in batches for i in b]
    assert sum(ds[i]["positive"] == "doc0" for i in used) == 16
    assert set(range(40, 63)) <= set(used)
    assert s.unused_rows == 63 - len(set(used)) == 24
    assert batches == list(FullBatchNoDuplicatesSampler(ds, batch_size=4, drop_last=False,
                                                        generator=torch.Generator(), seed=0))   # seeded
    s.set_epoch(1)
    assert list(s) != batches


def test_full_batch_sampler_reports_too_few_distinct_rows(caplog):
    from helpers.training.sampling import FullBatchNoDuplicatesSampler

    ds = _clashing_dataset(n_docs=3, queries_per_doc=(5, 5, 5))     # only 3 distinct positives
    s = FullBatchNoDuplicatesSampler(ds, batch_size=4, drop_last=False, seed=0)
    batches = list(s)
    assert len(batches) == len(s) and all(len(b) == 3 for b in batches)
    assert s.short_batches == len(batches)
    assert "cannot fill a batch of 4" in caplog.text
