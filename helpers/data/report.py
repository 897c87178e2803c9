"""Looking at a built dataset: count tables like the paper's Tables 1-2, examples, the long tail."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Mapping

from helpers.beir import load_beir
from helpers.io import read_jsonl
from helpers.tasks import EVAL_TASKS


def load_stats(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "stats.json").read_text(encoding="utf-8"))


def split_counts(stats: dict, splits: list[str]) -> dict[str, dict[str, int]]:
    """``{split: {"flows": n, "step": n_queries, ...}}`` (the paper's Tables 1 and 2)."""
    out = {}
    for split in splits:
        base = "dev" if split.startswith("dev-") else split
        row = {"flows": stats["flows"].get(base, 0)}
        for task in EVAL_TASKS:
            row[task] = stats["queries"][task].get(split, 0)
        out[split] = row
    return out


def corpus_sizes(stats: dict, splits: list[str]) -> dict[str, dict[str, int]]:
    return {s: {t: stats["corpus"][t].get(s, 0) for t in EVAL_TASKS} for s in splits}


def examples(folder: str | Path, task: str, split: str, n: int = 3, seed: int = 0, max_gold: int = 6) -> list[dict]:
    """``n`` seeded example queries of a task/split with their gold documents' titles."""
    corpus, queries, qrels = load_beir(Path(folder) / "beir" / task / split)
    qids = random.Random(seed).sample(sorted(queries), min(n, len(queries)))
    out = []
    for q in qids:
        gold = sorted(qrels.get(q, {}))
        out.append({"query": queries[q], "gold": gold[:max_gold] + (["..."] if len(gold) > max_gold else []),
                    "gold_text": [corpus[g]["title"] + ": " + corpus[g]["text"][:120] for g in gold[:2]]})
    return out


def flow_record(folder: str | Path, split: str, index: int = 0) -> dict:
    """One flow of a split: id, YAML, requirement and step annotations."""
    for i, (_, rec) in enumerate(read_jsonl(Path(folder) / "flows" / f"{split}.jsonl")):
        if i == index:
            return rec
    raise IndexError(f"split {split} has fewer than {index + 1} flows")


def positive_counts(folder: str | Path, task: str) -> Counter:
    """How many training pairs each object is the positive of (the long tail downsampling acts on)."""
    from datasets import load_from_disk

    ds = load_from_disk(str(Path(folder) / "train" / task))
    return Counter(ds["positive_id"])


def frequency_groups(counts: Mapping[str, int], head_share: float = 0.5) -> dict[str, str]:
    """``"head"`` or ``"tail"`` for every object of a training-frequency count.

    The head is the smallest set of the most frequent objects that together hold at least ``head_share``
    of the pairs (ties broken by object id, so the split is deterministic); every other counted object is
    the tail. Objects that never occur in training are not named (callers group them as ``"unseen"``).
    """
    if not 0 < head_share <= 1:
        raise ValueError(f"head_share must be in (0, 1], got {head_share}")
    total = sum(counts.values())
    groups: dict[str, str] = {}
    covered = 0
    for obj, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        groups[obj] = "head" if covered < head_share * total else "tail"
        covered += n
    return groups
