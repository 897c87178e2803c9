"""Every numbered notebook runs headless with papermill in the smoke profile and writes its results.

New notebooks are picked up automatically (glob). The executed copies land in
``build/notebooks-smoke/``; ``make test`` then re-runs them under ``pytest --nbval-lax`` so cells
marked ``# NBVAL_CHECK_OUTPUT`` are compared with their recorded outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.reproduce import notebooks, run_notebook
from helpers.workspace import REPO

OUT = REPO / "build" / "notebooks-smoke"
NOTEBOOKS = notebooks()


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.mark.notebooks
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(nb: Path):
    results = OUT / "results"
    target = results / f"{nb.stem}.json"
    if target.exists():
        target.unlink()
    run_notebook(nb, OUT / nb.name, "smoke", results)
    assert target.is_file(), f"{nb.name} did not write {target}"
    payload = json.loads(target.read_text(encoding="utf-8"))
    assert payload["profile"] == "smoke"
    assert payload.get("summary"), f"{nb.name} wrote an empty summary"


@pytest.mark.notebooks
def test_smoke_results_match_expected():
    """The smoke run's headline numbers, against results/expected-smoke.yaml (kept as data)."""
    from helpers.check_results import check

    rows = check(OUT / "results", REPO / "results" / "expected-smoke.yaml")
    bad = [r for r in rows if not r["ok"]]
    assert rows and not bad, "\n".join(f"{r['notebook']}: {r['path']} = {r['actual']} (expected {r['expected']} "
                                       f"± {r['tol']})" for r in bad)
