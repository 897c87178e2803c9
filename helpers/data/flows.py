"""The flow generator: the structure of workflows (trigger, steps, tables, fields), drawn from the catalog.

A flow is a trigger plus 2-12 steps built from *blocks* that real automations are made of
(update the triggering record, notify someone, get an approval and branch on it, create a
follow-up record, loop over looked-up records, call an integration spoke, wait, misc.). Within a
block the concrete step is drawn from every step of the right role by its catalog ``weight``, and
tables by a Zipf law over the order the catalog lists them in, so frequent patterns (look-up,
update, create, the main tables) really are frequent and the rest forms a long tail.

Structure is generated once per flow; text is rendered from it per language and side
(:mod:`helpers.data.render`), so the translated dev queries describe exactly the same flow as the
English ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from helpers.data.catalog import Catalog, Domain, Field, Step, Table
from helpers.data.rules import FIXED_TABLE, WITHOUT_VALUES

LITERAL_TYPES = {"choice", "boolean", "integer", "currency", "date", "datetime"}
PEOPLE = ["Maria Lopez", "Chen Wei", "Amara Okafor", "David Cohen", "Yuki Tanaka", "Lena Fischer",
          "Sofia Rossi", "Omar Haddad", "Priya Nair", "Lucas Martin"]
DAYS = [2, 3, 5, 7, 14, 30]  # no 1: "1 days" templates would be ungrammatical
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
            return self._approval_block(rng, ctx, T)
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
            return self._branch_block(rng, ctx, T)
        if kind == "spoke":
            out = [self._new(ctx, self._spoke(rng), table=T, values=self._fields(rng, T, rng.randint(0, 2), literal_first=False))]
            if rng.random() < 0.3:
                out.append(self._new(ctx, self._step(rng, "update"), table=T, values=self._fields(rng, T, 1)))
            return out
        if kind == "wait":
            return self._wait_block(rng, ctx, T)
        if kind == "misc":
            return self._misc_block(rng, ctx, T)
        raise ValueError(kind)

    def _approval_block(self, rng, ctx, T: Table) -> list[FlowStep]:
        """An approval, a branch on its outcome, sometimes an else."""
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

    def _branch_block(self, rng, ctx, T: Table) -> list[FlowStep]:
        """If (else if, else) on a condition of the record; an update where it has none."""
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

    def _wait_block(self, rng, ctx, T: Table) -> list[FlowStep]:
        """Wait for a condition or a duration, then act."""
        if rng.random() < 0.5:
            cond = self._cond(rng, T)
            w = self._new(ctx, self._step(rng, "wait_condition"), table=T, cond=cond) if cond else None
        else:
            w = None
        if w is None:
            w = self._new(ctx, self._step(rng, "wait_duration"), duration=rng.choice(DAYS))
        return [w] + self._action(rng, ctx, T)

    def _misc_block(self, rng, ctx, T: Table) -> list[FlowStep]:
        """An attachment, utility, integration, delete, create or update step."""
        role = rng.choices(["attachment", "utility", "integration", "delete", "create", "update"],
                           weights=[3, 4, 2, 1, 1, 1], k=1)[0]
        st = self._step(rng, role, exclude=("else", "else_if"))
        if role == "delete":
            return [self._new(ctx, st, table=T, cond=self._cond(rng, T))]
        if role in ("create", "update"):
            return [self._new(ctx, st, table=T, values=self._fields(rng, T, rng.randint(1, 2)))]
        return [self._new(ctx, st, table=T if role != "utility" or rng.random() < 0.5 else None)]

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
