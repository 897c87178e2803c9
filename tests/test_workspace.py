"""helpers.workspace: where things live (the cache root here; paths of data and runs are used everywhere)."""

from pathlib import Path

import pytest

from helpers import workspace


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
