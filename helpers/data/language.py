"""Phrase pools and the rendering of requirements and step annotations, per language.

Two rules keep evaluation honest:

* every pool has a ``train`` half and a ``test`` half; training queries are rendered only from
  ``train`` phrasings, dev / OOD / translated queries only from ``test`` phrasings;
* object aliases of the training domain (IT plus the shared tables) are split into disjoint
  train/test halves by :func:`split_pool`, so a test query never names an object the way a
  training query did. Objects that exist only in an out-of-domain split never reach training,
  so all their aliases are test phrasing.

English pools come from ``data/language/en.yaml`` and the catalog. A translated language
(``de``, ``es``, ``fr``, ``ja``, ``he``) has its own file with the *test* halves only, since
translated text is only ever used for evaluation, plus a glossary from English alias to the
translated noun phrase.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers.data.catalog import SLOT_RE, Catalog, Step
from helpers.io import DataError
from helpers.workspace import REPO

LANG_DIR = REPO / "data" / "language"
SENTENCE_POOLS = ("openers", "conditions", "schedules", "durations", "recipients", "manager_recipients",
                  "group_recipients", "connectors", "last_connectors")
TRIGGER_KINDS = ("record_created", "record_updated", "scheduled", "inbound_email", "service_catalog")
VALUE_KINDS = ("boolean_true", "boolean_false", "date", "integer", "currency")


def stable_hash(*parts: str) -> int:
    """A hash that is the same on every machine and Python run (unlike ``hash``)."""
    return int(hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12], 16)


def split_pool(key: str, items: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split one object's phrasings into disjoint (train, test) halves, deterministically.

    About a third (at least one) goes to test; with a single phrasing, test keeps it and train gets
    none (the caller then falls back to the object's label for training text).
    """
    items = sorted(set(items), key=lambda s: stable_hash(key, s.lower()))
    if len(items) <= 1:
        return (), tuple(items)
    n_test = max(1, round(len(items) / 3))
    return tuple(items[n_test:]), tuple(items[:n_test])


@dataclass
class Pools:
    """One language's phrasing for one side (train or test)."""

    lang: str
    side: str  # "train" or "test"
    sentence: dict[str, tuple[str, ...]]
    triggers: dict[str, tuple[str, ...]]
    values: dict[str, tuple[str, ...]]
    step_phrases: dict[str, tuple[str, ...]]
    step_notes: dict[str, tuple[str, ...]]
    glossary: dict[str, str] = field(default_factory=dict)  # English alias -> this language

    def term(self, english: str) -> str:
        """Translate an English alias (identity for English)."""
        if self.lang == "en":
            return english
        try:
            return self.glossary[english]
        except KeyError:
            raise DataError(f"no glossary entry for {english!r}", file=LANG_DIR / f"{self.lang}.yaml",
                            field="glossary") from None


def _pair(v, file: Path, key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(v, dict) or not isinstance(v.get("train"), list) or not isinstance(v.get("test"), list):
        raise DataError("expected a mapping with 'train' and 'test' lists", file=file, field=key)
    tr = tuple(" ".join(str(s).split()) if str(s).strip() else str(s) for s in v["train"])
    te = tuple(" ".join(str(s).split()) if str(s).strip() else str(s) for s in v["test"])
    clash = set(tr) & set(te) - {""}
    if clash:
        raise DataError(f"train and test pools share {sorted(clash)}", file=file, field=key)
    if not te:
        raise DataError("empty test pool", file=file, field=key)
    return tr, te


def _load(path: Path) -> dict:
    if not path.is_file():
        raise DataError("language file not found", file=path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DataError("expected a YAML mapping", file=path)
    return data


def load_pools(catalog: Catalog, lang: str = "en", side: str = "test", root: Path | None = None) -> Pools:
    """Return the phrase pools for ``lang`` and ``side`` ("train" or "test")."""
    root = Path(root) if root else LANG_DIR
    if lang != "en" and side != "test":
        raise ValueError("translated languages only have test phrasing (they are evaluation-only)")
    path = root / f"{lang}.yaml"
    data = _load(path)
    idx = 0 if side == "train" else 1
    sentence, triggers, values = {}, {}, {}
    if lang == "en":
        for key in SENTENCE_POOLS:
            sentence[key] = _pair(data.get(key), path, key)[idx]
        for key in TRIGGER_KINDS:
            triggers[key] = _pair((data.get("triggers") or {}).get(key), path, f"triggers.{key}")[idx]
        for key in VALUE_KINDS:
            values[key] = _pair((data.get("values") or {}).get(key), path, f"values.{key}")[idx]
        phrases, notes = {}, {}
        for s in catalog.steps.values():
            if s.domain == "core":
                phrases[s.name] = s.phrases_train if side == "train" else s.phrases_test
                notes[s.name] = s.notes_train if side == "train" else s.notes_test
            else:
                # Spokes carry one list; the training domain's is split, an OOD domain's is all test.
                tr, te = spoke_pools(catalog, s)
                phrases[s.name] = tr if side == "train" else te
                notes[s.name] = phrases[s.name]
        return Pools(lang, side, sentence, triggers, values, phrases, notes)

    def lst(v, key):
        if not isinstance(v, list) or not v:
            raise DataError("expected a non-empty list", file=path, field=key)
        return tuple(str(x) for x in v)

    for key in SENTENCE_POOLS:
        sentence[key] = lst(data.get(key), key)
    for key in TRIGGER_KINDS:
        triggers[key] = lst((data.get("triggers") or {}).get(key), f"triggers.{key}")
    for key in VALUE_KINDS:
        values[key] = lst((data.get("values") or {}).get(key), f"values.{key}")
    phrases, notes = {}, {}
    for name, v in (data.get("steps") or {}).items():
        phrases[name] = lst((v or {}).get("phrases"), f"steps.{name}.phrases")
        notes[name] = lst((v or {}).get("notes"), f"steps.{name}.notes")
    glossary = {str(k): str(v) for k, v in (data.get("glossary") or {}).items()}
    return Pools(lang, side, sentence, triggers, values, phrases, notes, glossary)


def spoke_pools(catalog: Catalog, spoke: Step) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if catalog.domains[spoke.domain].split == "train":
        return split_pool(f"spoke:{spoke.name}", spoke.phrases_train)
    return (), spoke.phrases_train


def alias_pool(catalog: Catalog, obj, side: str, key: str) -> tuple[str, ...]:
    """Aliases of a table or field usable on ``side``.

    Training-domain and shared objects are split; OOD-only objects use all their aliases for test.
    """
    domain = obj.domain if hasattr(obj, "domain") else catalog.tables[obj.table].domain
    in_training = domain == "shared" or catalog.domains[domain].split == "train"
    if not in_training:
        return obj.aliases if side == "test" else ()
    tr, te = split_pool(key, obj.aliases)
    return tr if side == "train" else te


# --------------------------------------------------------------------------------------------
# filling templates

_A_AN = re.compile(r"\b([Aa])n? (?=(\w))")


def fix_articles(text: str) -> str:
    """English a/an agreement after slot filling ("a incident" -> "an incident")."""

    def repl(m):
        nxt = m.group(2).lower()
        an = nxt in "aeiou" and not text[m.end():m.end() + 3].lower().startswith(("use", "uni", "one", "eur"))
        return m.group(1) + ("n " if an else " ")

    return _A_AN.sub(repl, text)


def fill(template: str, slots: dict[str, str]) -> str:
    """Fill ``{slot}`` markers; a missing slot is a bug in the caller, so it raises."""

    def repl(m):
        k = m.group(1)
        if k not in slots:
            raise KeyError(f"template {template!r} needs slot {k!r}")
        return slots[k]

    return SLOT_RE.sub(repl, template)


def slots_of(template: str) -> set[str]:
    return set(SLOT_RE.findall(template))


def choose(rng: random.Random, templates: tuple[str, ...], available: set[str], required: set[str] = frozenset()):
    """Pick a template whose slots are all available, using as many ``required`` slots as any can.

    Among the templates that fit, only those naming the most required slots are drawn from; a
    required slot no template of this pool offers is simply not named (the caller's trace of what
    the text names then leaves it out of the gold labels).
    """
    ok = [t for t in templates if slots_of(t) <= available]
    if not ok:
        return None
    if required:
        best = max(len(required & slots_of(t)) for t in ok)
        ok = [t for t in ok if len(required & slots_of(t)) == best]
    return rng.choice(ok)


def finish_sentence(text: str, lang: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"\s+([,;.])", r"\1", text)
    if lang == "en":
        text = fix_articles(text)
    if lang in ("ja",):
        text = text.rstrip("。") + "。"
    else:
        text = text.rstrip(".") + "."
    return text[:1].upper() + text[1:]
