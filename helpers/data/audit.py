"""Audit a built dataset: is every gold label earned by its query's text?

For each task and split, every gold object of every query is classed, from the text alone:

``named``
    the query names it: a table's or field's label, id or any alias (in a translated split also
    the glossary's translation), or for a step one of its phrasings (the phrase's fixed words in
    order, slots matching anything);
``rule:<name>``
    not named, but reached by a declared rule of :mod:`helpers.data.rules` whose trigger words
    are in the query (e.g. "the caller's supervisor" reaches ``sys_user.manager``);
``unexplained``
    neither: noise a model cannot learn, which caps every score.

Shares are reported per query (averaged over queries) and pooled (over all gold labels).
``python -m helpers.data audit DIR --min 0.95`` exits non-zero when the explained share per query
of any task and split is below the threshold; ``validate`` runs the audit with 0.95.

The audit is independent of the generator: it reads only the BEIR folders, the catalog and the
phrase pools, so it also checks a split edited by hand.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from helpers.data.catalog import SLOT_RE, Catalog, load_catalog
from helpers.data.language import load_pools
from helpers.data.rules import MANAGER_RULE, STEP_RULES
from helpers.splits import LANGUAGES

# The tasks whose gold objects a query names (a workflow's gold is a whole flow: nothing to audit).
AUDIT_TASKS = ("step", "table", "field")
MIN_EXPLAINED = 0.95
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_FIELD_SUFFIX = re.compile(r"\s*\(table: [a-z0-9_]+\)\s*$")
# Scripts that write words without spaces, or glue prefixes to them (Hebrew "ו", "ה", "ל"):
# names are found as substrings there.
_SUBSTRING_LANGS = {"ja", "he"}


def _norm(text: str) -> str:
    """Lower case, punctuation to spaces, "an" to "a" (English articles are fixed after filling)."""
    words = _NON_WORD.sub(" ", text.lower()).split()
    return " " + " ".join("a" if w == "an" else w for w in words) + " "


@lru_cache(maxsize=None)
def _name_re(name: str) -> re.Pattern:
    return re.compile(r" " + re.escape(name.strip()) + r"(?:s|es)? ")


def _has_name(query: str, name: str, substring: bool) -> bool:
    """``name`` (normalised by :meth:`Namer.names_of`) occurs in ``query`` (normalised by :func:`_norm`)."""
    if substring:
        return name in query or name.replace(" ", "") in query.replace(" ", "")
    return bool(_name_re(name).search(query))


@lru_cache(maxsize=None)
def _chunks(template: str) -> tuple[str, ...]:
    """The fixed words of a template, in order (slots dropped)."""
    return tuple(c for c in (_norm(p).strip() for p in SLOT_RE.split(template)[::2]) if c)


def _has_template(query: str, template: str, substring: bool) -> bool:
    chunks = _chunks(template)
    if not chunks:
        return False  # a template of slots only says nothing by itself
    pos = 0
    for c in chunks:
        i = query.find(c if substring else f" {c} ", pos)
        if i < 0:
            return False
        pos = i + len(c)
    return True


class Namer:
    """Every way one language's queries may name the catalog's objects."""

    def __init__(self, catalog: Catalog, lang: str = "en"):
        self.cat, self.lang = catalog, lang
        self.substring = lang in _SUBSTRING_LANGS
        en_train, en_test = load_pools(catalog, "en", "train"), load_pools(catalog, "en", "test")
        pools = [en_train, en_test] + ([load_pools(catalog, lang, "test")] if lang != "en" else [])
        self.glossary = pools[-1].glossary if lang != "en" else {}
        self.step_templates: dict[str, set[str]] = defaultdict(set)
        for p in pools:
            for name, ts in list(p.step_phrases.items()) + list(p.step_notes.items()):
                self.step_templates[name].update(ts)
        for s in catalog.steps.values():
            # spokes' phrases live in the catalog: both halves of the split count as naming
            self.step_templates[s.name].update(s.phrases_train + s.phrases_test + s.notes_train + s.notes_test)
        self.manager_templates = set().union(*(p.sentence["manager_recipients"] for p in pools))

    def _terms(self, names) -> set[str]:
        out = set()
        for n in names:
            out.add(n)
            if n in self.glossary:
                out.add(self.glossary[n])
        return out

    @lru_cache(maxsize=None)
    def names_of(self, kind: str, oid: str) -> tuple[str, ...]:
        if kind == "table":
            t = self.cat.tables.get(oid)
            if t is None:
                return (oid,)
            base = {t.label.lower(), t.name, t.name.replace("_", " "), *t.aliases}
        elif kind == "field":
            tname, _, fname = oid.partition(".")
            t = self.cat.tables.get(tname)
            try:
                f = t.field(fname) if t is not None else None
            except KeyError:
                f = None
            base = {fname, fname.replace("_", " ")}
            if f is not None:
                base |= {f.label.lower(), *f.aliases}
        else:
            s = self.cat.steps.get(oid)
            base = {oid.replace("_", " ")} | ({s.label.lower()} if s is not None else set())
        # normalised once here, not per query: the audit checks every gold label of every split
        return tuple(sorted({n for n in (_norm(t).strip() for t in self._terms(base)) if n}))

    def named(self, query: str, kind: str, oid: str) -> bool:
        if any(_has_name(query, n, self.substring) for n in self.names_of(kind, oid)):
            return True
        if kind == "step":
            return any(_has_template(query, t, self.substring) for t in self.step_templates.get(oid, ()))
        return False

    def rules(self, query: str) -> dict[str, set[tuple[str, str]]]:
        """Rules whose trigger words are in ``query``, with what each covers.

        A journal rule covers a field by its name on any table (``"*.comments"``).
        """
        fired: dict[str, set] = {}
        if any(_has_template(query, t, self.substring) for t in self.manager_templates):
            fired["manager"] = set(MANAGER_RULE)
        for name, steps in STEP_RULES.items():
            for step, objs in steps.items():
                if any(_has_template(query, t, self.substring) for t in self.step_templates.get(step, ())):
                    fired.setdefault(name, set()).update((k, o if k == "table" else f"*.{o}") for k, o in objs)
        return fired


def _covered(obj: tuple[str, str], covers: set[tuple[str, str]]) -> bool:
    kind, oid = obj
    if obj in covers:
        return True
    return kind == "field" and ("field", "*." + oid.partition(".")[2]) in covers


def audit_split(namer: Namer, queries: dict[str, str], qrels: dict[str, dict], task: str,
                examples: int = 3) -> dict:
    """Classify every gold label of one task/split; return shares and the unexplained patterns."""
    kind = task
    per_query, counts = [], Counter()
    patterns: dict[str, list] = defaultdict(list)
    for qid in sorted(qrels):
        gold = [g for g, grade in qrels[qid].items() if grade > 0]
        if not gold or qid not in queries:
            continue
        text = queries[qid]
        if task == "field":
            text = _FIELD_SUFFIX.sub("", text)  # the table is context, it names no field
        nq = _norm(text)
        fired = None
        explained = 0
        for g in gold:
            if namer.named(nq, kind, g):
                counts["named"] += 1
                explained += 1
                continue
            fired = namer.rules(nq) if fired is None else fired
            rule = next((r for r, cov in sorted(fired.items()) if _covered((kind, g), cov)), None)
            if rule:
                counts[f"rule:{rule}"] += 1
                explained += 1
            else:
                counts["unexplained"] += 1
                key = g.partition(".")[2] if kind == "field" else g
                patterns[key].append((qid, queries[qid], g))
        per_query.append(explained / len(gold))
    total = sum(counts.values())
    out = {
        "queries": len(per_query),
        "gold": total,
        "explained_per_query": round(sum(per_query) / len(per_query), 4) if per_query else 1.0,
        "explained_pooled": round(1 - counts["unexplained"] / total, 4) if total else 1.0,
        "named_pooled": round(counts["named"] / total, 4) if total else 0.0,
        "rules_pooled": {k.split(":", 1)[1]: round(v / total, 4) for k, v in sorted(counts.items()) if k.startswith("rule:")},
        "unexplained": counts["unexplained"],
        "patterns": [{"object": k, "count": len(v), "examples": [{"query_id": a, "query": b, "gold": c} for a, b, c in v[:examples]]}
                     for k, v in sorted(patterns.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]],
    }
    return out


def split_language(split: str) -> str:
    lang = split.rsplit("-", 1)[1] if "-" in split else "en"
    return lang if lang in LANGUAGES else "en"


def audit_dataset(folder: str | Path, splits: str | None = None, tasks=AUDIT_TASKS,
                  catalog: Catalog | None = None) -> dict:
    """``{task: {split: report}}`` for every BEIR folder under ``folder/beir`` (``splits``: a glob)."""
    from helpers.beir import load_beir

    folder = Path(folder)
    catalog = catalog or load_catalog()
    namers: dict[str, Namer] = {}
    report: dict = {}
    for task in tasks:
        root = folder / "beir" / task
        if not root.is_dir():
            continue
        for sdir in sorted(p for p in root.iterdir() if p.is_dir()):
            if splits and not fnmatch.fnmatch(sdir.name, splits):
                continue
            _, queries, qrels = load_beir(sdir)
            lang = split_language(sdir.name)
            namer = namers.get(lang) or namers.setdefault(lang, Namer(catalog, lang))
            report.setdefault(task, {})[sdir.name] = audit_split(namer, queries, qrels, task)
    return report


def failures(report: dict, minimum: float = MIN_EXPLAINED) -> list[str]:
    """One line per task/split whose explained share per query is below ``minimum``."""
    return [f"audit: {task}/{split}: {r['explained_per_query']:.3f} of gold per query is named or ruled "
            f"(min {minimum}); {r['unexplained']} unexplained labels, e.g. "
            + "; ".join(f"{p['object']} x{p['count']}" for p in r["patterns"][:3])
            for task, per in report.items() for split, r in per.items() if r["explained_per_query"] < minimum]


def format_report(report: dict, show_patterns: int = 3) -> str:
    lines = [f"{'task':<6} {'split':<8} {'queries':>7} {'gold':>6} {'named':>6} {'rules':>6} "
             f"{'expl/q':>7} {'expl':>6} {'unexpl':>6}"]
    for task, per in report.items():
        for split, r in per.items():
            rules = sum(r["rules_pooled"].values())
            lines.append(f"{task:<6} {split:<8} {r['queries']:>7} {r['gold']:>6} {r['named_pooled']:>6.3f} "
                         f"{rules:>6.3f} {r['explained_per_query']:>7.3f} {r['explained_pooled']:>6.3f} "
                         f"{r['unexplained']:>6}")
            for p in r["patterns"][:show_patterns]:
                ex = p["examples"][0]
                lines.append(f"         unexplained {p['object']} x{p['count']}: {ex['query'][:110]!r} -> {ex['gold']}")
    return "\n".join(lines)
