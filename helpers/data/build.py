"""Build the open dataset: flows, the four retrieval tasks per split, training pairs, stats.

Layout written under ``OUT`` (atomically: built in a temporary folder, renamed when complete)::

    OUT/beir/<task>/<split>/{corpus.jsonl, queries.jsonl, qrels/test.tsv}   task: step, table, field, workflow
    OUT/train/<task>/            Hugging Face dataset (query, positive, query_id, positive_id, flow_id)
    OUT/flows/<split>.jsonl      every flow: id, yaml, requirement, step annotations
    OUT/stats.json               counts, long tail, word overlap, build parameters

Splits: ``train`` (IT flows; its BEIR folders hold the training queries for hard-negative
mining), ``dev`` (held-out IT flows), ``ood01``..``ood10`` (one business domain each) and
``dev-de``, ``dev-es``, ``dev-fr``, ``dev-ja``, ``dev-he`` (every dev query translated; objects stay
English). The same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from helpers.data.catalog import Catalog, Field, Step, Table, load_catalog
from helpers.data.flow_yaml import flow_to_yaml
from helpers.data.flows import Flow, FlowGenerator
from helpers.data.language import load_pools, stable_hash
from helpers.data.render import Renderer
from helpers.io import DataError, atomic_dir, atomic_write_json, check_output_dir, write_jsonl
from helpers.profiles import get_profile
from helpers.splits import LANGUAGES, OOD_SPLITS
from helpers.tasks import EVAL_TASKS, TRAIN_TASKS

MAX_TABLE_NOTES = 2  # annotation queries per flow for the table task
MAX_FIELD_NOTES = 4  # annotation queries per flow for the field task
# An instance holds more flows than anyone asks about: the workflow corpus of a split gets this many
# unqueried flows of the same domain per queried one.
WORKFLOW_DISTRACTORS = 2
# Bumped when the same seed would give different data. 2: gold labels earned by their query's text
# (helpers.data.rules, helpers.data.audit); 1: every object of a step was gold.
DATASET_VERSION = 2


# --------------------------------------------------------------------------------------------
# documents (one per object), BEIR style


def step_doc(s: Step) -> dict:
    text = f"{s.description}."
    if s.inputs:
        text += f" Inputs: {', '.join(s.inputs)}."
    if s.system:
        text += f" Integration with {s.system}."
    return {"_id": s.name, "title": s.label, "text": text}


def table_doc(t: Table) -> dict:
    text = f"{t.name}: {t.description}."
    if t.extends:
        text += f" Extends {t.extends}."
    return {"_id": t.name, "title": t.label, "text": text}


def field_doc(t: Table, f: Field) -> dict:
    kind = f.type + (f" to {f.reference}" if f.reference else "")
    text = f"{f.label} ({kind}) on {t.label}: {f.description}."
    if f.choices:
        text += f" Choices: {', '.join(f.choices)}."
    return {"_id": f"{t.name}.{f.name}", "title": f"{t.name}.{f.name}", "text": text}


def document_text(doc: dict) -> str:
    """The text a retriever sees for a document; training positives use exactly the same."""
    from helpers.retrieval import doc_text

    return doc_text(doc)


def corpora_for(catalog: Catalog, split: str, flows: list[Flow]) -> dict[str, dict[str, dict]]:
    """One corpus per task: the objects one customer instance of the split's domain holds.

    ``flows`` are all the instance's flows (queried ones and distractors) for the workflow corpus.
    """
    domain = catalog.domain_for_split(split)
    tables = catalog.tables_for(domain)
    return {
        "step": {s.name: step_doc(s) for s in catalog.steps_for(domain)},
        "table": {t.name: table_doc(t) for t in tables},
        "field": {f"{t.name}.{f.name}": field_doc(t, f) for t in tables for f in t.fields},
        "workflow": {fl.flow_id: {"_id": fl.flow_id, "title": fl.name, "text": flow_to_yaml(fl)} for fl in flows},
    }


def field_query(annotation: str, table: Table) -> str:
    """The field task's query: a step annotation plus the step's table, as in the paper."""
    return f"{annotation} (table: {table.name})"


# --------------------------------------------------------------------------------------------
# queries


def render_split(catalog: Catalog, flows: list[Flow], pools, seed: int, lang: str,
                 selection: dict[str, dict[str, list[int]]] | None = None) -> tuple[dict, list[dict]]:
    """Queries and qrels for every task, and a record per flow (requirement, annotations).

    Gold labels are exactly what each text names (:class:`helpers.data.render.Renderer`) plus the
    declared rules of :mod:`helpers.data.rules`: a requirement's tables are the tables it names, a
    step note is a table query only if it names the step's table, and a field query's gold is the
    fields its note names. ``selection`` (the ``selection`` entry of an English split's result:
    ``{task: {flow_id: [step ids]}}``) makes a translated split ask about the same steps as English
    dev; a translated query whose text names none of its objects is left out and counted in
    ``unnamed``.
    """
    rend = Renderer(catalog, pools)
    q = {t: {} for t in EVAL_TASKS}
    rel = {t: {} for t in EVAL_TASKS}
    picked: dict[str, dict[str, list[int]]] = {"table": {}, "field": {}}
    unnamed = {"table": 0, "field": 0}
    records = []
    for fl in flows:
        rng = random.Random(stable_hash(str(seed), "text", lang, fl.flow_id))
        req, req_named = rend.render_requirement(rng, fl)
        notes = {s.sid: rend.render_annotation(rng, s) for s in fl.all_steps() if s.table is not None or s.fields}
        records.append({"flow_id": fl.flow_id, "requirement": req,
                        "annotations": {str(k): v[0] for k, v in notes.items()}})
        q["step"][fl.flow_id] = req
        steps = set(fl.step_names())
        rel["step"][fl.flow_id] = {n: 1 for n in sorted(_objects(req_named, "step") & steps)}
        q["workflow"][fl.flow_id] = req
        rel["workflow"][fl.flow_id] = {fl.flow_id: 1}
        req_tables = _objects(req_named, "table")
        if req_tables:
            q["table"][f"{fl.flow_id}-req"] = req
            rel["table"][f"{fl.flow_id}-req"] = {n: 1 for n in sorted(req_tables)}
        if selection is None:
            # Which steps become queries depends on the flow and the English text only.
            pick = random.Random(stable_hash(str(seed), "select", fl.flow_id))
            with_table = [s for s in fl.all_steps() if s.sid in notes and s.table is not None
                          and ("table", s.table.name) in notes[s.sid][1]]
            with_fields = [s for s in fl.all_steps() if s.sid in notes and s.table is not None
                           and _objects(notes[s.sid][1], "field")]
            chosen = {"table": [s.sid for s in _sample(pick, with_table, MAX_TABLE_NOTES)],
                      "field": [s.sid for s in _sample(pick, with_fields, MAX_FIELD_NOTES)]}
        else:
            chosen = {task: selection[task].get(fl.flow_id, []) for task in ("table", "field")}
        by_sid = {s.sid: s for s in fl.all_steps()}
        for task in ("table", "field"):
            picked[task][fl.flow_id] = chosen[task]
            for sid in chosen[task]:
                qid = f"{fl.flow_id}-s{sid}"
                text, named = notes[sid]
                gold = _objects(named, task)
                if not gold:
                    unnamed[task] += 1
                    continue
                q[task][qid] = text if task == "table" else field_query(text, by_sid[sid].table)
                rel[task][qid] = {n: 1 for n in sorted(gold)}
    return {"queries": q, "qrels": rel, "selection": picked, "unnamed": unnamed}, records


def _objects(named: set, kind: str) -> set[str]:
    return {name for k, name in named if k == kind}


def _sample(rng: random.Random, items: list, k: int) -> list:
    if len(items) <= k:
        return items
    return sorted(rng.sample(items, k), key=lambda s: s.sid)


# --------------------------------------------------------------------------------------------
# statistics


_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOP = set("a an the of to and or in on for by with is are be it its this that as at from when then if".split())


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - STOP


def word_overlap(queries: dict, qrels: dict, corpus: dict) -> float:
    """Mean share of a query's content words that occur in its gold documents' text."""
    vals = []
    for qid, text in queries.items():
        qw = _words(text)
        if not qw:
            continue
        dw = set()
        for d in qrels.get(qid, {}):
            doc = corpus[d]
            dw |= _words(doc["_id"].replace("_", " ").replace(".", " ") + " " + doc["title"] + " " + doc["text"])
        vals.append(len(qw & dw) / len(qw))
    return round(sum(vals) / max(1, len(vals)), 4)


def long_tail(counter: Counter) -> dict:
    """How concentrated the positives are: share of pairs taken by the top 1% / 10% of objects."""
    counts = sorted(counter.values(), reverse=True)
    total = sum(counts) or 1
    n = len(counts)
    top = lambda frac: round(sum(counts[: max(1, int(n * frac))]) / total, 4)
    return {"objects": n, "pairs": total, "top1pct_share": top(0.01), "top10pct_share": top(0.10),
            "max": counts[0] if counts else 0, "median": counts[n // 2] if counts else 0,
            "singletons": sum(1 for c in counts if c == 1)}


# --------------------------------------------------------------------------------------------
# the build


def source_fingerprint() -> str:
    """sha256 of everything a build depends on: catalog, language pools and the builder's code.

    Stored in stats.json so a dataset built by older sources is recognised as stale.
    """
    import hashlib

    from helpers.data.catalog import CATALOG_DIR
    from helpers.data.language import LANG_DIR

    h = hashlib.sha256()
    files = sorted(CATALOG_DIR.rglob("*.yaml")) + sorted(LANG_DIR.glob("*.yaml")) + sorted(Path(__file__).parent.glob("*.py"))
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def generate_flows(catalog: Catalog, split: str, n: int, seed: int, prefix: str = "",
                   exclude: set[str] | None = None) -> list[Flow]:
    """``n`` flows of the split's domain, ids ``<split>-<prefix><i>``; each seeded by its id.

    A flow whose structure (its YAML without the id) is in ``exclude`` is drawn again, so a held-out
    flow is never a copy of a training flow (short flows can coincide by chance).
    """
    domain = catalog.domain_for_split(split)
    gen = FlowGenerator(catalog, domain)
    flows = []
    for i in range(n):
        fid = f"{split}-{prefix}{i:05d}"
        for attempt in range(100):
            fl = gen.generate(fid, random.Random(stable_hash(str(seed), "struct", fid, str(attempt) if attempt else "")))
            if not exclude or flow_to_yaml(fl) not in exclude:
                break
        flows.append(fl)
    return flows


def build_dataset(out: str | Path, seed: int = 0, profile: str | None = None, *, train_flows: int | None = None,
                  dev_flows: int | None = None, ood_flows: int | None = None,
                  languages: tuple[str, ...] = LANGUAGES, catalog: Catalog | None = None,
                  progress: bool = True, overwrite: bool = False) -> dict:
    """Build the whole dataset into ``out``; return the stats dict (also written to stats.json).

    ``out`` must be new, empty or a folder this builder wrote (it leaves a marker file); any other
    non-empty folder is refused unless ``overwrite``, which replaces the builder's own entries
    (``beir/``, ``train/``, ``flows/``, ``stats.json``) and keeps every other file.
    """
    check_output_dir(out, overwrite=overwrite)  # before any work: a refused --out costs nothing
    check_languages(languages)
    prof = get_profile(profile)
    n_train = prof.train_flows if train_flows is None else train_flows
    n_dev = prof.dev_flows if dev_flows is None else dev_flows
    n_ood = prof.ood_flows if ood_flows is None else ood_flows
    t0 = time.time()
    catalog = catalog or load_catalog()
    splits = ["train", "dev"] + [s for s in OOD_SPLITS if any(d.split == s for d in catalog.domains.values())]
    sizes = {"train": n_train, "dev": n_dev, **{s: n_ood for s in splits[2:]}}
    stats = _new_stats(seed, prof.name)
    en_train = load_pools(catalog, "en", "train")
    en_test = load_pools(catalog, "en", "test")
    with atomic_dir(out, overwrite=overwrite, creator="helpers.data build") as tmp:
        bar = tqdm(splits + [f"dev-{lang}" for lang in languages], desc="build", disable=not progress)
        dev_flows_list: list[Flow] = []
        dev_selection: dict[str, dict[str, list[int]]] = {}
        distractors: dict[str, list[Flow]] = {}
        train_yaml: set[str] = set()
        for split in bar:
            bar.set_postfix_str(split)
            if split.startswith("dev-"):
                lang = split.split("-", 1)[1]
                flows = dev_flows_list
                pools = load_pools(catalog, lang, "test")
            else:
                lang = "en"
                flows = generate_flows(catalog, split, sizes[split], seed,
                                       exclude=None if split == "train" else train_yaml)
                pools = en_train if split == "train" else en_test
                if split == "train":
                    train_yaml = {flow_to_yaml(f) for f in flows}
                if split == "dev":
                    dev_flows_list = flows
            rendered, records = render_split(catalog, flows, pools, seed, lang,
                                             selection=dev_selection if split.startswith("dev-") else None)
            if split == "dev":
                dev_selection = rendered["selection"]
            stats["unnamed_dropped"][split] = rendered["unnamed"]
            corpora = _split_corpora(catalog, split, flows, distractors, seed)
            _write_flows(tmp / "flows", split, flows, records, stats)
            _write_split_beir(tmp / "beir", split, rendered, corpora, stats)
            if split == "train":
                stats["train_pairs"], stats["long_tail"] = _write_train(tmp / "train", rendered, corpora)
        stats["build_seconds"] = round(time.time() - t0, 1)
        stats_public = {k: v for k, v in stats.items() if k != "build_seconds"}
        # build time varies run to run; keep it out of the byte-identical stats file.
        atomic_write_json(tmp / "stats.json", stats_public)
    return stats


def _new_stats(seed: int, profile: str) -> dict:
    return {"dataset_version": DATASET_VERSION, "seed": seed, "profile": profile,
            "source_fingerprint": source_fingerprint(), "flows": {}, "queries": {t: {} for t in EVAL_TASKS},
            "corpus": {t: {} for t in EVAL_TASKS}, "qrels": {t: {} for t in EVAL_TASKS},
            "word_overlap": {t: {} for t in EVAL_TASKS}, "train_pairs": {}, "steps_per_flow": {},
            "unnamed_dropped": {}}


def _split_corpora(catalog: Catalog, split: str, flows: list[Flow], distractors: dict[str, list[Flow]],
                   seed: int) -> dict:
    """The split's corpora; held-out splits add unqueried flows of their domain (drawn once per domain,
    shared by dev and its translations) to the workflow corpus."""
    base = "dev" if split.startswith("dev-") else split
    if base == "train":
        return corpora_for(catalog, split, flows)
    if base not in distractors:
        distractors[base] = generate_flows(catalog, base, WORKFLOW_DISTRACTORS * len(flows), seed, prefix="x")
    return corpora_for(catalog, split, flows + distractors[base])


def _write_flows(folder: Path, split: str, flows: list[Flow], records: list[dict], stats: dict) -> None:
    """``flows/<split>.jsonl``: each flow's record, with its YAML where the split has flows of its own (a
    translated split's are dev's)."""
    if split.startswith("dev-"):
        write_jsonl(folder / f"{split}.jsonl", records)
        return
    write_jsonl(folder / f"{split}.jsonl", [{**r, "yaml": flow_to_yaml(f)} for r, f in zip(records, flows)])
    stats["flows"][split] = len(flows)
    stats["steps_per_flow"][split] = round(sum(len(f.all_steps()) for f in flows) / max(1, len(flows)), 2)


def check_languages(languages: tuple[str, ...]) -> None:
    """Each translated split needs its phrasing file ``data/language/<lang>.yaml`` (English is dev itself)."""
    from helpers.data.language import LANG_DIR

    have = sorted(p.stem for p in LANG_DIR.glob("*.yaml") if p.stem != "en")
    for lang in languages:
        if lang == "en" or lang not in have:
            raise DataError(f"--languages: no translation {lang!r} (data/language/{lang}.yaml); translated "
                            f"languages: {', '.join(have)}")


def _write_split_beir(root: Path, split: str, rendered: dict, corpora: dict, stats: dict) -> None:
    """One split's BEIR folder per task (``root/<task>/<split>``), its counts recorded in ``stats``."""
    from helpers.beir import write_beir

    for task in EVAL_TASKS:
        if split == "train" and task == "workflow":
            continue  # never used for training
        qs, rel = rendered["queries"][task], rendered["qrels"][task]
        write_beir(root / task / split, corpora[task], qs, rel)
        stats["queries"][task][split] = len(qs)
        stats["corpus"][task][split] = len(corpora[task])
        stats["qrels"][task][split] = sum(len(v) for v in rel.values())
        stats["word_overlap"][task][split] = word_overlap(qs, rel, corpora[task])


def _write_train(folder: Path, rendered: dict, corpora: dict) -> tuple[dict, dict]:
    """Training pairs per task as Hugging Face datasets with a deterministic fingerprint."""
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one bar per save is noise next to the build's own bar
    counts, tails = {}, {}
    for task in TRAIN_TASKS:
        rows = {"query": [], "positive": [], "query_id": [], "positive_id": [], "flow_id": []}
        freq: Counter = Counter()
        qs, rel = rendered["queries"][task], rendered["qrels"][task]
        for qid in qs:
            for did in rel[qid]:
                rows["query"].append(qs[qid])
                rows["positive"].append(document_text(corpora[task][did]))
                rows["query_id"].append(qid)
                rows["positive_id"].append(did)
                rows["flow_id"].append(qid.rsplit("-s", 1)[0].removesuffix("-req"))
                freq[did] += 1
        ds = Dataset.from_dict(rows)
        # datasets gives in-memory tables a random fingerprint; fix it so files are byte-identical.
        ds._fingerprint = f"{task}-{stable_hash(json.dumps(rows['query_id'][:50]), str(len(ds))):x}"
        ds.save_to_disk(str(folder / task))
        counts[task] = len(ds)
        tails[task] = long_tail(freq)
    counts["total"] = sum(counts.values())
    return counts, tails
