"""The README's results tables are what ``python -m helpers.readme_tables`` writes from ``results/`` (issue 25).

The first test is the one that fails when the README and the results disagree; the others show that it
can fail (one changed number) and that bad input ends in one line and exit status 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.readme_tables import TABLES, main, render
from helpers.workspace import REPO

README = REPO / "README.md"


def test_committed_readme_equals_what_the_results_give():
    text = README.read_text(encoding="utf-8")
    assert render(text, REPO / "results", README) == text, \
        "README results tables differ from results/: run `python -m helpers.readme_tables` (or --check for the diff)"


def test_every_generated_table_is_in_the_readme_once_with_its_command():
    text = README.read_text(encoding="utf-8")
    for name in TABLES:
        assert text.count(f"<!-- results-table: {name} (python -m helpers.readme_tables) -->") == 1, name
    lines = [line.strip() for line in text.splitlines()]
    assert lines.count("<!-- /results-table -->") == len(TABLES)
    assert sum(line.startswith("<sub>From `results/") for line in lines) == len(TABLES)


@pytest.fixture
def copy(tmp_path):
    """A copy of the README and the results, to change without touching the repository."""
    shutil.copy2(README, tmp_path / "README.md")
    shutil.copytree(REPO / "results", tmp_path / "results")
    return tmp_path


def _run(copy: Path, *args: str) -> int:
    return main(["--readme", str(copy / "README.md"), "--results", str(copy / "results"), *args])


def test_check_passes_on_the_copy_and_fails_on_one_changed_number(copy, capsys):
    assert _run(copy, "--check") == 0
    path = copy / "results" / "02_single_vs_multitask.json"
    res = json.loads(path.read_text(encoding="utf-8"))
    res["summary"]["table3"]["BM25"]["step"] = 0.1234
    path.write_text(json.dumps(res), encoding="utf-8")
    before = (copy / "README.md").read_bytes()
    capsys.readouterr()
    assert _run(copy, "--check") == 1
    out = capsys.readouterr().out
    assert "-| BM25 | 0.37 |" in out and "+| BM25 | 0.12 |" in out
    assert (copy / "README.md").read_bytes() == before          # --check writes nothing
    assert _run(copy) == 0                                        # without it the table is rewritten
    text = (copy / "README.md").read_text(encoding="utf-8")
    assert "| BM25 | 0.12 |" in text and _run(copy, "--check") == 0
    # only the lines between the markers changed
    diff = [(a, b) for a, b in zip(before.decode().splitlines(), text.splitlines()) if a != b]
    assert diff == [("| BM25 | 0.37 | 0.77 | 0.56 |", "| BM25 | 0.12 | 0.77 | 0.56 |")]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_missing_results_file_is_one_line_and_exit_2(copy, capsys):
    (copy / "results" / "04_ood_evaluation.json").unlink()
    before = (copy / "README.md").read_bytes()
    assert _run(copy) == 2
    assert "04_ood_evaluation.json" in _one_error_line(capsys)
    assert (copy / "README.md").read_bytes() == before


def test_missing_number_names_the_file_and_field(copy, capsys):
    path = copy / "results" / "06_workflow_retrieval.json"
    res = json.loads(path.read_text(encoding="utf-8"))
    del res["summary"]["workflow_recall5"]
    path.write_text(json.dumps(res), encoding="utf-8")
    assert _run(copy, "--check") == 2
    line = _one_error_line(capsys)
    assert "06_workflow_retrieval.json" in line and "summary.workflow_recall5" in line


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("<!-- results-table: ", "<!-- table: ").replace("<!-- /results-table -->", ""),
     "no results-table markers"),
    (lambda t: t.replace("results-table: caps (", "results-table: capz ("), "unknown results table 'capz'"),
    (lambda t: t.replace("<!-- /results-table -->\n\n- **With the task mix", "\n- **With the task mix"),
     "has no closing"),
    (lambda t: t.replace("<!-- results-table: hybrid (python -m helpers.readme_tables) -->\n", ""),
     "without its opening marker"),
])
def test_bad_markers_are_one_line_and_exit_2(copy, capsys, edit, expected):
    readme = copy / "README.md"
    text = edit(readme.read_text(encoding="utf-8"))
    assert text != readme.read_text(encoding="utf-8"), "the edit must change the README"
    readme.write_text(text, encoding="utf-8")
    assert _run(copy) == 2
    assert expected in _one_error_line(capsys)
    assert readme.read_text(encoding="utf-8") == text


def test_missing_readme_or_results_folder_is_exit_2(copy, capsys):
    assert main(["--readme", str(copy / "nope.md"), "--results", str(copy / "results")]) == 2
    assert "nope.md" in _one_error_line(capsys)
    assert main(["--readme", str(copy / "README.md"), "--results", str(copy / "nothing")]) == 2
    assert "nothing" in _one_error_line(capsys)


def test_curve_in_the_training_log_shape_gives_the_same_table(copy):
    """Notebook 02 now saves curve points as the training log has them (``step`` number beside ``dev``);
    the committed results, written before, lost the step numbers, which come from the config then."""
    import yaml

    path = copy / "results" / "02_single_vs_multitask.json"
    res = json.loads(path.read_text(encoding="utf-8"))
    flat = res["summary"]["curve"]["multitask"]
    schedule = yaml.safe_load((REPO / "configs" / "multitask.yaml").read_text())["curve_steps"]
    last = res["training"]["multitask"]["steps"]
    steps = [s for s in schedule if s < last] + [last]
    res["summary"]["curve"]["multitask"] = [{"step": s, "train_seconds": p["train_seconds"],
                                             "dev": {t: p[t] for t in ("step", "table", "field")}}
                                            for s, p in zip(steps, flat)]
    path.write_text(json.dumps(res), encoding="utf-8")
    assert _run(copy, "--check") == 0
    res["summary"]["curve"]["multitask"][-1]["step"] = 200
    path.write_text(json.dumps(res), encoding="utf-8")
    assert _run(copy, "--check") == 1


# --------------------------------------------------------------------- issue 24: merged model and tuned hybrids

def _wf_test(delta: float, p: float) -> dict:
    return {"workflow": {"mean_a": 0.5, "mean_b": 0.5 + delta, "delta": delta, "low": delta - 0.02,
                         "high": delta + 0.02, "p_value": p}}


def _with_issue24_keys(results: Path) -> None:
    """Notebook 06 and 07 results as a re-run after issue 24 writes them: a merged model, two workflow
    hybrids and a tuned hybrid per task (small made-up numbers)."""
    path = results / "06_workflow_retrieval.json"
    res = json.loads(path.read_text(encoding="utf-8"))
    wf = res["summary"]["workflow_recall5"]
    wf["multi-task, merged"] = {"dev": 0.7123, "ood_avg": 0.8811}
    wf["hybrid bm25 + multi-task, merged, RRF"] = {"dev": 0.69, "ood_avg": 0.86}
    wf["hybrid bm25 + multi-task, merged, tuned"] = {"dev": 0.74, "ood_avg": 0.9}
    res["summary"]["merge"] = {"names": {"merged": "multi-task, merged", "unmerged": "multi-task", "base": "me5-small"},
                               "tolerance": 0.01, "choice": {"weight": 0.5, "eligible": [0.5, 0.75, 1.0]}}
    res["summary"]["tuned_hybrid"] = {"model": "multi-task, merged", "weight": 0.3,
                                      "names": {"rrf": "hybrid bm25 + multi-task, merged, RRF",
                                                "tuned": "hybrid bm25 + multi-task, merged, tuned"}}
    path.write_text(json.dumps(res), encoding="utf-8")
    path = results / "07_beyond_the_paper.json"
    res = json.loads(path.read_text(encoding="utf-8"))
    res["summary"]["hybrid_dev"]["hybrid bm25 + multi-task ds, tuned"] = {"step": 0.5612, "table": 0.87, "field": 0.8}
    res["summary"]["tuned_hybrid"] = {"name": "hybrid bm25 + multi-task ds, tuned", "model": "multi-task ds",
                                      "weights": {"step": 0.9, "table": 0.7, "field": 1.0}}
    path.write_text(json.dumps(res), encoding="utf-8")


def test_table6_and_hybrid_table_gain_the_issue24_rows_when_the_results_have_them(copy):
    """Results written before issue 24 give the committed tables (the first test); with the new keys Table 6
    gets the merged model and both workflow hybrids, the hybrid table the tuned row with its weights."""
    from helpers.readme_tables import Results, TABLES

    _with_issue24_keys(copy / "results")
    t6, _ = TABLES["table6"](Results(copy / "results"))
    assert "| multi-task merged with its base (w = 0.5, chosen on dev) | 0.71 | 0.88 |" in t6
    assert "| hybrid BM25 + multi-task, merged, RRF | 0.69 | 0.86 |" in t6
    # the best of a column is bold, new rows included
    assert "| hybrid BM25 + multi-task, merged, convex w = 0.3 (tuned on dev) | **0.74** | **0.90** |" in t6
    assert "| BM25 | 0.67 | 0.87 (0.66) |" in t6   # no longer the best of either column
    hybrid, _ = TABLES["hybrid"](Results(copy / "results"))
    assert ("| hybrid BM25 + multi-task ds, convex w tuned on dev (so optimistic here) | **0.56** (w = 0.9) | "
            "**0.87** (w = 0.7) | 0.80 (w = 1) |") in hybrid
    assert hybrid.splitlines()[-2].startswith("| hybrid BM25 + multi-task ds |")   # the old rows stay, in order
    assert _run(copy, "--check") == 1   # the committed README has the tables without them
    assert _run(copy) == 0 and _run(copy, "--check") == 0


def test_table3_in_the_catalog_layout_keeps_the_paper_recipe_row(copy):
    """Notebook 02 after issue 23: the headline multi-task model trains on every pair (its steps from the
    training record), and the paper recipe's model is one more row, after the downsampled one."""
    from helpers.readme_tables import PAPER_RECIPE_ROW, Results, TABLES

    path = copy / "results" / "02_single_vs_multitask.json"
    res = json.loads(path.read_text(encoding="utf-8"))
    t3 = res["summary"]["table3"]
    t3[PAPER_RECIPE_ROW] = {"step": 0.4321, "table": 0.8765, "field": 0.7654}
    res["training"]["multitask_catalog"] = {"steps": 1430}
    path.write_text(json.dumps(res), encoding="utf-8")
    table, _ = TABLES["table3"](Results(copy / "results"))
    rows = [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:]]
    paper_steps = res["training"]["multitask"]["steps"] // 3
    assert rows[-3:] == ["one multi-task model (every pair: 1430 steps)", "multi-task + downsampled (K=20)",
                         f"multi-task, paper recipe ({paper_steps} steps per task)"]
    assert "| multi-task, paper recipe" in table and "0.43" in table.splitlines()[-1]
