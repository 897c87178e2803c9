"""Where a reproduction's time goes (helpers.reproduce.timings), on fake notebooks and run logs."""

import json
import os
from datetime import datetime, timezone

import pytest

from helpers.reproduce import main, timings


def _notebook(folder, name, start, end):
    meta = {"papermill": {"start_time": datetime.fromtimestamp(start, timezone.utc).isoformat(),
                          "end_time": datetime.fromtimestamp(end, timezone.utc).isoformat()}}
    (folder / f"{name}.ipynb").write_text(json.dumps({"cells": [], "metadata": meta}), encoding="utf-8")


def _run(folder, name, seconds, written, curve=0.0):
    (folder / name).mkdir(parents=True)
    log = folder / name / "train_log.json"
    log.write_text(json.dumps({"timings": {"train_seconds": seconds}, "training": {"curve_seconds": curve}}))
    os.utime(log, (written, written))


def test_training_is_charged_to_the_notebook_that_ran_it(tmp_path):
    nbs, runs = tmp_path / "notebooks", tmp_path / "runs"
    nbs.mkdir()
    _notebook(nbs, "02_train", 1_000_000, 1_001_000)   # 1,000 s of wall time
    _notebook(nbs, "03_eval", 1_002_000, 1_002_300)
    _run(runs, "trained_here-seed0", 600.0, 1_000_700, curve=50.0)
    _run(runs, "reused-seed0", 400.0, 900_000)          # trained before any notebook ran
    t = timings(notebook_dir=nbs, runs=runs)
    rows = {r["notebook"]: r for r in t["notebooks"]}
    assert rows["02_train"] == {"notebook": "02_train", "wall_seconds": 1000.0, "training_seconds": 600.0,
                                "other_seconds": 400.0}
    assert rows["03_eval"]["training_seconds"] == 0.0 and rows["03_eval"]["other_seconds"] == 300.0
    where = {r["run"]: r["trained_in"] for r in t["runs"]}
    assert where == {"trained_here-seed0": "02_train", "reused-seed0": None}
    # from scratch: every run's training + what the notebooks spent on everything else
    assert t["totals"] == {"training_seconds": 1000.0, "other_seconds": 700.0, "from_scratch_seconds": 1700.0,
                           "reused_runs": 1}


def test_a_notebook_never_executed_is_named(tmp_path):
    (tmp_path / "01_x.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"01_x\.ipynb: no papermill start_time"):
        timings(notebook_dir=tmp_path, runs=tmp_path / "runs")


def test_cli_prints_the_breakdown(capsys):
    # the committed notebooks are executed, so the command works on any clone (runs/ may be empty)
    assert main(["--timings"]) == 0
    out = capsys.readouterr().out
    assert "02_single_vs_multitask" in out and "from scratch" in out


def test_a_log_without_train_seconds_is_named(tmp_path):
    nbs, runs = tmp_path / "notebooks", tmp_path / "runs"
    nbs.mkdir()
    _notebook(nbs, "02_train", 1_000_000, 1_001_000)
    (runs / "broken-seed0").mkdir(parents=True)
    (runs / "broken-seed0" / "train_log.json").write_text(json.dumps({"timings": {}}))
    with pytest.raises(ValueError, match=r"broken-seed0/train_log\.json: field timings\.train_seconds is missing"):
        timings(notebook_dir=nbs, runs=runs)


def test_timings_without_run_logs_do_not_claim_zero_training(tmp_path, monkeypatch, capsys):
    """A fresh clone has no runs/: the breakdown says training cannot be told apart, not "training 0 min"."""
    monkeypatch.setenv("CASE_STUDY_RUNS", str(tmp_path / "runs"))
    assert main(["--timings"]) == 0
    out = capsys.readouterr().out
    assert "no train_log.json under" in out and "training 0 min" not in out and "from scratch is unknown" in out


def test_only_matching_no_notebook_is_an_error(tmp_path, capsys):
    assert main(["--profile", "smoke", "--only", "zz_*", "--out", str(tmp_path / "nb")]) == 2
    assert "--only 'zz_*' matches no notebook" in capsys.readouterr().err
    assert not (tmp_path / "nb").exists()


def test_a_relative_out_is_taken_from_the_callers_folder(tmp_path, monkeypatch):
    """The kernels run in notebooks/: a relative --out is resolved where the command was typed."""
    import helpers.reproduce as reproduce

    seen = []
    monkeypatch.setattr(reproduce, "run_notebook", lambda nb, out, profile, results_dir, **kw: seen.append(
        (out, results_dir)) or 0.0)
    monkeypatch.chdir(tmp_path)
    assert main(["--profile", "smoke", "--only", "00_*", "--out", "check"]) == 0
    (out, results_dir), = seen
    assert out.parent == results_dir.parent == tmp_path / "check" and results_dir.is_absolute()
