"""Expected scores kept as data: the checker passes, fails, and reports missing numbers."""

import json

import pytest
import yaml

from helpers.check_results import check, main, refresh
from helpers.io import DataError


@pytest.fixture
def results(tmp_path):
    (tmp_path / "02_x.json").write_text(json.dumps({"summary": {"table3": {"multi task": {"step": 0.61}}}}))
    return tmp_path


def _expected(tmp_path, entries):
    p = tmp_path / "expected.yaml"
    p.write_text(yaml.safe_dump(entries))
    return p


def test_within_tolerance_passes(results, tmp_path):
    exp = _expected(tmp_path, {"02_x": {"table3.multi task.step": {"value": 0.60, "tol": 0.02}}})
    assert [r["ok"] for r in check(results, exp)] == [True]
    assert main(["--results", str(results), "--expected", str(exp)]) == 0


def test_outside_tolerance_fails(results, tmp_path, capsys):
    exp = _expected(tmp_path, {"02_x": {"table3.multi task.step": {"value": 0.50, "tol": 0.02}}})
    assert main(["--results", str(results), "--expected", str(exp)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_missing_number_or_file_fails(results, tmp_path):
    exp = _expected(tmp_path, {"02_x": {"table3.multi task.field": {"value": 0.5, "tol": 0.1}},
                               "09_absent": {"a": {"value": 1, "tol": 0}}})
    rows = check(results, exp)
    assert [r["ok"] for r in rows] == [False, False] and all(r["actual"] is None for r in rows)


def test_malformed_entry_is_named(results, tmp_path):
    exp = _expected(tmp_path, {"02_x": {"table3.multi task.step": 0.6}})
    with pytest.raises(DataError, match="02_x.table3.multi task.step"):
        check(results, exp)


def test_refresh_rewrites_values_and_keeps_tolerances(results, tmp_path):
    exp = _expected(tmp_path, {"02_x": {"table3.multi task.step": {"value": 0.1, "tol": 0.03}}})
    assert refresh(results, exp) == 1
    assert yaml.safe_load(exp.read_text()) == {"02_x": {"table3.multi task.step": {"value": 0.61, "tol": 0.03}}}


def test_committed_default_profile_results_match_expected():
    """The committed results/ (default profile) and results/expected.yaml agree, number by number."""
    from helpers.workspace import REPO

    rows = check(REPO / "results", REPO / "results" / "expected.yaml")
    assert len(rows) >= 20
    bad = [f"{r['notebook']}: {r['path']} = {r['actual']} (expected {r['expected']})" for r in rows if not r["ok"]]
    assert not bad, "\n".join(bad)
