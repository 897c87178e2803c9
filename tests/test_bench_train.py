"""helpers.bench_train: the catalog-recipe comparison runs both recipes in one call and prints numbers."""

import json

import pytest


@pytest.mark.slow
def test_recipe_catalog_prints_both_recipes(tmp_path, capsys):
    from helpers.bench_train import main

    out = tmp_path / "bench.json"
    assert main(["--recipe", "catalog", "--model", "minilm-l6", "--pairs", "16", "--batch-size", "8", "--steps", "2",
                 "--profile", "smoke", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paper (MNRL, all layers)" in printed and "catalog (top 2)" in printed and "s/epoch" in printed
    paper, catalog = json.loads(out.read_text())["rows"]
    assert paper["steps"] == catalog["steps"] == 2 and paper["epoch_pairs"] == catalog["epoch_pairs"] == 16
    assert catalog["trainable_params"] < paper["trainable_params"]
    for row in (paper, catalog):   # numbers, not judged: only that they were measured
        assert row["pairs_per_second"] > 0 and row["seconds_per_epoch"] > 0
    assert catalog["groups_per_second"] > 0 and catalog["cache_seconds"] >= 0


@pytest.mark.slow
def test_catalog_row_scores_the_whole_training_catalog(tmp_path):
    """8 of 32 pairs train, but a step's catalog is every positive of the 32 (what a real run scores)."""
    from helpers.bench_train import bench_catalog, synthetic_pairs

    jsonl = synthetic_pairs(32, tmp_path / "pairs.jsonl")
    row = bench_catalog("minilm-l6", 8, 4, "smoke", None, jsonl, 2, 2, catalog_sample=3)
    assert sum(row["catalog"].values()) == 32 and row["catalog_sample"] == 3 and "3 sampled" in row["recipe"]
    assert set(row["seconds_per_step_by_task"]) <= set(row["catalog"]) and row["seconds_per_epoch"] > 0


def test_per_task_seconds_leaves_out_the_first_step():
    from helpers.bench_train import _per_task_seconds

    assert _per_task_seconds([("step", 9.0), ("step", 1.0), ("field", 2.0), ("step", 3.0)]) == {"field": 2.0, "step": 2.0}
    assert _per_task_seconds([("table", 5.0)]) == {"table": 5.0}
