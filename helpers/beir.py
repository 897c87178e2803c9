"""Reading and writing BEIR folders, strictly.

A BEIR folder holds::

    corpus.jsonl        {"_id": ..., "title": ..., "text": ...}   one document a line
    queries.jsonl       {"_id": ..., "text": ...}                 one query a line
    qrels/<split>.tsv   query-id <TAB> corpus-id <TAB> score      with that header line

:func:`load_beir` returns the usual BEIR dicts ``corpus {doc_id: {"title", "text"}}``,
``queries {qid: text}`` and ``qrels {qid: {doc_id: grade}}``. It is strict where the reference BEIR
loader is lenient: anything that would silently change a score (a duplicate id, a judgment for a
document or query that does not exist, a malformed row) raises :class:`~helpers.io.DataError` naming
the file, the line and the field. Queries without judgments in the split are normal (one
``queries.jsonl`` serves several splits), so they are dropped but counted in a :class:`LoadReport`
and logged, never silently.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from helpers.io import DataError, atomic_write_text, iter_lines, read_jsonl, write_jsonl

logger = logging.getLogger(__name__)

QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass
class LoadReport:
    """What :func:`load_beir` read and what it left out (and why)."""

    folder: str
    split: str
    n_docs: int
    n_queries_in_file: int
    n_queries: int
    n_judgments: int
    # Queries present in queries.jsonl with no row at all in qrels/<split>.tsv.
    skipped_no_qrels: list[str] = field(default_factory=list)
    # Queries whose judgments are all grade <= 0: no metric can be non-zero, so they only dilute means.
    skipped_no_relevant: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped_no_qrels) + len(self.skipped_no_relevant)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["n_skipped"] = self.n_skipped
        return d


class BeirData(tuple):
    """``(corpus, queries, qrels)`` that also carries the :class:`LoadReport` as ``.report``.

    A tuple so ``corpus, queries, qrels = load_beir(path)`` keeps working like BEIR's loader.
    """

    def __new__(cls, corpus: dict, queries: dict, qrels: dict, report: LoadReport):
        obj = super().__new__(cls, (corpus, queries, qrels))
        obj.report = report
        return obj

    @property
    def corpus(self) -> dict:
        return self[0]

    @property
    def queries(self) -> dict:
        return self[1]

    @property
    def qrels(self) -> dict:
        return self[2]


def _as_id(value, path, lineno, name) -> str:
    # BEIR ids are strings; integers show up in hand-made files and mean the same thing.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"id must be a string, got {type(value).__name__}", file=path, line=lineno, field=name)
    value = str(value)
    if not value.strip():
        raise DataError("empty id", file=path, line=lineno, field=name)
    if any(c in value for c in "\t\r\n"):
        raise DataError("id contains a tab or newline", file=path, line=lineno, field=name)
    return value


def _read_corpus(path: Path) -> dict[str, dict]:
    corpus: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    for lineno, rec in read_jsonl(path, required=("_id",)):
        doc_id = _as_id(rec["_id"], path, lineno, "_id")
        if doc_id in corpus:
            raise DataError(f"duplicate document id {doc_id!r} (first on line {first_line[doc_id]})",
                            file=path, line=lineno, field="_id")
        if "text" not in rec:
            raise DataError("missing required field", file=path, line=lineno, field="text")
        text, title = rec["text"], rec.get("title", "")
        if title is None:
            title = ""
        if not isinstance(text, str):
            raise DataError(f"expected a string, got {type(text).__name__}", file=path, line=lineno, field="text")
        if not isinstance(title, str):
            raise DataError(f"expected a string, got {type(title).__name__}", file=path, line=lineno, field="title")
        if not text.strip() and not title.strip():
            raise DataError("document has neither text nor title", file=path, line=lineno, field="text")
        doc = {"title": title, "text": text}
        # Extra fields (BEIR's "metadata", our own annotations) ride along untouched.
        for key, value in rec.items():
            if key not in ("_id", "title", "text"):
                doc[key] = value
        corpus[doc_id] = doc
        first_line[doc_id] = lineno
    if not corpus:
        raise DataError("empty corpus: no documents", file=path)
    return corpus


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, rec in read_jsonl(path, required=("_id", "text")):
        qid = _as_id(rec["_id"], path, lineno, "_id")
        if qid in queries:
            raise DataError(f"duplicate query id {qid!r} (first on line {first_line[qid]})",
                            file=path, line=lineno, field="_id")
        if not isinstance(rec["text"], str):
            raise DataError(f"expected a string, got {type(rec['text']).__name__}", file=path, line=lineno,
                            field="text")
        queries[qid] = rec["text"]
        first_line[qid] = lineno
    if not queries:
        raise DataError("no queries", file=path)
    return queries


def _read_qrels(path: Path, corpus: dict, queries: dict) -> tuple[dict[str, dict[str, int]], int]:
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.tsv")) if path.parent.is_dir() else []
        hint = f"; splits present: {', '.join(available)}" if available else ""
        raise DataError(f"qrels file not found{hint}", file=path)
    qrels: dict[str, dict[str, int]] = {}
    seen_line: dict[tuple[str, str], int] = {}
    n = 0
    header_seen = False
    for lineno, line in iter_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        cols = line.split("\t")
        if not header_seen:
            if tuple(c.strip() for c in cols) != QRELS_HEADER:
                raise DataError(f"expected the header 'query-id<TAB>corpus-id<TAB>score', got {line!r}",
                                file=path, line=lineno, field="header")
            header_seen = True
            continue
        if len(cols) != 3:
            raise DataError(f"expected 3 tab-separated columns, got {len(cols)}", file=path, line=lineno)
        qid, doc_id, score = (c.strip() for c in cols)
        if not qid:
            raise DataError("empty value", file=path, line=lineno, field="query-id")
        if not doc_id:
            raise DataError("empty value", file=path, line=lineno, field="corpus-id")
        try:
            grade = int(score)
        except ValueError:
            raise DataError(f"score must be an integer, got {score!r}", file=path, line=lineno,
                            field="score") from None
        if qid not in queries:
            raise DataError(f"unknown query {qid!r} (not in queries.jsonl)", file=path, line=lineno,
                            field="query-id")
        if doc_id not in corpus:
            raise DataError(f"unknown document {doc_id!r} (not in corpus.jsonl)", file=path, line=lineno,
                            field="corpus-id")
        if (qid, doc_id) in seen_line:
            raise DataError(f"duplicate judgment for ({qid!r}, {doc_id!r}) (first on line "
                            f"{seen_line[qid, doc_id]})", file=path, line=lineno, field="corpus-id")
        seen_line[qid, doc_id] = lineno
        qrels.setdefault(qid, {})[doc_id] = grade
        n += 1
    if not header_seen:
        raise DataError("empty qrels file (no header, no rows)", file=path)
    return qrels, n


def load_beir(folder: str | os.PathLike, split: str = "test") -> BeirData:
    """Load a BEIR folder; returns ``(corpus, queries, qrels)`` with the :class:`LoadReport` as ``.report``.

    Only queries with at least one judgment of grade > 0 in ``split`` are returned (in ``queries``
    and ``qrels``); the others are counted in the report and logged as a warning.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("BEIR folder not found", file=folder)
    corpus = _read_corpus(folder / "corpus.jsonl")
    all_queries = _read_queries(folder / "queries.jsonl")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    all_qrels, n_judgments = _read_qrels(qrels_path, corpus, all_queries)

    no_qrels = [q for q in all_queries if q not in all_qrels]
    no_relevant = [q for q, rels in all_qrels.items() if not any(g > 0 for g in rels.values())]
    dropped = set(no_qrels) | set(no_relevant)
    queries = {q: t for q, t in all_queries.items() if q not in dropped}
    qrels = {q: rels for q, rels in all_qrels.items() if q not in dropped}
    if not queries:
        raise DataError(f"no query has a relevant document (grade > 0) in split {split!r}", file=qrels_path)

    report = LoadReport(folder=str(folder), split=split, n_docs=len(corpus), n_queries_in_file=len(all_queries),
                        n_queries=len(queries), n_judgments=n_judgments,
                        skipped_no_qrels=sorted(no_qrels), skipped_no_relevant=sorted(no_relevant))
    if report.n_skipped:
        logger.warning("%s [%s]: skipped %d of %d queries (%d without qrels, %d without a relevant document)",
                       folder, split, report.n_skipped, len(all_queries), len(no_qrels), len(no_relevant))
    return BeirData(corpus, queries, qrels, report)


def write_beir(folder: str | os.PathLike, corpus: dict, queries: dict, qrels: dict, split: str = "test") -> Path:
    """Write a BEIR folder; equal inputs give byte-identical files whatever the dict order.

    Records are sorted by id (qrels by query id then document id) and each file is written
    atomically. Other splits already in ``folder/qrels`` are left alone, so splits can be written
    one call at a time. Inputs are validated with the same rules as :func:`load_beir`.
    """
    folder = Path(folder)
    if not corpus:
        raise DataError("empty corpus: no documents", field="corpus")
    docs = []
    for doc_id in sorted(corpus, key=str):
        doc = corpus[doc_id]
        sid = _as_id(doc_id, None, None, "_id")
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise DataError(f"document {sid!r} needs a string 'text'", field="text")
        rec = {"_id": sid, "title": doc.get("title") or "", "text": doc["text"]}
        for key in sorted(k for k in doc if k not in ("_id", "title", "text")):
            rec[key] = doc[key]
        docs.append(rec)
    if len({d["_id"] for d in docs}) != len(docs):
        raise DataError("duplicate document ids after converting ids to strings", field="_id")
    qrecs = []
    for qid in sorted(queries, key=str):
        text = queries[qid]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"query {qid!r} needs a non-empty string text", field="text")
        qrecs.append({"_id": _as_id(qid, None, None, "_id"), "text": text})
    doc_ids = {d["_id"] for d in docs}
    query_ids = {q["_id"] for q in qrecs}
    rows = ["\t".join(QRELS_HEADER)]
    for qid in sorted(qrels, key=str):
        if str(qid) not in query_ids:
            raise DataError(f"qrels name unknown query {qid!r}", field="query-id")
        for doc_id in sorted(qrels[qid], key=str):
            if str(doc_id) not in doc_ids:
                raise DataError(f"qrels of query {qid!r} name unknown document {doc_id!r}", field="corpus-id")
            grade = qrels[qid][doc_id]
            if isinstance(grade, bool) or not isinstance(grade, int):
                raise DataError(f"grade for ({qid!r}, {doc_id!r}) must be an int, got {grade!r}", field="score")
            rows.append(f"{qid}\t{doc_id}\t{grade}")
    write_jsonl(folder / "corpus.jsonl", docs)
    write_jsonl(folder / "queries.jsonl", qrecs)
    atomic_write_text(folder / "qrels" / f"{split}.tsv", "\n".join(rows) + "\n")
    return folder


def find_beir_folders(root: str | os.PathLike) -> list[Path]:
    """Every folder under ``root`` (``root`` included) holding a ``corpus.jsonl``, sorted by path.

    Hidden folders (caches, ``.ipynb_checkpoints``) are not searched, and the search does not go
    inside a BEIR folder once found.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("folder not found", file=root)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "corpus.jsonl" in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)
