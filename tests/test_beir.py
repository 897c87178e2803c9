"""BEIR folder reading/writing: round trip, determinism, and one test per kind of bad input."""

from __future__ import annotations

import json
import logging

import pytest

from helpers.beir import LoadReport, find_beir_folders, load_beir, write_beir
from helpers.io import DataError

CORPUS = {
    "d1": {"title": "HR case", "text": "A request from an employee to the HR team"},
    "d2": {"title": "", "text": "Create a record in sys_user"},
    "d3": {"title": "Incident", "text": "Something is broken", "metadata": {"domain": "itsm"}},
}
QUERIES = {"q1": "open an hr ticket", "q2": "add a user", "q3": "a query nobody judged", "q4": "only non-relevant"}
QRELS = {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}, "q4": {"d3": 0}}


def make_folder(tmp_path, name="beir"):
    return write_beir(tmp_path / name, CORPUS, QUERIES, QRELS)


def write_lines(path, lines, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def raises_at(folder, file, line, field, split="test"):
    with pytest.raises(DataError) as ei:
        load_beir(folder, split)
    e = ei.value
    assert e.file is not None and e.file.endswith(file), e
    assert e.line == line, e
    assert e.field == field, e
    return e


def test_round_trip_and_report(tmp_path, caplog):
    folder = make_folder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="helpers.beir"):
        data = load_beir(folder)
    corpus, queries, qrels = data
    assert corpus == CORPUS
    # q3 has no qrels and q4 only grade-0 judgments: dropped, but counted and logged.
    assert queries == {"q1": QUERIES["q1"], "q2": QUERIES["q2"]}
    assert qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    rep = data.report
    assert isinstance(rep, LoadReport)
    assert rep.skipped_no_qrels == ["q3"] and rep.skipped_no_relevant == ["q4"] and rep.n_skipped == 2
    assert rep.n_queries_in_file == 4 and rep.n_queries == 2 and rep.n_docs == 3 and rep.n_judgments == 4
    assert rep.as_dict()["n_skipped"] == 2
    assert any("skipped 2 of 4 queries" in r.getMessage() for r in caplog.records)
    assert data.corpus is corpus and data.queries is queries and data.qrels is qrels


def test_write_is_deterministic(tmp_path):
    a = write_beir(tmp_path / "a", CORPUS, QUERIES, QRELS)
    rev = lambda d: dict(reversed(list(d.items())))  # noqa: E731
    b = write_beir(tmp_path / "b", rev(CORPUS), rev(QUERIES), {q: rev(r) for q, r in rev(QRELS).items()})
    for rel in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert (a / "qrels/test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    # A second split is added without touching the first.
    write_beir(a, CORPUS, QUERIES, {"q2": {"d2": 1}}, split="dev")
    assert sorted(p.name for p in (a / "qrels").iterdir()) == ["dev.tsv", "test.tsv"]
    assert load_beir(a, "dev").qrels == {"q2": {"d2": 1}}
    assert not list(a.glob(".*.tmp")) and not list((a / "qrels").glob(".*.tmp"))


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(DataError, match="empty corpus"):
        write_beir(tmp_path / "x", {}, QUERIES, {})
    with pytest.raises(DataError, match="unknown document"):
        write_beir(tmp_path / "x", CORPUS, QUERIES, {"q1": {"nope": 1}})
    with pytest.raises(DataError, match="unknown query"):
        write_beir(tmp_path / "x", CORPUS, QUERIES, {"nope": {"d1": 1}})
    with pytest.raises(DataError) as ei:
        write_beir(tmp_path / "x", CORPUS, QUERIES, {"q1": {"d1": 1.5}})
    assert ei.value.field == "score"


def test_malformed_json_line(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "corpus.jsonl", ['{"_id": "d1", "text": "x"}', '{"_id": "d2", "text": '])
    raises_at(folder, "corpus.jsonl", 2, None)


def test_missing_id(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "corpus.jsonl", ['{"_id": "d1", "text": "x"}', '{"title": "t", "text": "y"}'])
    raises_at(folder, "corpus.jsonl", 2, "_id")


def test_missing_text_in_corpus(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "corpus.jsonl", ['{"_id": "d1", "title": "t"}'])
    raises_at(folder, "corpus.jsonl", 1, "text")


def test_missing_text_in_queries(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "queries.jsonl", ['{"_id": "q1", "text": "a"}', '{"_id": "q2"}'])
    raises_at(folder, "queries.jsonl", 2, "text")


def test_duplicate_doc_id(tmp_path):
    folder = make_folder(tmp_path)
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    write_lines(folder / "corpus.jsonl", lines + [lines[0]])
    e = raises_at(folder, "corpus.jsonl", 4, "_id")
    assert "duplicate" in str(e) and "line 1" in str(e)


def test_duplicate_query_id(tmp_path):
    folder = make_folder(tmp_path)
    lines = (folder / "queries.jsonl").read_text().splitlines()
    write_lines(folder / "queries.jsonl", lines + [lines[1]])
    raises_at(folder, "queries.jsonl", 5, "_id")


def test_duplicate_judgment(tmp_path):
    folder = make_folder(tmp_path)
    lines = (folder / "qrels/test.tsv").read_text().splitlines()
    write_lines(folder / "qrels/test.tsv", lines + [lines[1]])
    raises_at(folder, "test.tsv", len(lines) + 1, "corpus-id")


def test_non_utf8_corpus(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "corpus.jsonl", b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\xe9"}\n')
    e = raises_at(folder, "corpus.jsonl", 2, None)
    assert "UTF-8" in str(e)


def test_non_utf8_qrels(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "qrels/test.tsv", b"query-id\tcorpus-id\tscore\nq1\td\xff1\t1\n")
    raises_at(folder, "test.tsv", 2, None)


def test_qrel_unknown_document(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "qrels/test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q2\tmissing\t1"])
    e = raises_at(folder, "test.tsv", 3, "corpus-id")
    assert "missing" in str(e)


def test_qrel_unknown_query(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "qrels/test.tsv", ["query-id\tcorpus-id\tscore", "q9\td1\t1"])
    raises_at(folder, "test.tsv", 2, "query-id")


def test_empty_corpus(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "corpus.jsonl", ["", "  "])
    e = raises_at(folder, "corpus.jsonl", None, None)
    assert "empty corpus" in str(e)


@pytest.mark.parametrize("row, field", [
    ("q1\td1", None),            # two columns
    ("q1\td1\t1\textra", None),  # four columns
    ("q1 d1 1", None),           # spaces, not tabs
    ("q1\td1\thigh", "score"),   # grade not an integer
    ("\td1\t1", "query-id"),     # empty query id
])
def test_malformed_qrels_row(tmp_path, row, field):
    folder = make_folder(tmp_path)
    write_lines(folder / "qrels/test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", row])
    raises_at(folder, "test.tsv", 3, field)


def test_qrels_header_required(tmp_path):
    folder = make_folder(tmp_path)
    write_lines(folder / "qrels/test.tsv", ["q1\td1\t1"])
    raises_at(folder, "test.tsv", 1, "header")


def test_missing_split_names_available_splits(tmp_path):
    folder = make_folder(tmp_path)
    with pytest.raises(DataError, match="splits present: test") as ei:
        load_beir(folder, "dev")
    assert ei.value.file.endswith("dev.tsv")


def test_no_judged_query_is_an_error(tmp_path):
    folder = write_beir(tmp_path / "b", CORPUS, QUERIES, {"q4": {"d3": 0}})
    with pytest.raises(DataError, match="no query has a relevant document"):
        load_beir(folder)


def test_integer_ids_and_extra_fields(tmp_path):
    folder = tmp_path / "ints"
    write_lines(folder / "corpus.jsonl", [json.dumps({"_id": 7, "text": "seven", "metadata": {"a": 1}})])
    write_lines(folder / "queries.jsonl", [json.dumps({"_id": 1, "text": "number seven"})])
    write_lines(folder / "qrels/test.tsv", ["query-id\tcorpus-id\tscore", "1\t7\t1"])
    corpus, queries, qrels = load_beir(folder)
    assert corpus == {"7": {"title": "", "text": "seven", "metadata": {"a": 1}}}
    assert queries == {"1": "number seven"} and qrels == {"1": {"7": 1}}


def test_find_beir_folders(tmp_path):
    a = make_folder(tmp_path / "root", "ood/a")
    b = make_folder(tmp_path / "root", "b")
    make_folder(tmp_path / "root", ".cache/hidden")
    (tmp_path / "root" / "empty").mkdir()
    assert find_beir_folders(tmp_path / "root") == sorted([a, b])
    assert find_beir_folders(a) == [a]
    with pytest.raises(DataError):
        find_beir_folders(tmp_path / "nope")
