"""Text from flow structure: requirements and step annotations in one language, with the objects they name.

A :class:`Renderer` turns a flow of :mod:`helpers.data.flows` into the words of a query, per language
(:mod:`helpers.data.language` pools) and side (train or test phrasings), and says which objects those
words name: the builder's gold labels.
"""

from __future__ import annotations

from helpers.data.catalog import Catalog
from helpers.data.flows import Flow, FlowStep, Value, Who
from helpers.data.language import Pools, alias_pool, choose, fill, finish_sentence, slots_of
from helpers.data.rules import MANAGER_RULE, STEP_OBJECTS, field_id

# How often a request names an object by its UI label rather than an alias: people say a table's
# name ("incident", "change request") often, a field's label ("Assignment group") rarely.
LABEL_RATE = {"table": 0.5, "field": 0.1}
# How often a text prefers a phrasing that names each object a step uses (per slot). Whatever is
# named becomes gold; what is not named is not (see helpers.data.rules for the declared exceptions).
# Notes are what a flow author writes to explain a step, so they name its fields whenever a phrasing
# can; requirements describe intent and leave more implicit.
NAME_RATE = {
    "note": {"table": 0.85, "fields": 1.0, "cond": 1.0, "who": 1.0},
    "clause": {"table": 0.85, "fields": 0.7, "cond": 1.0, "who": 1.0},
}


class Renderer:
    """Renders requirements and annotations of flows in one language and one side's phrasing.

    Every ``render_*`` method returns the text and the set of objects it names, as
    ``("table", name)``, ``("field", "table.field")`` or ``("step", name)``, plus objects the text
    reaches through a declared rule (:mod:`helpers.data.rules`). The builder makes gold labels of
    exactly these, so a label is always earned by the words of its query.
    """

    def __init__(self, catalog: Catalog, pools: Pools):
        self.cat, self.p = catalog, pools

    def _alias(self, rng, obj, kind: str) -> str:
        key = f"{kind}:{obj.name}" if kind == "table" else f"field:{obj.table}.{obj.name}"
        pool = alias_pool(self.cat, obj, self.p.side, key)
        if not pool or rng.random() < LABEL_RATE[kind]:
            # The label is the object's name in the UI, not a phrasing: both sides may use it.
            return self.p.term(obj.label.lower()) if self.p.lang == "en" else self.p.term(rng.choice(pool or (obj.label.lower(),)))
        return self.p.term(rng.choice(pool))

    def _value(self, rng, v: Value) -> str:
        if v.kind in ("boolean_true", "boolean_false"):
            return rng.choice(self.p.values[v.kind])
        if v.kind == "date":
            return fill(rng.choice(self.p.values["date"]), {"n": str(v.n)}) if "{n}" in "".join(self.p.values["date"]) else rng.choice(self.p.values["date"])
        if v.kind in ("integer", "currency"):
            t = rng.choice(self.p.values[v.kind])
            return fill(t, {"n": v.literal}) if "{n}" in t else v.literal
        if v.literal is not None:
            return v.literal
        return self._alias(rng, v.field, "field")

    def _cond(self, rng, v: Value) -> str:
        t = choose(rng, self.p.sentence["conditions"], {"fields", "value"})
        return fill(t, {"fields": self._alias(rng, v.field, "field"), "value": self._value(rng, v)})

    def _who(self, rng, who: Who) -> str:
        key = "manager_recipients" if who.via_manager else (
            "group_recipients" if who.field.reference == "sys_user_group" else "recipients")
        t = rng.choice(self.p.sentence[key])
        return fill(t, {"fields": self._alias(rng, who.field, "field")})

    def _slots(self, rng, s: FlowStep, max_fields: int) -> tuple[dict[str, str], dict[str, set]]:
        """Slot texts, and for each slot the objects its text names."""
        slots: dict[str, str] = {}
        names: dict[str, set] = {}
        T = s.table
        if T is not None:
            slots["table"] = self._alias(rng, T, "table")
            names["table"] = {("table", T.name)}
        vals = [v for v in s.values]
        if vals:
            shown = vals[:max_fields]
            slots["fields"] = self._join([self._alias(rng, v.field, "field") for v in shown])
            names["fields"] = {("field", field_id(T, v.field)) for v in shown}
            if vals[0].literal is not None or vals[0].kind:
                slots["value"] = self._value(rng, vals[0])
                names["value"] = set()
        if s.cond is not None:
            slots["cond"] = self._cond(rng, s.cond)
            names["cond"] = {("field", field_id(T, s.cond.field))}
        if s.who is not None:
            slots["who"] = self._who(rng, s.who)
            names["who"] = {("field", field_id(T, s.who.field))}
            if s.who.via_manager:
                names["who"] |= MANAGER_RULE
        if s.duration is not None:
            slots["duration"] = rng.choice(self.p.sentence["durations"])
        return slots, names

    def _join(self, items: list[str]) -> str:
        if len(items) == 1:
            return items[0]
        conj = {"en": " and ", "de": " und ", "es": " y ", "fr": " et ", "ja": "と", "he": " ו"}[self.p.lang]
        sep = "、" if self.p.lang == "ja" else ", "
        return sep.join(items[:-1]) + conj + items[-1]

    def _clause(self, rng, s: FlowStep, templates: tuple[str, ...], max_fields: int, kind: str) -> tuple[str, set]:
        slots, names = self._slots(rng, s, max_fields)
        if "value" in slots and len(s.values) > 1 and rng.random() < 0.7:
            # A template like "set the {fields} to {value}" would give one value to every field.
            slots.pop("value")
        rates = NAME_RATE[kind]
        required = {k for k in slots if k in rates and rng.random() < rates[k]}
        t = choose(rng, templates, set(slots), required)
        if t is None:
            raise ValueError(f"no {self.p.lang}/{self.p.side} phrase of step {s.step.name} fits slots {sorted(slots)}")
        named = set().union(*(names.get(k, set()) for k in slots_of(t)))
        named |= _step_rule_objects(self.cat, s)
        return fill(t, slots), named

    def render_annotation(self, rng, s: FlowStep) -> tuple[str, set]:
        """The short note a flow author writes next to a step (the field and table queries)."""
        notes = self.p.step_notes.get(s.step.name)
        if not notes:
            raise ValueError(f"no {self.p.lang}/{self.p.side} notes for step {s.step.name}")
        text, named = self._clause(rng, s, notes, max_fields=3, kind="note")
        return " ".join(text.split()), named

    def annotation(self, rng, s: FlowStep) -> str:
        return self.render_annotation(rng, s)[0]

    def render_requirement(self, rng, flow: Flow) -> tuple[str, set]:
        """What a person asks for: trigger clause, then the steps in order, some left implicit.

        Named objects include a ``("step", name)`` for every step whose phrase is in the text.
        """
        p = self.p
        trig = flow.trigger
        tslots, named = {}, set()
        if trig.table is not None:
            tslots["table"] = self._alias(rng, trig.table, "table")
        if trig.cond is not None:
            tslots["cond"] = self._cond(rng, trig.cond)
        if trig.schedule is not None:
            tslots["schedule"] = rng.choice(p.sentence["schedules"])
        t = choose(rng, p.triggers[trig.kind], set(tslots), set(tslots) & {"cond", "table"})
        if t is None:
            raise ValueError(f"no {p.lang}/{p.side} trigger phrase for {trig.kind} with slots {sorted(tslots)}")
        if "table" in slots_of(t):
            named.add(("table", trig.table.name))
        parts = [fill(t, tslots)]
        for s in flow.steps:
            parts += self._clauses(rng, s, named)
        opener = rng.choice(p.sentence["openers"])
        comma, space = ("、", "") if p.lang == "ja" else (", ", " ")
        body = parts[0] + comma + self._join_clauses(rng, parts[1:]) if len(parts) > 1 else parts[0]
        text = (opener.rstrip() + space + body) if opener else body
        return finish_sentence(text, p.lang), named

    def requirement(self, rng, flow: Flow) -> str:
        return self.render_requirement(rng, flow)[0]

    def _clauses(self, rng, s: FlowStep, named: set) -> list[str]:
        if s.implicit:
            return []
        phrases = self.p.step_phrases.get(s.step.name)
        if not phrases:
            raise ValueError(f"no {self.p.lang}/{self.p.side} phrases for step {s.step.name}")
        own, own_named = self._clause(rng, s, phrases, max_fields=2, kind="clause")
        named |= own_named | {("step", s.step.name)}
        if not s.children:
            return [own]
        inner = []
        for c in s.children:
            inner += self._clauses(rng, c, named)
        if not inner:
            return [own]
        sep = "、" if self.p.lang == "ja" else ", "
        return [own + sep + self._join_clauses(rng, inner, nested=True)]

    def _join_clauses(self, rng, clauses: list[str], nested: bool = False) -> str:
        if not clauses:
            return ""
        out = clauses[0]
        for i, c in enumerate(clauses[1:], start=1):
            last = i == len(clauses) - 1
            pool = self.p.sentence["last_connectors" if last and not nested else "connectors"]
            conn = rng.choice(pool)
            conn = conn.strip()
            if conn[:1] in (",", ";", "、", "，"):
                out = out + conn + ("" if self.p.lang == "ja" else " ") + c
            else:
                out = out + " " + conn + " " + c
        return out


def _step_rule_objects(catalog: Catalog, s: FlowStep) -> set:
    """Objects a step's words reach by a declared rule (e.g. "respond publicly" writes comments)."""
    out = set()
    for kind, name in STEP_OBJECTS.get(s.step.name, ()):
        if kind == "table" and s.table is not None and s.table.name == name:
            out.add(("table", name))
        elif kind == "field" and s.table is not None and any(f.name == name for f in s.table.fields):
            out.add(("field", f"{s.table.name}.{name}"))
    return out
