"""helpers.sweep: the variants, the doubling curve steps and the report (training itself is covered by
tests/test_trainer.py::test_learning_curve_top_layers_and_per_task_length)."""

import json

import pytest

from helpers import sweep


def test_doubling_steps_end_at_the_budget():
    assert sweep.doubling_steps(120) == [0, 15, 30, 60, 120]
    assert sweep.doubling_steps(100) == [0, 15, 30, 60, 100]
    assert sweep.doubling_steps(10) == [0, 10]


def test_every_variant_changes_a_real_config_key():
    from dataclasses import fields

    from helpers.training.config import TrainConfig

    keys = {f.name for f in fields(TrainConfig)}
    base = TrainConfig.from_yaml(sweep.BASE_CONFIG)
    same = [name for name, changes in sweep.VARIANTS.items()
            if all(getattr(base, k) == v for k, v in changes.items())]
    for name, changes in sweep.VARIANTS.items():
        assert changes and set(changes) <= keys, name
    # one variant is the config as it is (the reference of the others), no more
    assert len(same) <= 1, same


def test_report_gathers_records_and_tables_the_last_point(tmp_path):
    rec = {"variant": "lr=1e-4", "steps": 30, "trainable_params": 21_000_000,
           "steady": {"seconds_per_step": 2.5},
           "curve": [{"step": 0, "dev": {"step": 0.3, "table": 0.7, "field": 0.6}},
                     {"step": 30, "dev": {"step": 0.45, "table": 0.8, "field": 0.75}}]}
    (tmp_path / "lr=1e-4@30.json").write_text(json.dumps(rec))
    records, table = sweep.report(tmp_path)
    assert list(records) == ["lr=1e-4@30"]
    # a record written before curve points had seconds: no time column for it
    assert "| lr=1e-4@30 | 30 | fp32 | 2.50 | 21.0M | nan | 0.450 | 0.800 | 0.750 |" in table


def test_report_keeps_the_records_of_an_earlier_report(tmp_path, monkeypatch, capsys):
    def rec(steps, step):
        return {"variant": "lr=2e-4", "steps": steps, "trainable_params": 21_000_000,
                "curve": [{"step": steps, "dev": {"step": step, "table": 0.8, "field": 0.7}}]}
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "lr=2e-4@120.json").write_text(json.dumps(rec(120, 0.55)))
    dest = tmp_path / "sweep-cpu.json"
    # an earlier report, from a checkout whose runs/ are not here: 960 survives, 120 is replaced
    dest.write_text(json.dumps({"profile": "cpu", "table": "",   # a report written before created_by
                                "variants": {"lr=2e-4@960": rec(960, 0.68), "lr=2e-4@120": rec(120, 0.40)}}))
    import helpers.workspace
    monkeypatch.setattr(helpers.workspace, "runs_dir", lambda profile: tmp_path)
    assert sweep.main(["--report", "--json", str(dest)]) == 0
    records = json.loads(dest.read_text())["variants"]
    assert sorted(records) == ["lr=2e-4@120", "lr=2e-4@960"]
    assert records["lr=2e-4@120"]["curve"][-1]["dev"]["step"] == 0.55
    assert "| lr=2e-4@960 | 960 |" in capsys.readouterr().out


def test_cli_rejects_zero_steps(capsys):
    assert sweep.main(["--variant", "top4", "--steps", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --steps: must be an integer >= 1, got 0")


def test_every_variant_gives_a_valid_config_and_catalog_ones_build_their_own_cache():
    for name in sweep.VARIANTS:
        cfg = sweep.variant_config(name, 30, "smoke", 50)
        assert cfg.max_steps == 30 and cfg.curve_steps == [0, 15, 30] and cfg.curve_queries == 50
        if name.startswith("catalog"):
            assert cfg.recipe == "catalog" and cfg.cache_lower_layers == "memory" and cfg.train_pairs is None
        else:
            assert cfg.recipe == "paper" and cfg.train_pairs == 30 * 16 and not cfg.budget_per_task


def test_seconds_count_the_cache_build_and_the_plot_is_this_tools_png(tmp_path, monkeypatch, capsys):
    def rec(variant, steps, cache, points):
        return {"created_by": sweep.CREATOR, "variant": variant, "steps": steps, "trainable_params": 3e6,
                "cache_seconds": cache, "curve": [{"step": s, "train_seconds": t, "dev": {"step": v, "table": v,
                                                                                          "field": v}}
                                                  for s, t, v in points]}
    paper = rec("lr=1e-4", 30, 0.0, [(0, 0.0, 0.3), (30, 90.0, 0.5)])
    catalog = rec("catalog", 60, 12.0, [(0, 0.0, 0.3), (60, 40.0, 0.6)])
    assert [p["seconds"] for p in sweep.curve_with_seconds(catalog)] == [12.0, 52.0]
    assert [p["seconds"] for p in sweep.curve_with_seconds(paper)] == [0.0, 90.0]
    runs = tmp_path / "runs"
    (runs / "sweep").mkdir(parents=True)
    for r in (paper, catalog):
        (runs / "sweep" / f"{r['variant']}@{r['steps']}.json").write_text(json.dumps(r))
    import helpers.workspace
    monkeypatch.setattr(helpers.workspace, "runs_dir", lambda profile: runs)
    png = tmp_path / "recipes.png"
    argv = ["--report", "--json", str(tmp_path / "r.json"), "--plot", str(png)]
    assert sweep.main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "| catalog@60 | 60 |" in capsys.readouterr().out
    assert sweep.main(argv) == 0   # its own plot is replaced; a user's file is not
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\nmy picture")
    assert sweep.main(["--report", "--json", str(tmp_path / "r.json"), "--plot", str(mine)]) == 2
    assert "--overwrite" in capsys.readouterr().err and mine.read_bytes().endswith(b"my picture")
    assert sweep.main(["--report", "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "p.svg")]) == 2
    assert "--plot must name a .png file" in capsys.readouterr().err


@pytest.mark.slow
def test_a_catalog_variant_records_its_curve_in_seconds(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("CASE_STUDY_CACHE", str(tmp_path / "cache"))
    rec = sweep.run_variant("catalog", 2, "smoke", tiny, 0, tmp_path / "sweep", curve_queries=5)
    assert rec["recipe"] == "catalog" and rec["cache_seconds"] > 0 and [p["step"] for p in rec["curve"]] == [0, 2]
    assert [p["seconds"] for p in rec["curve"]] == [round(p["train_seconds"] + rec["cache_seconds"], 1)
                                                   for p in rec["curve"]]
    assert json.loads((tmp_path / "sweep" / "catalog@2.json").read_text()) == rec
    assert not (tmp_path / "cache").exists()   # built in memory: this run paid for its own cache


def test_seconds_to_match_finds_the_first_point_at_the_references_recall():
    paper = {"curve": [{"step": 0, "train_seconds": 0.0, "dev": {"step": .3, "table": .7, "field": .6}},
                       {"step": 120, "train_seconds": 1000.0, "dev": {"step": .5, "table": .8, "field": .7}}]}
    catalog = {"cache_seconds": 50.0,
               "curve": [{"step": 0, "train_seconds": 0.0, "dev": {"step": .3, "table": .7, "field": .6}},
                         {"step": 15, "train_seconds": 50.0, "dev": {"step": .55, "table": .79, "field": .7}},
                         {"step": 30, "train_seconds": 150.0, "dev": {"step": .6, "table": .81, "field": .72}}]}
    got = sweep.seconds_to_match(paper, catalog)
    assert got["reference_seconds"] == 1000.0
    assert got["step"] == {"step": 15, "seconds": 100.0, "ratio": 0.1}      # the cache build counts
    assert got["field"]["step"] == 15 and got["table"]["step"] == 30
    assert got["all"] == {"step": 30, "seconds": 200.0, "ratio": 0.2}
    never = {"curve": [{"step": 0, "train_seconds": 0.0, "dev": {"step": .1, "table": .1, "field": .1}}]}
    assert sweep.seconds_to_match(paper, never)["all"] is None
