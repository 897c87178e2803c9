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
