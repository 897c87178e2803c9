"""helpers.bench_setup: which lines the reduced setup leaves out (the timing itself is a benchmark, not a test)."""

import pytest

from helpers.bench_setup import requirement_name, without


def test_requirement_name_normalises_and_skips_comments_and_options():
    assert requirement_name("sentence-transformers[train]==6.2.0") == "sentence-transformers"
    assert requirement_name("Rank_BM25 == 0.2.2  # note") == "rank-bm25"
    assert requirement_name("# mteb==2.26.24") is None
    assert requirement_name("-r other.txt") is None and requirement_name("   ") is None


def test_without_drops_only_the_named_lines(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# MTEB tasks\nmteb==2.26.24\nnumpy==2.4.6\nrank_bm25==0.2.2\n")
    assert without(req, ["mteb", "rank-bm25"]) == "# MTEB tasks\nnumpy==2.4.6\n"


def test_without_refuses_a_package_with_no_line(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("numpy==2.4.6\n")
    with pytest.raises(ValueError, match="requirements.txt: no requirement line for mteb"):
        without(req, ["mteb"])


def test_the_repository_requirements_pin_mteb():
    from helpers.workspace import REPO

    assert "mteb==" not in without(REPO / "requirements.txt", ["mteb"])
