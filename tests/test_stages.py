"""helpers.training.stages: the records the stages hand each other."""

from dataclasses import FrozenInstanceError

import pytest


def test_data_stage_counts_the_loaded_pairs_from_the_pairs_themselves():
    from helpers.training.stages import DataStage

    raw = {"step": [1, 2, 3], "table": [4]}
    d = DataStage(source="data", eval_root=None, raw=raw, ds_report={}, budget=None, used=raw,
                  used_counts={"step": 3, "table": 1}, max_steps=2, seconds=0.0)
    assert d.loaded == {"step": 3, "table": 1}
    with pytest.raises(FrozenInstanceError):
        d.max_steps = 3
