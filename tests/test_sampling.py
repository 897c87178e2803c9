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
