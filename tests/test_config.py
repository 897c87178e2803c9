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
    bad.write_text("tasks: [step]\nprecision: fp16\n")
    with pytest.raises(DataError, match="precision must be null, 'fp32', 'bf16' or 'auto'") as e:
        TrainConfig.from_yaml(bad)
    assert "bad.yaml:2" in str(e.value)


def test_all_configs_parse():
    names = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert {"single_step", "single_table", "single_field", "multitask", "multitask_downsampled",
            "multitask_catalog", "multitask_catalog_cap5", "multitask_cap20", "multitask_catalog_cap50", "example"} <= names
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


def test_configs_are_a_base_plus_deltas():
    """Every study config but the base and the user example extends another and restates none of its keys."""
    import yaml

    for p in (REPO / "configs").glob("*.yaml"):
        if p.stem in ("multitask", "example"):
            continue
        own = yaml.safe_load(p.read_text())
        assert "extends" in own, p.name
        parent = yaml.safe_load((REPO / "configs" / f"{own['extends']}.yaml").read_text())
        same = {k for k, v in own.items() if k not in ("name", "description") and parent.get(k) == v}
        assert not same, f"{p.name} restates {same}"
        assert "seed" not in own, f"{p.name}: the seed comes from the caller"
    doc = TrainConfig.from_yaml(REPO / "configs" / "multitask_doc_instructions.yaml")
    assert (doc.doc_instructions, doc.cap_per_positive, doc.train_pairs, doc.tasks) == \
        (True, 20, "ablation", ["step", "table", "field"])
    assert TrainConfig.from_yaml(REPO / "configs" / "single_step.yaml").tasks == ["step"]


def test_extends_errors_name_the_file_that_set_the_value(tmp_path):
    (tmp_path / "base.yaml").write_text("tasks: [step]\nlearning_rate: fast\n")
    (tmp_path / "child.yaml").write_text("extends: base\nepochs: 1\n")
    with pytest.raises(DataError) as e:
        TrainConfig.from_yaml(tmp_path / "child.yaml")
    assert "base.yaml:2" in str(e.value) and "learning_rate" in str(e.value)
    (tmp_path / "good.yaml").write_text("tasks: [step]\n")
    (tmp_path / "bad.yaml").write_text("extends: good\nepochs: zero\n")
    with pytest.raises(DataError, match=r"bad.yaml:2"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    with pytest.raises(DataError, match="loops back"):
        TrainConfig.from_yaml(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nowhere\n")
    with pytest.raises(DataError, match="nowhere.yaml"):
        TrainConfig.from_yaml(tmp_path / "orphan.yaml")


def test_recipe_keys_are_checked_and_never_silently_ignored(tmp_path):
    cfg = TrainConfig.from_yaml(REPO / "configs" / "multitask_catalog.yaml")
    assert (cfg.recipe, cfg.train_top_layers, cfg.budget_per_task) == ("catalog", 2, False)
    assert TrainConfig.from_dict({"tasks": ["step"]}).recipe == "paper"
    for bad, field in (({"recipe": "fast"}, "recipe"), ({"recipe": "catalog", "cache_lower_layers": "ram"},
                                                         "cache_lower_layers"),
                       ({"recipe": "catalog", "cache_dtype": "fp16"}, "cache_dtype"),
                       ({"recipe": "catalog", "catalog_loss": "mean"}, "catalog_loss"),
                       ({"recipe": "catalog", "catalog_sample": 0}, "catalog_sample"),
                       ({"recipe": "catalog", "layer_cache_dir": 3}, "layer_cache_dir"),
                       ({"recipe": "catalog", "anchor_weight": -0.5}, "anchor_weight"),
                       ({"recipe": "catalog", "anchor_weight": "heavy"}, "anchor_weight"),
                       ({"recipe": "catalog", "anchor_batch": 0}, "anchor_batch"),
                       ({"recipe": "catalog", "anchor_batch": 2.5}, "anchor_batch")):
        with pytest.raises(DataError, match=f"field '{field}'"):
            TrainConfig.from_dict({"tasks": ["step"], **bad})
    # a catalog key under the paper recipe, a paper key under the catalog recipe: one line naming it
    for key, value in (("catalog_loss", "sum"), ("anchor_weight", 1.0), ("anchor_batch", 8)):
        with pytest.raises(DataError, match=fr"field '{key}'.*catalog recipe only"):
            TrainConfig.from_dict({"tasks": ["step"], key: value})
    for key, value in (("hard_negatives", "bm25"), ("train_pairs", 640), ("mixing", "temperature"),
                       ("freeze_embeddings", False), ("eval_steps", 10)):
        with pytest.raises(DataError, match=fr"field '{key}'.*paper recipe only") as e:
            TrainConfig.from_dict({"tasks": ["step"], "recipe": "catalog", key: value})
        assert "\n" not in str(e.value)
    ok = TrainConfig.from_dict({"tasks": ["step"], "recipe": "catalog", "train_pairs": "all", "eval_steps": 0,
                                "catalog_sample": "1e2", "catalog_loss": "sum", "cache_lower_layers": "memory"})
    assert ok.catalog_sample == 100
    anchored = TrainConfig.from_yaml(REPO / "configs" / "multitask_catalog_anchor.yaml")
    assert anchored.recipe == "catalog" and anchored.anchor_weight > 0 and anchored.anchor_batch is None
    assert TrainConfig.from_dict({"tasks": ["step"], "recipe": "catalog", "anchor_weight": "1e1"}).anchor_weight == 10.0
    # an inherited paper key is named with the file and line that set it
    (tmp_path / "c.yaml").write_text("extends: multitask\nrecipe: catalog\n")
    (tmp_path / "multitask.yaml").write_text((REPO / "configs" / "multitask.yaml").read_text())
    with pytest.raises(DataError, match=r"multitask\.yaml:\d+.*budget_per_task.*paper recipe only"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")
