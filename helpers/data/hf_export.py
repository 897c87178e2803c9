"""A built dataset in a Hugging Face ``datasets`` layout: one ``DatasetDict`` per task, as parquet, with a card.

``python -m helpers.data export-hf DIR OUT`` writes::

    OUT/README.md                   dataset card: YAML header (licence, languages, a config per task and part) + text
    OUT/<task>/corpus.parquet       split, _id, title, text            one row per document of each split folder
    OUT/<task>/queries.parquet      split, _id, text
    OUT/<task>/qrels.parquet        split, query-id, corpus-id, score
    OUT/<task>/train.parquet        query, positive, query_id, positive_id, flow_id   (step, table, field)

``split`` is the BEIR folder the row comes from (``train``, ``dev``, ``ood01`` ... ``ood10``,
``dev-de`` ...): each has its own corpus, as an instance of the platform would. One parquet file per
part, because a ``datasets`` config holds one schema: the card declares one config per task and part
(``step-corpus``, ``step-queries``, ...) for ``load_dataset(OUT, "step-corpus")``, and
:func:`load_task` assembles a task's ``DatasetDict({corpus, queries, qrels, train})`` with
``load_dataset("parquet", ...)``, offline. Queries come through :func:`helpers.beir.load_beir`, so a
query without a relevant document is left out, as every evaluation leaves it out, and counted in the
card. The same input gives byte-identical files (rows in file order, splits in a fixed order; tested).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from helpers.beir import load_beir
from helpers.io import DataError, atomic_dir, atomic_write_text, check_output_dir
from helpers.mteb_tasks import BIBTEX, datasets_progress_bars
from helpers.splits import LANGUAGES, OOD_SPLITS
from helpers.tasks import TASKS

CREATOR = "helpers.data export-hf"
PARTS = ("corpus", "queries", "qrels", "train")
DATA_CARD = Path(__file__).resolve().parents[2] / "data" / "README.md"
_SPLIT_ORDER = ("train", "dev", *OOD_SPLITS, *(f"dev-{lang}" for lang in LANGUAGES))


def _split_folders(beir: Path, task: str) -> list[str]:
    names = [p.name for p in (beir / task).iterdir() if (p / "corpus.jsonl").is_file()]
    order = {s: i for i, s in enumerate(_SPLIT_ORDER)}
    return sorted(names, key=lambda s: (order.get(s, len(order)), s))


def task_tables(root: Path, task: str) -> tuple[dict[str, dict[str, list]], dict[str, int]]:
    """Columns of the corpus, queries and qrels tables of one task, and the queries skipped per split."""
    tables = {"corpus": {"split": [], "_id": [], "title": [], "text": []},
              "queries": {"split": [], "_id": [], "text": []},
              "qrels": {"split": [], "query-id": [], "corpus-id": [], "score": []}}
    skipped: dict[str, int] = {}
    for split in _split_folders(root / "beir", task):
        corpus, queries, qrels = data = load_beir(root / "beir" / task / split, "test")
        skipped[split] = data.report.n_skipped
        for doc_id, doc in corpus.items():
            extra = sorted(set(doc) - {"title", "text"})
            if extra:
                raise DataError(f"document {doc_id!r} has fields the export has no column for: {', '.join(extra)}",
                                file=root / "beir" / task / split / "corpus.jsonl", field=extra[0])
            for col, value in (("split", split), ("_id", doc_id), ("title", doc["title"]), ("text", doc["text"])):
                tables["corpus"][col].append(value)
        for qid, text in queries.items():
            for col, value in (("split", split), ("_id", qid), ("text", text)):
                tables["queries"][col].append(value)
        for qid, rels in qrels.items():
            for doc_id, grade in rels.items():
                for col, value in (("split", split), ("query-id", qid), ("corpus-id", doc_id), ("score", grade)):
                    tables["qrels"][col].append(value)
    return tables, skipped


def export_hf(data: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> dict:
    """Write the built dataset at ``data`` to ``out`` as parquet plus a dataset card (see the module doc).

    Returns ``{task: {part: rows}}`` plus ``"skipped"`` (queries left out per task and split).
    """
    from datasets import Dataset, load_from_disk

    root = Path(data)
    if not (root / "beir").is_dir():
        raise DataError("not a built dataset (no beir/ folder; python -m helpers.data build writes one)", file=root)
    tasks = [t for t in TASKS if (root / "beir" / t).is_dir()]
    if not tasks:
        raise DataError(f"no task folder under beir/ (expected {', '.join(TASKS)})", file=root / "beir")
    check_output_dir(out, overwrite=overwrite, flag="OUT")
    counts: dict = {"skipped": {}}
    with datasets_progress_bars(False), atomic_dir(out, overwrite=overwrite, creator=CREATOR) as tmp:
        for task in tasks:
            tables, counts["skipped"][task] = task_tables(root, task)
            if (root / "train" / task).is_dir():
                try:
                    tables["train"] = load_from_disk(str(root / "train" / task)).to_dict()
                except (OSError, ValueError) as e:
                    raise DataError(f"could not read the training pairs: {e}", file=root / "train" / task) from None
            counts[task] = {}
            for part, columns in tables.items():
                (tmp / task).mkdir(exist_ok=True)
                Dataset.from_dict(columns).to_parquet(str(tmp / task / f"{part}.parquet"))
                counts[task][part] = len(next(iter(columns.values())))
        atomic_write_text(tmp / "README.md", dataset_card(root, counts))
    return counts


def load_task(out: str | os.PathLike, task: str, cache_dir: str | os.PathLike | None = None):
    """One task of an export as a ``DatasetDict`` (corpus, queries, qrels[, train]), via ``load_dataset("parquet")``."""
    from datasets import DatasetDict, load_dataset

    folder = Path(out) / task
    files = {part: str(folder / f"{part}.parquet") for part in PARTS if (folder / f"{part}.parquet").is_file()}
    if not files:
        raise DataError(f"no parquet files for task {task!r}", file=folder)
    cache = str(cache_dir) if cache_dir else None
    return DatasetDict({part: load_dataset("parquet", data_files={part: path}, split=part, cache_dir=cache)
                        for part, path in files.items()})


# ----------------------------------------------------------------------------------------------------------
# the card
# ----------------------------------------------------------------------------------------------------------

def _section(markdown: str, heading: str) -> str:
    """The body of a ``## heading`` section of the data card (to the next ``## ``)."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, flags=re.S | re.M)
    if not m:
        raise DataError(f"section '## {heading}' not found", file=DATA_CARD)
    return m.group(1).strip()


def _first_table(text: str) -> str:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def _yaml_header(counts: dict, stats: dict) -> str:
    import yaml

    tasks = [t for t in TASKS if t in counts]
    langs = ["en"] + [lang for lang in LANGUAGES if any(f"dev-{lang}" in counts["skipped"][t] for t in tasks)]
    n = sum(counts[t]["queries"] for t in tasks)
    size = "n<1K" if n < 1_000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M"
    header = {
        "license": "cc-by-4.0", "language": langs,
        "multilinguality": "multilingual" if len(langs) > 1 else "monolingual",
        "task_categories": ["text-retrieval"], "task_ids": ["document-retrieval"], "size_categories": [size],
        "pretty_name": "Enterprise-workflow retrieval (open stand-in for Béchard & Marquez Ayala 2025)",
        "tags": ["beir", "mteb", "synthetic", "enterprise-workflows", "multi-task-retrieval"],
        "configs": [{"config_name": f"{t}-{p}", "data_files": [{"split": p, "path": f"{t}/{p}.parquet"}]}
                    for t in tasks for p in PARTS if p in counts[t]],
        "dataset_info": {"dataset_version": stats.get("dataset_version"), "profile": stats.get("profile"),
                         "seed": stats.get("seed"), "source_fingerprint": stats.get("source_fingerprint")},
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=200) + "---\n"


def _counts_table(counts: dict) -> str:
    rows = ["| task | documents (all splits) | queries | judgments | training pairs "
            "| queries left out (no relevant document) |",
            "|---|---|---|---|---|---|"]
    for t in (t for t in TASKS if t in counts):
        c = counts[t]
        rows.append(f"| {t} | {c['corpus']:,} | {c['queries']:,} | {c['qrels']:,} | "
                    f"{c.get('train', 0):,} | {sum(counts['skipped'][t].values())} |")
    return "\n".join(rows)


def dataset_card(root: Path, counts: dict) -> str:
    """The card: the data card's task table and licence verbatim, this export's counts and build parameters."""
    try:
        stats = json.loads((root / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stats = {}
    card = DATA_CARD.read_text(encoding="utf-8")
    splits = sorted({s for t in TASKS if t in counts for s in counts["skipped"][t]},
                    key=lambda s: (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else len(_SPLIT_ORDER), s))
    keys = ("dataset_version", "profile", "seed", "source_fingerprint")
    build = ", ".join(f"{k} {stats[k]}" for k in keys if k in stats)
    return "\n".join([
        _yaml_header(counts, stats),
        "# Enterprise-workflow retrieval: the open dataset in Hugging Face layout\n",
        "An open, template-generated stand-in for the proprietary data of Béchard & Marquez Ayala (2025), "
        "*Multi-task retriever fine-tuning for domain-specific and efficient RAG* (arXiv 2501.04652): workflows "
        "of an enterprise platform, the steps, tables and fields they are built from, and the requests people "
        "write for them. Generated by `python -m helpers.data build` and exported by "
        f"`python -m helpers.data export-hf` ({build or 'build parameters unknown: no stats.json'}). How the text "
        "is made, how test text is kept apart from training text, how gold labels are earned and the known "
        "limitations are in the repository's data card, `data/README.md`.\n",
        "## Tasks\n", "From the data card (its counts are for profile `cpu`; this export's are below):\n",
        _first_table(_section(card, "Tasks and splits")) + "\n",
        "## Configs, splits and columns\n",
        "One parquet file, and one config, per task and part (`step-corpus`, `step-queries`, `step-qrels`, "
        "`step-train`, ...: a config holds one schema), each with one dataset split named after the part:\n",
        "- `corpus`: `split`, `_id`, `title`, `text` (retrievers see `title: text`)\n"
        "- `queries`: `split`, `_id`, `text`\n"
        "- `qrels`: `split`, `query-id`, `corpus-id`, `score` (1 = relevant)\n"
        "- `train` (step, table, field): `query`, `positive`, `query_id`, `positive_id`, `flow_id`; "
        "workflow retrieval is never trained on\n",
        f"The `split` column names the dataset split a row belongs to: {', '.join(splits)}. Each split has its "
        "own corpus (OOD splits are other business domains; `dev-xx` are the dev queries in another language "
        "with the English dev corpus). Evaluate a split by filtering all three tables on it.\n",
        "## Counts (this export)\n", _counts_table(counts) + "\n",
        "## Loading\n",
        "```python\nfrom datasets import DatasetDict, load_dataset\n\n"
        "step = DatasetDict({p: load_dataset(\"parquet\", data_files={p: f\"step/{p}.parquet\"}, split=p)\n"
        "                    for p in (\"corpus\", \"queries\", \"qrels\", \"train\")})\n"
        "corpus = load_dataset(\"path/to/this/folder\", \"step-corpus\", split=\"corpus\")  "
        "# through this card's configs\n"
        "```\n\n`helpers.data.hf_export.load_task(folder, \"step\")` does the first.\n",
        "MTEB: `python -m helpers.mteb --model NAME_OR_PATH --data BUILT_DATASET --out OUT` scores a model on "
        "these tasks from the built dataset (tasks `EnterpriseStepRetrieval`, ...).\n",
        "## Licence\n", _section(card, "Licence") + "\n",
        "## Citation\n", "The study this dataset stands in for (the data itself is not from the paper):\n",
        f"```bibtex\n{BIBTEX}\n```\n",
    ])
