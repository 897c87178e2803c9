"""helpers.seeds and experiments.compare_seeds: headline comparisons pooled over training seeds."""

import json

import pytest

from helpers.experiments import compare_seeds, seed_name


def _cell(values):
    return {"recall": sum(values) / len(values), "n": len(values),
            "per_query": {f"q{i}": v for i, v in enumerate(values)}}


def _grid(shift0: float, shift1: float) -> dict:
    """``bm25`` the same at every seed; ``m`` = bm25 + a shift per seed, on dev and two OOD splits."""
    base = {"dev": [0.0, 0.5, 1.0, 0.5] * 10, "ood01": [0.2, 0.4] * 10, "ood02": [0.6, 0.8, 1.0] * 10}
    grid = {"bm25": {"t": {s: _cell(v) for s, v in base.items()}}}
    for seed, shift in ((0, shift0), (1, shift1)):
        grid[seed_name("m", seed)] = {"t": {s: _cell([x + shift for x in v]) for s, v in base.items()}}
    return grid


def test_pooled_delta_is_the_mean_over_seeds_of_each_seeds_average():
    got = compare_seeds(_grid(0.1, 0.3), "bm25", "m", ["t"], ["ood01", "ood02"], [0, 1], n_resamples=200)["t"]
    assert got["delta"] == pytest.approx(0.2)
    assert got["p_value"] < 0.01 and got["low"] > 0
    # one seed alone gives its own shift; a split nobody evaluated is ignored, none at all is an error
    assert compare_seeds(_grid(0.1, 0.3), "bm25", "m", ["t"], ["dev", "xx"], [1])["t"]["delta"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="no split"):
        compare_seeds(_grid(0.1, 0.3), "bm25", "m", ["t"], ["xx"], [0, 1])


def test_seeds_that_disagree_give_no_difference():
    got = compare_seeds(_grid(0.2, -0.2), "bm25", "m", ["t"], ["dev"], [0, 1], n_resamples=500)["t"]
    assert got["delta"] == pytest.approx(0.0, abs=1e-12) and got["p_value"] > 0.5


def test_summary_has_mean_range_per_seed_and_every_comparison(monkeypatch):
    from helpers import seeds

    monkeypatch.setattr(seeds, "HEADLINE", ("single_t", "multi", "down"))
    monkeypatch.setattr(seeds, "MULTI", "multi")
    monkeypatch.setattr(seeds, "COMPARISONS", {"multi - bm25": ("bm25", "multi"), "multi - single": ("single_{task}", "multi"),
                                               "down - multi": ("multi", "down"), "multi - base": ("{base}", "multi")})
    monkeypatch.setattr("helpers.tasks.TRAIN_TASKS", ("t",))
    grid = _grid(0.1, 0.3)
    for name in ("multi", "down", "single_t"):
        for s in (0, 1):
            grid[seed_name(name, s)] = grid[seed_name("m", s)]
    grid["base"] = grid["bm25"]
    out = seeds.summarise(grid, {"dev": ["dev"], "ood": ["ood01", "ood02"]}, [0, 1], "base", n_resamples=100)
    multi = out["models"]["multi"]["ood"]["t"]
    assert multi["min"] < multi["mean"] < multi["max"] and set(multi["per_seed"]) == {"0", "1"}
    assert "per_seed" not in out["models"]["bm25"]["dev"]["t"]
    assert set(out["tests"]["dev"]) == {"multi - bm25", "multi - single", "down - multi", "multi - base"}
    assert out["tests"]["ood"]["multi - bm25"]["t"]["delta"] == pytest.approx(0.2)
    assert out["tests"]["dev"]["down - multi"]["t"]["delta"] == 0
    json.dumps(out)


def test_cli_needs_two_seeds_and_refuses_a_file_it_did_not_write(tmp_path, capsys):
    from helpers.seeds import main

    assert main(["--profile", "smoke", "--seeds", "1", "1", "--out", str(tmp_path / "s.json")]) == 2
    assert "--seeds" in capsys.readouterr().err
    theirs = tmp_path / "theirs.json"
    theirs.write_text("{}")
    assert main(["--profile", "smoke", "--seeds", "0", "1", "--out", str(theirs)]) == 2
    assert "--overwrite" in capsys.readouterr().err and theirs.read_text() == "{}"
