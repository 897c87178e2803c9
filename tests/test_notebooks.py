"""Every numbered notebook runs headless with papermill in the smoke profile and writes its results.

New notebooks are picked up automatically (glob). Each runs once: the executed copies land in
``build/notebooks-smoke/``, their results are checked against ``results/expected-smoke.yaml``, and
cells marked ``# NBVAL_CHECK_OUTPUT`` (nbval's marker) must print what the committed notebook
recorded. A second pass under ``pytest --nbval-lax`` would execute every notebook again for those
few cells, so it is not run.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers.reproduce import clean_notebook, notebooks, run_notebook
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
    executed = json.loads((OUT / nb.name).read_text(encoding="utf-8"))
    assert _checked_outputs(executed) == _checked_outputs(json.loads(nb.read_text(encoding="utf-8"))), \
        f"{nb.name}: a cell marked {CHECK_OUTPUT} printed other output than the committed notebook records"


CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"


def _checked_outputs(nb: dict) -> list[tuple[str, list[str]]]:
    """``(source, output texts)`` of each code cell marked :data:`CHECK_OUTPUT`, in order."""
    out = []
    for cell in nb["cells"]:
        source = "".join(cell.get("source", []))
        if cell["cell_type"] == "code" and source.lstrip().startswith(CHECK_OUTPUT):
            texts = ["".join(o.get("text") or o.get("data", {}).get("text/plain", [])) for o in cell.get("outputs", [])]
            out.append((source, texts))
    return out


def test_checked_outputs_reads_marked_cells_only():
    import nbformat

    nb = nbformat.v4.new_notebook()
    marked = nbformat.v4.new_code_cell(f"{CHECK_OUTPUT}\nprint(1)")
    marked.outputs = [nbformat.v4.new_output("stream", text="1\n"),
                      nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    plain = nbformat.v4.new_code_cell("print(3)")
    plain.outputs = [nbformat.v4.new_output("stream", text="3\n")]
    nb.cells = [marked, plain, nbformat.v4.new_markdown_cell(CHECK_OUTPUT)]
    assert _checked_outputs(json.loads(nbformat.writes(nb))) == [(f"{CHECK_OUTPUT}\nprint(1)", ["1\n", "2"])]


@pytest.mark.notebooks
def test_smoke_results_match_expected():
    """The smoke run's headline numbers, against results/expected-smoke.yaml (kept as data)."""
    from helpers.check_results import check

    rows = check(OUT / "results", REPO / "results" / "expected-smoke.yaml")
    bad = [r for r in rows if not r["ok"]]
    assert rows and not bad, "\n".join(f"{r['notebook']}: {r['path']} = {r['actual']} (expected {r['expected']} "
                                       f"± {r['tol']})" for r in bad)


# ---------------------------------------------------------------------------------------------- committed notebooks

# A path of the machine that ran a notebook: POSIX roots of user and system folders, Windows drives.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|tmp|Users|usr|opt|var|mnt|srv|private|builds)/"
                           r"|\b[A-Za-z]:\\{1,2}\w")


def _texts(nb: dict):
    """Every text of a notebook a path could hide in: sources, outputs (not images), metadata."""
    yield json.dumps(nb.get("metadata", {}))
    for cell in nb["cells"]:
        yield "".join(cell.get("source", []))
        yield json.dumps(cell.get("metadata", {}))
        for out in cell.get("outputs", []):
            yield "".join(out.get("text", []))
            yield json.dumps({k: v for k, v in out.get("data", {}).items() if not k.startswith("image/")})
            yield "\n".join(out.get("traceback", [])) + out.get("evalue", "")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_no_injected_cell_or_absolute_path(nb: Path):
    data = json.loads(nb.read_text(encoding="utf-8"))
    tags = [t for c in data["cells"] for t in c.get("metadata", {}).get("tags", [])]
    assert "injected-parameters" not in tags, f"{nb.name}: papermill's injected cell was committed"
    assert tags.count("parameters") == 1, f"{nb.name}: needs exactly one cell tagged 'parameters'"
    for text in _texts(data):
        assert str(REPO) not in text, f"{nb.name}: holds {REPO}"
        m = ABSOLUTE_PATH.search(text)
        assert not m, f"{nb.name}: absolute path near {text[max(0, m.start() - 60):m.end() + 60]!r}"


def test_clean_notebook_folds_parameters_and_relativises_paths(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"  # the profile\nseed = 0\nresults_dir = "../results"')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell(f'# Parameters\nprofile = "cpu"\nseed = 3\nresults_dir = "{REPO}/results"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    work = nbformat.v4.new_code_cell("print(path)")
    work.outputs = [nbformat.v4.new_output("stream", text=f"wrote {REPO}/results/x.json\n")]
    nb.cells = [params, injected, work]
    nb.metadata["papermill"] = {"input_path": f"{REPO}/notebooks/x.ipynb", "parameters": {"results_dir": f"{REPO}/r", "seed": 3}}
    path = tmp_path / "x.ipynb"
    path.write_text(nbformat.writes(nb))
    assert clean_notebook(path) is True
    out = nbformat.reads(path.read_text(), as_version=4)
    assert [c.metadata.get("tags", []) for c in out.cells] == [["parameters"], []]
    assert out.cells[0].source == 'profile = "cpu"  # the profile\nseed = 3\nresults_dir = "../results"'
    assert out.cells[1].outputs[0]["text"] == "wrote results/x.json\n"
    assert out.metadata["papermill"] == {"input_path": "notebooks/x.ipynb", "parameters": {"seed": 3}}
    assert clean_notebook(path) is False                     # idempotent


@pytest.mark.notebooks
def test_run_all_from_another_folder_writes_into_the_clone(tmp_path, monkeypatch):
    """"Run All" of a committed notebook in a fresh clone, with the kernel started in some other folder
    (papermill stands in for JupyterLab and injects nothing): its results land in that clone's results/,
    nothing is written in the working folder or in this checkout."""
    import papermill as pm

    clone = tmp_path / "clone"
    shutil.copytree(REPO / "helpers", clone / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    (clone / "notebooks").mkdir()
    nb = clone / "notebooks" / "00_environment.ipynb"
    shutil.copy2(REPO / "notebooks" / nb.name, nb)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ours = REPO / "results" / "00_environment.json"
    before = ours.read_bytes() if ours.exists() else None
    monkeypatch.setenv("PYTHONPATH", str(clone))             # the kernel imports the clone's helpers
    pm.execute_notebook(str(nb), str(tmp_path / "executed.ipynb"), kernel_name="python3", cwd=str(elsewhere),
                        progress_bar=False)
    written = json.loads((clone / "results" / "00_environment.json").read_text())
    assert written["profile"] == "cpu" and written["summary"]
    assert not any(elsewhere.iterdir())
    assert (ours.read_bytes() if ours.exists() else None) == before
