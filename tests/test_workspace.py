"""helpers.workspace: where things live (the cache root, paths of data and runs), and a notebook run in
another profile than the committed one never overwrites results/."""

import json
from pathlib import Path

import pytest

from helpers import workspace
from helpers.io import DataError


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A repository whose results/ holds the committed (cpu) results of notebook 00."""
    monkeypatch.setattr(workspace, "REPO", tmp_path)
    monkeypatch.setattr(workspace, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(workspace, "NOTEBOOKS", tmp_path / "notebooks")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "00_x.json").write_text('{"profile": "cpu", "summary": {"a": 1}, "_meta": {}}\n')
    return tmp_path


def test_a_smoke_run_writes_beside_the_build_not_over_committed_results(clone, capsys):
    committed = (clone / "results" / "00_x.json").read_bytes()
    path = workspace.save_results("../results", "00_x", {"profile": "smoke", "summary": {"a": 2}})
    assert path == clone / "build" / "notebooks-smoke" / "results" / "00_x.json"
    assert json.loads(path.read_text())["summary"] == {"a": 2}
    assert (clone / "results" / "00_x.json").read_bytes() == committed
    assert "profile smoke: results go to" in capsys.readouterr().out
    assert workspace.profile_results("smoke") == path.parent and workspace.profile_results("cpu") == clone / "results"


def test_the_committed_profile_replaces_its_own_results(clone):
    path = workspace.save_results(None, "00_x", {"profile": "cpu", "summary": {"a": 3}})
    assert path == clone / "results" / "00_x.json" and json.loads(path.read_text())["summary"] == {"a": 3}


def test_results_of_another_profile_or_a_user_file_are_refused(clone, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "00_x.json").write_text('{"profile": "full", "summary": {}, "_meta": {}}\n')
    (mine / "01_y.json").write_text("my notes\n")
    with pytest.raises(DataError, match="holds results of profile 'full', not results of profile 'smoke'"):
        workspace.save_results(mine, "00_x", {"profile": "smoke", "summary": {}})
    with pytest.raises(DataError, match="holds another file"):
        workspace.save_results(mine, "01_y", {"profile": "smoke", "summary": {}})
    assert (mine / "01_y.json").read_text() == "my notes\n"
    with pytest.raises(ValueError, match="needs the run's 'profile'"):
        workspace.save_results(mine, "02_z", {"summary": {}})


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CASE_STUDY_CACHE", str(tmp_path / "c"))
    assert workspace.cache_root() == tmp_path / "c"
    assert workspace.cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("CASE_STUDY_CACHE")
    assert workspace.cache_root() == Path.home() / ".cache" / "multitask-rag"


def test_embedding_cache_dir_is_under_the_one_cache_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("CASE_STUDY_EMBEDDING_CACHE", raising=False)
    monkeypatch.setenv("CASE_STUDY_CACHE", str(tmp_path / "c"))
    assert workspace.embedding_cache_dir() == tmp_path / "c" / "embeddings"
    monkeypatch.setenv("CASE_STUDY_EMBEDDING_CACHE", str(tmp_path / "old"))
    with pytest.warns(FutureWarning, match="CASE_STUDY_EMBEDDING_CACHE is deprecated"):
        assert workspace.embedding_cache_dir() == tmp_path / "old"

