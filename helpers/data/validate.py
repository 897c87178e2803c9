"""Check a built dataset: structure, leakage between train and test, counts.

``python -m helpers.data validate DIR`` exits non-zero and prints every failed check. Checks:

- every task/split BEIR folder loads (every qrel resolves to a corpus document and a query);
- every split is non-empty, and the counts in ``stats.json`` match the files;
- no dev / OOD / translated query text, and no dev / OOD flow, appears in train;
- no training phrasing leaks into test pools: the catalog's train and test pools are disjoint,
  and no test query contains a distinctive (>= 5 word) fixed fragment of a train-only template;
- the training set is as large as promised for the profile it was built with;
- the label audit (:mod:`helpers.data.audit`): at least 95% of every query's gold is named by its
  text or reached by a declared rule, for every task and split.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers.data.catalog import SLOT_RE, load_catalog
from helpers.data.language import load_pools
from helpers.io import DataError, read_jsonl

MIN_TRAIN_PAIRS = {"cpu": 100_000, "full": 100_000}


def _fragments(template: str, min_words: int = 5) -> list[str]:
    """Fixed (slot-free) parts of a template with at least ``min_words`` words."""
    parts = [p.strip(" ,;.") for p in SLOT_RE.split(template)[::2]]
    return [p.lower() for p in parts if len(p.split()) >= min_words]


def _read_stats(path: Path) -> dict:
    """``stats.json``, or a :class:`DataError` naming the file, line and field that make it unusable."""
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", file=path) from None
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno}); rebuild the dataset", file=path,
                        line=e.lineno) from None
    if not isinstance(stats, dict):
        raise DataError("expected a JSON object; rebuild the dataset", file=path)
    queries = stats.get("queries")
    if not isinstance(queries, dict) or not all(
            isinstance(per, dict) and all(isinstance(n, int) for n in per.values()) for per in queries.values()):
        raise DataError("missing or malformed: expected {task: {split: number of queries}}", file=path,
                        field="queries")
    for key in ("train_pairs", "flows"):
        if not isinstance(stats.get(key, {}), dict):
            raise DataError("malformed: expected a JSON object", file=path, field=key)
    return stats


def _phrasing_leaks(texts: dict[str, set[str]]) -> list[str]:
    """Test queries holding a distinctive fragment of a train-only template (``texts``: split -> queries)."""
    errors: list[str] = []
    try:
        cat = load_catalog()
        train_pools = load_pools(cat, "en", "train")
        test_pools = load_pools(cat, "en", "test")
    except DataError as e:
        errors.append(f"catalog: {e}")
    else:
        frags = set()
        for name, phrases in train_pools.step_phrases.items():
            test_side = {t.lower() for t in test_pools.step_phrases.get(name, ())}
            for t in phrases:
                if t.lower() not in test_side:
                    frags.update(_fragments(t))
        test_frags = set()
        for phrases in list(test_pools.step_phrases.values()) + list(test_pools.step_notes.values()):
            for t in phrases:
                test_frags.update(_fragments(t))
        frags -= test_frags  # a fragment both pools use by design is ordinary language, not a leak
        pattern = re.compile("|".join(re.escape(f) for f in sorted(frags, key=len, reverse=True))) if frags else None
        for split, ts in texts.items():
            if split == "train" or split.startswith("dev-") or pattern is None:
                continue
            hits = [t for t in ts if pattern.search(t.lower())]
            if hits:
                errors.append(f"split {split}: {len(hits)} test queries contain a train-only phrasing, "
                              f"e.g. {hits[0]!r} ({pattern.search(hits[0].lower()).group(0)!r})")
    return errors


def _flow_leaks(flows_dir: Path) -> list[str]:
    """A held-out flow must not be a training flow (same YAML)."""
    errors: list[str] = []
    train_yaml = set()
    tf = flows_dir / "train.jsonl"
    try:
        if tf.is_file():
            train_yaml = {r["yaml"] for _, r in read_jsonl(tf, required=("yaml",))}
        for path in sorted(flows_dir.glob("*.jsonl")):
            if path.stem == "train" or path.stem.startswith("dev-"):
                continue
            dup = sum(1 for _, r in read_jsonl(path, required=("yaml",)) if r["yaml"] in train_yaml)
            if dup:
                errors.append(f"{path}: {dup} flows identical to training flows")
    except DataError as e:
        errors.append(str(e))
    return errors


def validate_dataset(folder: str | Path, audit: bool = True) -> list[str]:
    """Return the list of failures (empty when the dataset is valid)."""
    from helpers.beir import load_beir

    folder = Path(folder)
    errors: list[str] = []
    stats_path = folder / "stats.json"
    if not stats_path.is_file():
        return [f"{stats_path}: missing (is this a dataset built by `python -m helpers.data build`?)"]
    stats = _read_stats(stats_path)
    texts: dict[str, set[str]] = {}
    for task, per_split in stats["queries"].items():
        for split, n in per_split.items():
            path = folder / "beir" / task / split
            try:
                corpus, queries, qrels = load_beir(path)
            except (DataError, FileNotFoundError) as e:
                errors.append(f"{path}: {e}")
                continue
            if not corpus or not queries:
                errors.append(f"{path}: empty corpus or queries")
            if len(queries) != n:
                errors.append(f"{path}: stats.json says {n} queries, files hold {len(queries)}")
            texts.setdefault(split, set()).update(queries.values())
    train_texts = texts.get("train", set())
    for split, ts in texts.items():
        if split == "train":
            continue
        leaked = ts & train_texts
        if leaked:
            errors.append(f"split {split}: {len(leaked)} query texts also occur in train, e.g. {sorted(leaked)[0]!r}")
    errors += _flow_leaks(folder / "flows")
    errors += _phrasing_leaks(texts)
    need = MIN_TRAIN_PAIRS.get(stats.get("profile"), 0)
    total = stats.get("train_pairs", {}).get("total", 0)
    if total < need:
        errors.append(f"train: {total} pairs, the {stats.get('profile')} profile promises >= {need}")
    for split, n in stats.get("flows", {}).items():
        if n == 0:
            errors.append(f"split {split}: no flows")
    if audit:
        # every gold label must be earned by its query's text (helpers.data.audit)
        from helpers.data.audit import MIN_EXPLAINED, audit_dataset, failures

        try:
            errors += failures(audit_dataset(folder), MIN_EXPLAINED)
        except (DataError, KeyError, ValueError) as e:
            errors.append(f"audit: {e}")
    return errors
