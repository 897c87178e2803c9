"""helpers.sweep: the variants, the doubling curve steps and the report (training itself is covered by
tests/test_trainer.py::test_learning_curve_top_layers_and_per_task_length)."""

import json

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
    assert "| lr=1e-4@30 | 30 | fp32 | 2.50 | 21.0M | 0.450 | 0.800 | 0.750 |" in table


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
