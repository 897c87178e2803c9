"""helpers.training.config: TrainConfig parsing and validation (more in test_cli_inputs.py)."""

from pathlib import Path

import pytest

from helpers.io import DataError
from helpers.training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def test_config_errors(tmp_path):
    with pytest.raises(DataError, match="unknown config key"):
        TrainConfig.from_dict({"taks": ["step"]})
    with pytest.raises(DataError, match="valid tasks"):
        TrainConfig.from_dict({"tasks": ["stepp"]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [step]\nmixing: random\n")
    with pytest.raises(DataError, match="mixing must be one of"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(DataError, match="budget_per_task must be true or false") as e:
        TrainConfig.from_dict({"tasks": ["step"], "budget_per_task": "yes"}, source="c.yaml")
    assert "c.yaml" in str(e.value)


def test_all_configs_parse():
    names = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert {"single_step", "single_table", "single_field", "multitask", "multitask_downsampled",
            "multitask_cap5", "multitask_cap10", "multitask_cap50", "example"} <= names
    for p in (REPO / "configs").glob("*.yaml"):
        cfg = TrainConfig.from_yaml(p)
        assert cfg.name == p.stem
    assert TrainConfig.from_yaml(REPO / "configs" / "multitask_downsampled.yaml").cap_per_positive == 20


def test_number_fields_follow_the_annotations():
    from helpers.training.config import number_fields

    fields = number_fields()
    assert fields["learning_rate"] == (float, False) and fields["epochs"] == (float, True)
    assert fields["train_pairs"] == (int, True) and fields["seed"] == (int, False)
    assert "cap_per_task" not in fields and "freeze_embeddings" not in fields and "name" not in fields
    cfg = TrainConfig.from_dict({"tasks": ["step"], "learning_rate": "5e-5", "max_eval_queries": "1e3"})
    assert cfg.learning_rate == 5e-5 and cfg.max_eval_queries == 1000
