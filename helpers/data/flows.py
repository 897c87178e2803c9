"""The flow generator: workflows as YAML documents, their requirement and step annotations.

A flow is a trigger plus 2-12 steps built from *blocks* that real automations are made of
(update the triggering record, notify someone, get an approval and branch on it, create a
follow-up record, loop over looked-up records, call an integration spoke, wait, misc.). Within a
block the concrete step is drawn from every step of the right role by its catalog ``weight``, and
tables by a Zipf law over the order the catalog lists them in, so frequent patterns (look-up,
update, create, the main tables) really are frequent and the rest forms a long tail.

Structure is generated once per flow; text is rendered from it per language and side, so the
translated dev queries describe exactly the same flow as the English ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from helpers.data.catalog import Catalog, Domain, Field, Step, Table
from helpers.data.language import Pools, alias_pool, choose, fill, finish_sentence, slots_of
from helpers.data.rules import FIXED_TABLE, MANAGER_RULE, STEP_OBJECTS, WITHOUT_VALUES, field_id

LITERAL_TYPES = {"choice", "boolean", "integer", "currency", "date", "datetime"}
PEOPLE = ["Maria Lopez", "Chen Wei", "Amara Okafor", "David Cohen", "Yuki Tanaka", "Lena Fischer",
          "Sofia Rossi", "Omar Haddad", "Priya Nair", "Lucas Martin"]
DAYS = [2, 3, 5, 7, 14, 30]  # no 1: "1 days" templates would be ungrammatical
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
BLOCKS = {  # block kind -> weight
    "update_trigger": 20, "notify": 18, "approval": 12, "create_related": 14, "lookup_update": 8,
    "loop": 8, "branch": 10, "spoke": 12, "wait": 5, "misc": 6,
}


@dataclass
class Value:
    field: Field
    literal: str | None = None  # canonical literal (YAML); None for a data pill
    pill: str | None = None  # e.g. trigger.record.opened_by
    kind: str | None = None  # value pool kind for rendering (boolean_true, date, ...)
    n: int | None = None  # number of days, for dates


@dataclass
class Who:
    field: Field  # a reference to sys_user or sys_user_group on some table
    via_manager: bool = False


@dataclass
class FlowStep:
    sid: int
    step: Step
    table: Table | None = None
    values: list[Value] = field(default_factory=list)  # values set, or look-up conditions
    cond: Value | None = None
    who: Who | None = None
    duration: int | None = None
    children: list["FlowStep"] = field(default_factory=list)
    implicit: bool = False  # left out of the requirement (e.g. the look-up behind "the manager")

    @property
    def fields(self) -> list[Field]:
        """The gold fields of this step for the field task."""
        out = [v.field for v in self.values]
        if self.cond:
            out.append(self.cond.field)
        if self.who:
            out.append(self.who.field)
        seen, uniq = set(), []
        for f in out:
            if (f.table, f.name) not in seen:
                seen.add((f.table, f.name))
                uniq.append(f)
        return uniq

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class Trigger:
    kind: str
    table: Table | None
    cond: Value | None = None
    schedule: int | None = None


@dataclass
class Flow:
    flow_id: str
    domain: Domain
    name: str
    trigger: Trigger
    steps: list[FlowStep]

    def all_steps(self) -> list[FlowStep]:
        return [s for top in self.steps for s in top.walk()]

    def step_names(self) -> list[str]:
        return sorted({s.step.name for s in self.all_steps()})


# --------------------------------------------------------------------------------------------
# structure


class FlowGenerator:
    """Generates flows for one domain (one customer instance)."""

    def __init__(self, catalog: Catalog, domain: Domain):
        self.cat, self.domain = catalog, domain
        self.tables = catalog.tables_for(domain)
        self.table_names = {t.name for t in self.tables}
        self.task_tables = [t for t in domain.tables if t.is_a("task", catalog)] or domain.tables
        self.steps_by_role: dict[str, list[Step]] = {}
        for s in catalog.core_steps:
            self.steps_by_role.setdefault(s.role, []).append(s)
        self.spokes = list(domain.spokes)
        self.by_name = {s.name: s for s in catalog.core_steps}
        # Who references whom: used to pick related tables for look-ups and follow-ups.
        self.children_of: dict[str, list[Table]] = {}
        for t in self.tables:
            for f in t.fields:
                if f.reference and f.reference != t.name and f.name != "parent":
                    self.children_of.setdefault(f.reference, []).append(t)

    # -- sampling helpers ------------------------------------------------------------------
    @staticmethod
    def _zipf(rng: random.Random, items: list, s: float = 0.9):
        weights = [1.0 / (i + 1) ** s for i in range(len(items))]
        return rng.choices(items, weights=weights, k=1)[0]

    def _step(self, rng, role: str, exclude: tuple[str, ...] = ()) -> Step:
        cands = [s for s in self.steps_by_role.get(role, []) if s.name not in exclude]
        if not cands:
            raise ValueError(f"catalog has no core step with role {role!r}")
        return rng.choices(cands, weights=[s.weight for s in cands], k=1)[0]

    def _named(self, rng, name: str, role: str) -> Step:
        return self.by_name.get(name) or self._step(rng, role)

    def _value(self, rng, f: Field) -> Value | None:
        if f.type == "choice":
            return Value(f, literal=rng.choice(f.choices))
        if f.type == "boolean":
            b = rng.random() < 0.6
            return Value(f, literal="true" if b else "false", kind="boolean_true" if b else "boolean_false")
        if f.type in ("date", "datetime"):
            n = rng.choice(DAYS)
            return Value(f, literal=f"now + {n}d", kind="date", n=n)
        if f.type == "integer":
            return Value(f, literal=str(rng.choice([1, 2, 3, 5, 10, 30])), kind="integer")
        if f.type == "currency":
            return Value(f, literal=str(rng.choice([500, 1000, 2500, 5000, 10000])), kind="currency")
        if f.type == "reference" and f.reference == "sys_user":
            return Value(f, literal=rng.choice(PEOPLE))
        return None

    def _fields(self, rng, table: Table, n: int, literal_first: bool = True) -> list[Value]:
        """Pick ``n`` fields of ``table`` with values; the first one gets a literal if possible."""
        own = {f.name for f in table.own_fields}
        pool = [f for f in table.fields if f.type not in ("journal",) and f.name not in ("number",)]
        weights = [1.6 if f.name in own else 1.0 for f in pool]
        picked: list[Field] = []
        while pool and len(picked) < n:
            f = rng.choices(pool, weights=weights, k=1)[0]
            i = pool.index(f)
            pool.pop(i)
            weights.pop(i)
            picked.append(f)
        if literal_first:
            lit = [f for f in picked if self._value(random.Random(0), f) is not None]
            if not lit:
                cands = [f for f in table.fields if self._value(random.Random(0), f) is not None]
                if cands:
                    picked = [rng.choice(cands)] + picked[:-1] if picked else [rng.choice(cands)]
            else:
                picked.remove(lit[0])
                picked.insert(0, lit[0])
        out = []
        for f in picked:
            v = self._value(rng, f)
            out.append(v if v is not None else Value(f, pill=f"trigger.record.{f.name}"))
        return out

    def _cond(self, rng, table: Table) -> Value | None:
        cands = [f for f in table.fields if f.type in ("choice", "boolean") or
                 (f.type == "reference" and f.reference == "sys_user")]
        if not cands:
            return None
        own = {f.name for f in table.own_fields}
        f = rng.choices(cands, weights=[1.6 if c.name in own else 1.0 for c in cands], k=1)[0]
        return self._value(rng, f)

    def _who(self, rng, table: Table, group_ok: bool = True) -> Who | None:
        users = [f for f in table.fields if f.type == "reference" and f.reference == "sys_user"]
        groups = [f for f in table.fields if f.type == "reference" and f.reference == "sys_user_group"]
        if groups and group_ok and rng.random() < 0.25:
            return Who(rng.choice(groups))
        if not users:
            return None
        return Who(rng.choice(users), via_manager=rng.random() < 0.3)

    def _related(self, rng, table: Table) -> Table:
        refs = [self.cat.tables[f.reference] for f in table.fields
                if f.reference and f.reference in self.cat.tables and f.reference != table.name]
        return rng.choice(refs) if refs and rng.random() < 0.7 else self._zipf(rng, self.domain.tables)

    def _child_table(self, rng, table: Table) -> Table:
        kids = [t for t in self.children_of.get(table.name, []) if t.domain == self.domain.domain]
        return rng.choice(kids) if kids and rng.random() < 0.6 else self._zipf(rng, self.domain.tables)

    # -- blocks ------------------------------------------------------------------------------
    def _new(self, ctx, step: Step, **kw) -> FlowStep:
        ctx["sid"] += 1
        fixed = FIXED_TABLE.get(step.name)
        if fixed and fixed in self.table_names:
            # A knowledge step acts on the knowledge base, whatever record the flow started from.
            kw.update(table=self.cat.tables[fixed], values=[], cond=None)
        if step.name in WITHOUT_VALUES:
            # Journal steps write one journal field, fixed by the step (a declared rule), not drawn ones.
            kw["values"] = []
        return FlowStep(sid=ctx["sid"], step=step, **kw)

    def _notify(self, rng, ctx, table: Table) -> list[FlowStep]:
        who = self._who(rng, table)
        out = []
        if who is None:
            who_table = self.cat.tables["sys_user"]
            who = Who(who_table.field("manager"))
        if who.via_manager:
            users = self.cat.tables["sys_user"]
            # The manager is reached by a look-up of the user record; people rarely spell it out.
            out.append(self._new(ctx, self._named(rng, "look_up_record", "lookup"), table=users,
                                 values=[Value(users.field("manager"), pill=f"trigger.record.{who.field.name}")],
                                 implicit=rng.random() < 0.6))
        out.append(self._new(ctx, self._step(rng, "notify"), table=table, who=who))
        return out

    def _action(self, rng, ctx, table: Table) -> list[FlowStep]:
        """A short action used inside branches and loops."""
        r = rng.random()
        if r < 0.4:
            return [self._new(ctx, self._step(rng, "update"), table=table, values=self._fields(rng, table, rng.randint(1, 2)))]
        if r < 0.7:
            return self._notify(rng, ctx, table)
        if r < 0.85 and self.spokes:
            return [self._new(ctx, self._spoke(rng), table=table, values=self._fields(rng, table, 1, literal_first=False))]
        t2 = self._child_table(rng, table)
        return [self._new(ctx, self._step(rng, "create"), table=t2, values=self._fields(rng, t2, rng.randint(2, 3)))]

    def _spoke(self, rng) -> Step:
        return rng.choices(self.spokes, weights=[s.weight for s in self.spokes], k=1)[0]

    def _block(self, rng, ctx, kind: str, T: Table) -> list[FlowStep]:
        if kind == "update_trigger":
            return [self._new(ctx, self._step(rng, "update"), table=T, values=self._fields(rng, T, rng.randint(1, 3)))]
        if kind == "notify":
            return self._notify(rng, ctx, T)
        if kind == "approval":
            who = self._who(rng, T, group_ok=False) or Who(self.cat.tables["sys_user"].field("manager"))
            appr = self._new(ctx, self._step(rng, "approval"), table=T, who=who)
            approval_field = next((f for f in T.fields if f.name == "approval"), None)
            cond = (Value(approval_field, literal=_approved(approval_field)) if approval_field is not None
                    else self._cond(rng, T))
            branch = self._new(ctx, self._named(rng, "if", "branch"), cond=cond)
            branch.children = self._action(rng, ctx, T) + (self._action(rng, ctx, T) if rng.random() < 0.4 else [])
            out = [appr, branch]
            if rng.random() < 0.4:
                other = self._new(ctx, self._named(rng, "else", "branch"))
                other.children = self._action(rng, ctx, T)
                out.append(other)
            return out
        if kind == "create_related":
            t2 = self._child_table(rng, T)
            out = [self._new(ctx, self._step(rng, "create"), table=t2, values=self._fields(rng, t2, rng.randint(2, 4)))]
            if rng.random() < 0.35:
                out += self._notify(rng, ctx, t2)
            return out
        if kind == "lookup_update":
            t2 = self._related(rng, T)
            out = [self._new(ctx, self._step(rng, "lookup"), table=t2, values=self._fields(rng, t2, 1))]
            target = rng.choice([T, t2])  # drawn once: the updated table and its fields must agree
            out.append(self._new(ctx, self._step(rng, "update"), table=target,
                                 values=self._fields(rng, target, rng.randint(1, 2))))
            return out
        if kind == "loop":
            t2 = self._child_table(rng, T) if T is not None else self._zipf(rng, self.task_tables)
            many = self._new(ctx, self._step(rng, "lookup_many"), table=t2, values=self._fields(rng, t2, 1))
            loop = self._new(ctx, self._step(rng, "loop"), table=t2)
            loop.children = self._action(rng, ctx, t2) + (self._action(rng, ctx, t2) if rng.random() < 0.3 else [])
            return [many, loop]
        if kind == "branch":
            cond = self._cond(rng, T)
            if cond is None:
                return self._block(rng, ctx, "update_trigger", T)
            b = self._new(ctx, self._named(rng, "if", "branch"), cond=cond)
            b.children = self._action(rng, ctx, T)
            out = [b]
            if rng.random() < 0.2 and "else_if" in self.by_name:
                c2 = self._cond(rng, T)
                if c2 is not None:
                    e = self._new(ctx, self.by_name["else_if"], cond=c2)
                    e.children = self._action(rng, ctx, T)
                    out.append(e)
            if rng.random() < 0.3:
                e = self._new(ctx, self._named(rng, "else", "branch"))
                e.children = self._action(rng, ctx, T)
                out.append(e)
            return out
        if kind == "spoke":
            out = [self._new(ctx, self._spoke(rng), table=T, values=self._fields(rng, T, rng.randint(0, 2), literal_first=False))]
            if rng.random() < 0.3:
                out.append(self._new(ctx, self._step(rng, "update"), table=T, values=self._fields(rng, T, 1)))
            return out
        if kind == "wait":
            if rng.random() < 0.5:
                cond = self._cond(rng, T)
                w = self._new(ctx, self._step(rng, "wait_condition"), table=T, cond=cond) if cond else None
            else:
                w = None
            if w is None:
                w = self._new(ctx, self._step(rng, "wait_duration"), duration=rng.choice(DAYS))
            return [w] + self._action(rng, ctx, T)
        if kind == "misc":
            role = rng.choices(["attachment", "utility", "integration", "delete", "create", "update"],
                               weights=[3, 4, 2, 1, 1, 1], k=1)[0]
            st = self._step(rng, role, exclude=("else", "else_if"))
            if role == "delete":
                return [self._new(ctx, st, table=T, cond=self._cond(rng, T))]
            if role in ("create", "update"):
                return [self._new(ctx, st, table=T, values=self._fields(rng, T, rng.randint(1, 2)))]
            return [self._new(ctx, st, table=T if role != "utility" or rng.random() < 0.5 else None)]
        raise ValueError(kind)

    def generate(self, flow_id: str, rng: random.Random) -> Flow:
        """Generate one flow; re-draws until it has 2-12 steps."""
        for _ in range(50):
            ctx = {"sid": 0}
            kind = rng.choices(["record_created", "record_updated", "scheduled", "inbound_email", "service_catalog"],
                               weights=[40, 25, 13, 10, 12], k=1)[0]
            if kind == "service_catalog" and "sc_req_item" in self.cat.tables:
                T = self.cat.tables["sc_req_item"] if rng.random() < 0.5 else self._zipf(rng, self.task_tables)
            else:
                T = self._zipf(rng, self.task_tables)
            trig = Trigger(kind=kind, table=T if kind != "scheduled" else None)
            if kind == "record_updated":
                trig.cond = self._cond(rng, T)
                if trig.cond is None:
                    trig.kind = "record_created"
            if kind == "scheduled":
                trig.schedule = rng.choice(DAYS)
            blocks = ["loop"] if kind == "scheduled" else []
            n_blocks = rng.choices([1, 2, 3, 4], weights=[25, 40, 25, 10], k=1)[0]
            kinds, weights = list(BLOCKS), list(BLOCKS.values())
            while len(blocks) < n_blocks:
                b = rng.choices(kinds, weights=weights, k=1)[0]
                if b == "approval" and "approval" in blocks:
                    continue
                blocks.append(b)
            steps: list[FlowStep] = []
            for b in blocks:
                steps += self._block(rng, ctx, b, T)
            n = sum(1 for s in steps for _ in s.walk())
            if 2 <= n <= 12:
                name = _flow_name(rng, trig, steps)
                return Flow(flow_id, self.domain, name, trig, steps)
        raise RuntimeError(f"could not generate a flow of 2-12 steps for {flow_id}")


def _approved(f: Field) -> str:
    for c in f.choices:
        if c.lower().startswith("approv"):
            return c
    return f.choices[0] if f.choices else "approved"


def _flow_name(rng, trig: Trigger, steps: list[FlowStep]) -> str:
    subject = trig.table.label if trig.table is not None else steps[0].table.label if steps[0].table else "Scheduled"
    main = next((s for s in steps if s.step.role not in ("lookup", "branch")), steps[0])
    return f"{subject}: {main.step.label.lower()}" + (" and more" if len(steps) > 2 else "")


# --------------------------------------------------------------------------------------------
# text


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
