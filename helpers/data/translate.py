"""What a translator must cover, and a completeness check for a translated language file.

The translated dev splits (``dev-de`` ... ``dev-he``) are rendered from the same flow structures as
English ``dev``, with per-language phrase pools and a glossary for the objects' names
(``data/language/<lang>.yaml``). Only *test*-side English phrasing needs translating, since
translations are evaluation-only. ``python -m helpers.data export-strings --lang de`` prints the
English strings to cover; :func:`missing_strings` lists what a language file still lacks.
"""

from __future__ import annotations

from helpers.data.catalog import Catalog, load_catalog
from helpers.data.language import (SENTENCE_POOLS, TRIGGER_KINDS, VALUE_KINDS, alias_pool, load_pools,
                                   spoke_pools)


def _dev_objects(cat: Catalog):
    dom = cat.domain_for_split("dev")
    tables = cat.tables_for(dom)
    return dom, tables


def glossary_terms(cat: Catalog) -> list[str]:
    """English names of dev objects that can appear in dev queries (test aliases and labels)."""
    _, tables = _dev_objects(cat)
    terms: set[str] = set()
    for t in tables:
        terms.update(alias_pool(cat, t, "test", f"table:{t.name}"))
        terms.add(t.label.lower())
        for f in t.fields:
            terms.update(alias_pool(cat, f, "test", f"field:{f.table}.{f.name}"))
            terms.add(f.label.lower())
    return sorted(terms)


def export_strings(lang: str, cat: Catalog | None = None) -> dict:
    """A skeleton of ``data/language/<lang>.yaml`` holding the English strings to translate."""
    cat = cat or load_catalog()
    en = load_pools(cat, "en", "test")
    dom, _ = _dev_objects(cat)
    steps = {}
    for s in cat.core_steps:
        steps[s.name] = {"phrases": list(en.step_phrases[s.name]), "notes": list(en.step_notes[s.name])}
    for s in dom.spokes:
        te = list(spoke_pools(cat, s)[1])
        steps[s.name] = {"phrases": te, "notes": te}
    return {
        "language": lang,
        **{k: list(en.sentence[k]) for k in SENTENCE_POOLS},
        "triggers": {k: list(en.triggers[k]) for k in TRIGGER_KINDS},
        "values": {k: list(en.values[k]) for k in VALUE_KINDS},
        "steps": steps,
        "glossary": {t: "" for t in glossary_terms(cat)},
    }


def missing_strings(lang: str, cat: Catalog | None = None) -> list[str]:
    """What ``data/language/<lang>.yaml`` lacks for the dev split to render (empty when complete)."""
    cat = cat or load_catalog()
    pools = load_pools(cat, lang, "test")
    dom, _ = _dev_objects(cat)
    out = []
    for s in list(cat.core_steps) + list(dom.spokes):
        if not pools.step_phrases.get(s.name):
            out.append(f"steps.{s.name}.phrases")
        if not pools.step_notes.get(s.name):
            out.append(f"steps.{s.name}.notes")
    out += [f"glossary[{t!r}]" for t in glossary_terms(cat) if not pools.glossary.get(t)]
    return out


def check_language(lang: str, n_flows: int = 200, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Coverage check, then render ``n_flows`` dev flows in ``lang`` (raises on any unfillable template).

    Returns (missing strings, samples) where each sample is [English requirement, translated
    requirement, one translated annotation].
    """
    import random

    from helpers.data.build import generate_flows
    from helpers.data.render import Renderer
    from helpers.data.language import stable_hash

    cat = load_catalog()
    missing = missing_strings(lang, cat)
    if missing:
        return missing, []
    en = Renderer(cat, load_pools(cat, "en", "test"))
    xx = Renderer(cat, load_pools(cat, lang, "test"))
    samples = []
    for fl in generate_flows(cat, "dev", n_flows, seed):
        rng = random.Random(stable_hash(str(seed), fl.flow_id))
        steps = [s for s in fl.all_steps() if s.table is not None or s.fields]
        notes = [xx.annotation(rng, s) for s in steps]
        samples.append([en.requirement(rng, fl), xx.requirement(rng, fl), notes[0] if notes else ""])
    return [], samples
