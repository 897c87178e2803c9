"""The evaluation CLI/API end to end on tiny BEIR folders built here, and the benchmark smoke test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import CORPUS, read_only_dir  # noqa: F401 (fixture)
from helpers import bench
from helpers.beir import write_beir
from helpers.evaluate import main, make_retriever, sample_queries

ROOT = Path(__file__).resolve().parents[1]

QUERIES = {
    "q1": "parental leave question for the people team",
    "q2": "email server down",
    "q3": "which cost center is the user in",
    "q4": "who approves: the manager",
    "q5": "route the ticket and set assigned to",
    "q6": "a query without judgments",
}
QRELS = {"q1": {"hr": 1}, "q2": {"inc": 2, "hr": 0}, "q3": {"cost": 1}, "q4": {"mgr": 1}, "q5": {"asg": 1}}


def tiny(path, qrels=QRELS):
    return write_beir(path, CORPUS, QUERIES, qrels)


def test_cli_bm25_single_folder(tmp_path, capsys):
    folder = tiny(tmp_path / "beir")
    out = tmp_path / "res.json"
    assert main(["--retriever", "bm25", "--data", str(folder), "--k", "1", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recall" in printed and "ndcg" in printed and "@3" in printed and "1 without qrels" in printed
    res = json.loads(out.read_text())
    assert set(res["metrics"]) == {f"{m}@{k}" for m in ("recall", "hit", "mrr", "ndcg", "map") for k in (1, 3)}
    assert res["n_queries"] == 5 and res["n_docs"] == 5
    assert set(res["per_query"]) == {"q1", "q2", "q3", "q4", "q5"}
    assert res["skipped"] == {"no_qrels": 1, "no_relevant": 0, "not_sampled": 0}
    assert res["load_report"]["skipped_no_qrels"] == ["q6"]
    assert res["retriever"]["type"] == "BM25Retriever"
    assert res["timings"]["index_seconds"] >= 0 and "search_seconds" in res["timings"]
    assert res["metrics"]["hit@3"] == 1.0  # every query's gold shares an identifier or word with it


def test_directory_of_folders_weighted_mean(tmp_path):
    root = tmp_path / "ood"
    tiny(root / "a")
    tiny(root / "nested" / "b", qrels={"q2": {"inc": 1}, "q5": {"cost": 1}})  # 2 queries, one unanswerable
    out = tmp_path / "res.json"
    assert main(["--retriever", "bm25", "--data", str(root), "--k", "1", "5", "--out", str(out),
                 "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert set(res["folders"]) == {"a", "nested/b"}
    assert res["weights"] == {"a": 5, "nested/b": 2} and res["n_queries"] == 7
    for name, value in res["weighted_mean"].items():
        a, b = res["folders"]["a"]["metrics"][name], res["folders"]["nested/b"]["metrics"][name]
        assert value == pytest.approx((5 * a + 2 * b) / 7)
    assert res["folders"]["nested/b"]["skipped"]["no_qrels"] == 4


def test_max_queries_is_a_seeded_sample(tmp_path):
    folder = tiny(tmp_path / "beir")
    out = tmp_path / "res.json"
    assert main(["--retriever", "bm25", "--data", str(folder), "--max-queries", "2", "--seed", "3",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_queries"] == 2 and res["skipped"]["not_sampled"] == 3
    assert sample_queries(QUERIES, 2, seed=3) == sample_queries(dict(reversed(list(QUERIES.items()))), 2, seed=3)


def test_unknown_retriever_spec(tmp_path, capsys):
    folder = tiny(tmp_path / "beir")
    assert main(["--retriever", "bm26", "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "unknown retriever 'bm26'" in err and "minilm-l6" in err and "hybrid:A+B" in err
    for bad in ("hybrid:bm25", "hybrid:bm25+", "hybrid:bm25+hybrid:bm25+bm25", ""):
        with pytest.raises(ValueError):
            make_retriever(bad)


def test_bad_data_is_reported(tmp_path, capsys):
    folder = tiny(tmp_path / "beir")
    (folder / "corpus.jsonl").write_text('{"_id": "x"}\n')
    assert main(["--retriever", "bm25", "--data", str(folder)]) == 2
    assert "corpus.jsonl:1 (field 'text')" in capsys.readouterr().err
    assert main(["--retriever", "bm25", "--data", str(tmp_path / "empty_dir_missing")]) == 2


@pytest.mark.slow
def test_cli_subprocess_minilm_and_hybrid(tmp_path):
    folder = tiny(tmp_path / "beir")
    out = tmp_path / "res.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "helpers.evaluate", "--retriever", "minilm-l6", "--data",
                           str(folder), "--out", str(out), "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "mrr" in proc.stdout
    res = json.loads(out.read_text())
    assert res["retriever"]["name"] == "minilm-l6" and res["retriever"]["model"]["encoder"]["name"] == "minilm-l6"
    assert res["metrics"]["hit@5"] >= 0.8 and res["timings"]["cache_hit"] is False
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    out2 = tmp_path / "hybrid.json"
    assert main(["--retriever", "hybrid:bm25+minilm-l6", "--data", str(folder), "--out", str(out2),
                 "--cache-dir", str(tmp_path / "cache"), "--task", "step", "--no-progress"]) == 0
    res2 = json.loads(out2.read_text())
    assert res2["retriever"]["type"] == "HybridRetriever"
    assert res2["timings"]["components"][1]["cache_hit"] is True  # vectors from the subprocess run
    assert res2["metrics"]["hit@5"] == 1.0


def test_bench_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--retrievers", "bm25", "--n-docs", "60", "--n-queries", "8", "--n-latency", "3",
                       "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["meta"]["n_docs"] == 60 and res["meta"]["n_queries"] == 8
    row = res["results"][0]
    for key in ("retriever", "load_s", "index_s", "docs_per_s", "query_p50_ms", "query_p95_ms", "batch_qps",
                "peak_rss_mb", "memory_method", "identity"):
        assert key in row, key
    assert row["query_p95_ms"] >= row["query_p50_ms"] > 0
    assert "docs_per_s" in capsys.readouterr().out
    assert bench.synth_corpus(20, 5, seed=1) == bench.synth_corpus(20, 5, seed=1)


# ---------------------------------------------------------------------------------------------- issue 12

def _dataset_like(root):
    """A task folder as the dataset builder lays it out: train, dev, a translation, two OOD splits."""
    tiny(root / "train")
    tiny(root / "dev")
    tiny(root / "dev-de", qrels={"q1": {"hr": 1}})
    tiny(root / "ood01", qrels={"q2": {"inc": 1}, "q3": {"cost": 1}})
    tiny(root / "ood02", qrels={"q4": {"asg": 1}})            # wrong gold: recall 0 on purpose
    return root


def test_directory_means_never_mix_train_dev_translations_and_ood(tmp_path, capsys):
    root = _dataset_like(tmp_path / "field")
    out = tmp_path / "res.json"
    assert main(["--retriever", "bm25", "--data", str(root), "--k", "1", "5", "--out", str(out), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert set(res["groups"]) == {"train", "dev", "translations", "ood"}
    assert res["groups"]["ood"]["folders"] == ["ood01", "ood02"] and res["groups"]["ood"]["weights"] == {"ood01": 2, "ood02": 1}
    a, b = res["folders"]["ood01"]["metrics"]["recall@5"], res["folders"]["ood02"]["metrics"]["recall@5"]
    assert res["groups"]["ood"]["weighted_mean"]["recall@5"] == pytest.approx((2 * a + b) / 3)
    assert "weighted_mean" not in res                          # no mean over everything
    printed = capsys.readouterr().out
    assert "ood: weighted mean over 2 folder(s)" in printed and "train: weighted mean over 1 folder(s)" in printed

    # --splits picks folders by glob; one group left, so its mean is the top-level one too
    assert main(["--retriever", "bm25", "--data", str(root), "--splits", "ood*", "--out", str(out), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert set(res["folders"]) == {"ood01", "ood02"} and res["weights"] == {"ood01": 2, "ood02": 1}
    assert main(["--retriever", "bm25", "--data", str(root), "--splits", "tset*", "--no-progress"]) == 2
    assert "no BEIR folder matches --splits tset*; found: dev, dev-de, ood01" in capsys.readouterr().err


def test_progress_bar_names_the_folder(tmp_path, capsys):
    root = _dataset_like(tmp_path / "field")
    assert main(["--retriever", "bm25", "--data", str(root), "--splits", "ood*"]) == 0
    err = capsys.readouterr().err
    assert "evaluate ood01" in err and "evaluate ood02" in err


def test_bad_out_is_refused_before_the_evaluation(tmp_path, capsys, monkeypatch, read_only_dir):
    import helpers.evaluate as ev

    folder = tiny(tmp_path / "beir")

    def must_not_run(*a, **k):
        raise AssertionError("the evaluation ran before --out was checked")

    monkeypatch.setattr(ev, "evaluate_path", must_not_run)
    assert main(["--retriever", "bm25", "--data", str(folder), "--out", str(tmp_path)]) == 2
    assert "must be a file path, but this is a folder" in capsys.readouterr().err
    theirs = tmp_path / "theirs.json"
    theirs.write_text("my numbers\n")
    assert main(["--retriever", "bm25", "--data", str(folder), "--out", str(theirs)]) == 2
    assert "--overwrite" in capsys.readouterr().err and theirs.read_text() == "my numbers\n"
    assert main(["--retriever", "bm25", "--data", str(folder), "--out", str(read_only_dir / "r.json")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_out_written_by_evaluate_is_replaced_others_need_overwrite(tmp_path):
    folder = tiny(tmp_path / "beir")
    out = tmp_path / "res.json"
    assert main(["--retriever", "bm25", "--data", str(folder), "--out", str(out)]) == 0
    assert main(["--retriever", "bm25", "--data", str(folder), "--out", str(out), "--k", "1"]) == 0   # ours
    assert json.loads(out.read_text())["ks"] == [1]
    other = tmp_path / "other.json"
    other.write_text("{}")
    assert main(["--retriever", "bm25", "--data", str(folder), "--out", str(other), "--overwrite"]) == 0
    assert json.loads(other.read_text())["created_by"] == "helpers.evaluate"


def test_unknown_task_is_an_error(tmp_path, capsys):
    folder = tiny(tmp_path / "beir")
    assert main(["--retriever", "bm25", "--data", str(folder), "--task", "tabel"]) == 2
    assert "unknown task 'tabel'; valid tasks: step, table, field, workflow" in capsys.readouterr().err


@pytest.mark.slow
def test_task_a_fine_tuned_model_has_no_prompts_for(tmp_path, capsys):
    from helpers.models import load_encoder
    from helpers.tasks import task_prompts

    model = load_encoder("minilm-l6")
    model.prompts = task_prompts({}, ["step", "table"])       # as helpers.train saves them
    model.save(str(tmp_path / "ft"))
    folder = tiny(tmp_path / "beir")
    assert main(["--retriever", str(tmp_path / "ft"), "--data", str(folder), "--task", "tabel", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--task 'tabel'" in err and "has no prompts for this task; it has prompts for: step, table" in err
    assert main(["--retriever", str(tmp_path / "ft"), "--data", str(folder), "--task", "table", "--no-progress"]) == 0


def test_cli_precision_int8_reaches_the_dense_retriever(tmp_path):
    folder = tiny(tmp_path / "beir")
    out = tmp_path / "int8.json"
    assert main(["--retriever", "minilm-l6", "--data", str(folder), "--out", str(out), "--precision", "int8",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert res["retriever"]["precision"] == "int8", res["retriever"]
    assert res["metrics"]["hit@5"] >= 0.8
    assert main(["--retriever", "minilm-l6", "--data", str(folder), "--precision", "int4"]) == 2
