"""Load and check the hand-curated catalog under ``data/catalog/`` (see ``SCHEMA.md`` there).

The catalog holds the platform objects of every business domain: shared tables, core steps with
their English phrase pools, and per-domain tables (with fields) and integration spokes.
:func:`load_catalog` validates every entry and raises :class:`helpers.io.DataError` naming the
file, the entry and the field at fault, so a malformed catalog never builds a dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers.io import DataError
from helpers.splits import OOD_SPLITS
from helpers.workspace import REPO

CATALOG_DIR = REPO / "data" / "catalog"

FIELD_TYPES = {"string", "text", "journal", "integer", "decimal", "currency", "boolean", "date",
               "datetime", "duration", "choice", "reference", "email", "phone", "url"}
ROLES = {"lookup", "lookup_many", "create", "update", "delete", "approval", "wait_condition",
         "wait_duration", "notify", "branch", "loop", "attachment", "utility", "integration"}
# Slots each role can fill; a phrase using any other slot is a catalog error.
ROLE_SLOTS = {
    "lookup": {"table", "fields", "value"},
    "lookup_many": {"table", "fields", "value"},
    "create": {"table", "fields", "value"},
    "update": {"table", "fields", "value"},
    "delete": {"table", "cond"},
    "approval": {"table", "who"},
    "wait_condition": {"table", "cond"},
    "wait_duration": {"duration"},
    "notify": {"who", "table"},
    "branch": {"cond"},
    "loop": {"table"},
    "attachment": {"table"},
    "utility": {"table"},
    "integration": {"table"},
}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SLOT_RE = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str
    description: str
    aliases: tuple[str, ...]
    table: str  # the table that declares it
    reference: str | None = None
    choices: tuple[str, ...] = ()


@dataclass
class Table:
    name: str
    label: str
    description: str
    aliases: tuple[str, ...]
    domain: str  # "shared" for platform tables
    extends: str | None = None
    own_fields: list[Field] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)  # resolved: inherited first, then own

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def is_a(self, base: str, catalog: "Catalog") -> bool:
        t: Table | None = self
        while t is not None:
            if t.name == base:
                return True
            t = catalog.tables.get(t.extends) if t.extends else None
        return False


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    role: str
    description: str
    inputs: tuple[str, ...]
    weight: float
    phrases_train: tuple[str, ...]
    phrases_test: tuple[str, ...]
    notes_train: tuple[str, ...] = ()
    notes_test: tuple[str, ...] = ()
    category: str = "action"
    domain: str = "core"  # "core" or the domain that owns the spoke
    system: str | None = None


@dataclass
class Domain:
    domain: str
    name: str
    split: str
    description: str
    people: tuple[str, ...]
    tables: list[Table]
    spokes: list[Step]
    file: str


@dataclass
class Catalog:
    shared: list[Table]
    core_steps: list[Step]
    domains: dict[str, Domain]
    tables: dict[str, Table]
    steps: dict[str, Step]
    root: Path

    def domain_for_split(self, split: str) -> Domain:
        base = split.split("-")[0]
        if base == "dev" or base == "train":
            base = "train"
        for d in self.domains.values():
            if d.split == base:
                return d
        raise KeyError(f"no domain for split {split!r}")

    def tables_for(self, domain: Domain) -> list[Table]:
        """The tables one customer instance of ``domain`` holds: its own plus the shared ones."""
        return list(domain.tables) + list(self.shared)

    def steps_for(self, domain: Domain) -> list[Step]:
        """The steps one customer instance of ``domain`` holds: the core steps plus its spokes."""
        return list(self.core_steps) + list(domain.spokes)


# --------------------------------------------------------------------------------------------
# parsing with precise errors


class _Ctx:
    """Where we are in the catalog, for error messages."""

    def __init__(self, file: Path, entry: str | None = None):
        self.file, self.entry = file, entry

    def err(self, msg: str, fld: str | None = None) -> DataError:
        where = f"entry '{self.entry}': " if self.entry else ""
        return DataError(where + msg, file=self.file, field=fld)


def _req(d: dict, key: str, ctx: _Ctx, typ=str):
    if not isinstance(d, dict):
        raise ctx.err(f"expected a mapping, got {type(d).__name__}")
    if key not in d or d[key] is None or (isinstance(d[key], str) and not d[key].strip()):
        raise ctx.err("missing or empty", key)
    v = d[key]
    if typ is str and not isinstance(v, str):
        raise ctx.err(f"expected text, got {type(v).__name__}", key)
    if typ is list and not isinstance(v, list):
        raise ctx.err(f"expected a list, got {type(v).__name__}", key)
    return v


def _str_list(d: dict, key: str, ctx: _Ctx, min_len: int = 0, required: bool = True) -> tuple[str, ...]:
    if key not in d and not required:
        return ()
    v = _req(d, key, ctx, list) if (required or key in d) else []
    out = []
    for i, s in enumerate(v):
        if not isinstance(s, str) or not s.strip():
            raise ctx.err(f"item {i} must be non-empty text", key)
        out.append(" ".join(s.split()))
    if len(out) < min_len:
        raise ctx.err(f"needs at least {min_len} items, has {len(out)}", key)
    if len(set(o.lower() for o in out)) != len(out):
        dup = sorted({o for o in out if [x.lower() for x in out].count(o.lower()) > 1})
        raise ctx.err(f"duplicate items {dup}", key)
    return tuple(out)


def _load_yaml(path: Path) -> dict:
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 at byte {e.start}", file=path) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(f"invalid YAML: {getattr(e, 'problem', e)}", file=path,
                        line=(mark.line + 1) if mark else None) from None
    if not isinstance(data, dict):
        raise DataError("expected a YAML mapping at top level", file=path)
    return data


def _named(d: dict, ctx: _Ctx, kind: str, prefix: str = "") -> str:
    """Read an entry's ``name``, point ``ctx`` at it for later errors, and check it is snake_case."""
    name = _req(d, "name", ctx)
    ctx.entry = f"{kind} {prefix}{name}"
    if not NAME_RE.match(name):
        raise ctx.err(f"name {name!r} must be snake_case ASCII", "name")
    return name


def _parse_table(d: dict, domain: str, path: Path, i: int) -> Table:
    ctx = _Ctx(path, f"tables[{i}]")
    name = _named(d, ctx, "table")
    t = Table(name=name, label=_req(d, "label", ctx), description=_req(d, "description", ctx),
              aliases=_str_list(d, "aliases", ctx, min_len=1), domain=domain, extends=d.get("extends"))
    seen = set()
    for j, fd in enumerate(_req(d, "fields", ctx, list)):
        fctx = _Ctx(path, f"table {name}, fields[{j}]")
        fname = _named(fd, fctx, "field", prefix=f"{name}.")
        if fname in seen:
            raise fctx.err("declared twice on the same table", "name")
        seen.add(fname)
        ftype = _req(fd, "type", fctx)
        if ftype not in FIELD_TYPES:
            raise fctx.err(f"unknown type {ftype!r}; valid: {', '.join(sorted(FIELD_TYPES))}", "type")
        ref = fd.get("reference")
        if ftype == "reference" and not ref:
            raise fctx.err("a reference field needs 'reference: <table>'", "reference")
        choices = ()
        if ftype == "choice":
            choices = tuple(str(c) for c in _req(fd, "choices", fctx, list))
            if len(choices) < 2:
                raise fctx.err("a choice field needs at least 2 choices", "choices")
        t.own_fields.append(Field(name=fname, label=str(_req(fd, "label", fctx)), type=ftype,
                                  description=_req(fd, "description", fctx),
                                  aliases=_str_list(fd, "aliases", fctx, min_len=1), table=name,
                                  reference=ref, choices=choices))
    return t


def _check_slots(templates: tuple[str, ...], allowed: set[str], ctx: _Ctx, key: str):
    for s in templates:
        for slot in SLOT_RE.findall(s):
            if slot not in allowed:
                raise ctx.err(f"phrase {s!r} uses slot {{{slot}}}, not available here "
                              f"(allowed: {', '.join(sorted(allowed)) or 'none'})", key)


def _pool(d: dict, key: str, ctx: _Ctx, min_train=1, min_test=1) -> tuple[tuple[str, ...], tuple[str, ...]]:
    v = _req(d, key, ctx, dict) if key in d else None
    if not isinstance(v, dict):
        raise ctx.err("expected a mapping with 'train' and 'test' lists", key)
    sub = _Ctx(ctx.file, ctx.entry)
    train = _str_list(v, "train", sub, min_len=min_train)
    test = _str_list(v, "test", sub, min_len=min_test)
    clash = {s.lower() for s in train} & {s.lower() for s in test}
    if clash:
        raise ctx.err(f"train and test pools share {sorted(clash)}", key)
    return train, test


def _parse_core_step(d: dict, path: Path, i: int) -> Step:
    ctx = _Ctx(path, f"steps[{i}]")
    name = _named(d, ctx, "step")
    role = _req(d, "role", ctx)
    if role not in ROLES:
        raise ctx.err(f"unknown role {role!r}; valid: {', '.join(sorted(ROLES))}", "role")
    ptr, pte = _pool(d, "phrases", ctx)
    ntr, nte = _pool(d, "notes", ctx)
    for pool, key in ((ptr + pte, "phrases"), (ntr + nte, "notes")):
        _check_slots(pool, ROLE_SLOTS[role], ctx, key)
    return Step(name=name, label=_req(d, "label", ctx), role=role, description=_req(d, "description", ctx),
                inputs=_str_list(d, "inputs", ctx, required=False), weight=float(d.get("weight", 1)),
                phrases_train=ptr, phrases_test=pte, notes_train=ntr, notes_test=nte,
                category=d.get("category", "action"))


def _parse_spoke(d: dict, domain: str, path: Path, i: int) -> Step:
    ctx = _Ctx(path, f"spokes[{i}]")
    name = _named(d, ctx, "spoke")
    phrases = _str_list(d, "phrases", ctx, min_len=2)
    _check_slots(phrases, ROLE_SLOTS["integration"], ctx, "phrases")
    # Spoke phrases are split into train/test pools later (see helpers.data.language).
    return Step(name=name, label=_req(d, "label", ctx), role="integration",
                description=_req(d, "description", ctx), inputs=_str_list(d, "inputs", ctx, required=False),
                weight=float(d.get("weight", 2)), phrases_train=phrases, phrases_test=(),
                category="spoke", domain=domain, system=str(_req(d, "system", ctx)))


def _resolve_fields(tables: dict[str, Table], files: dict[str, Path]):
    """Resolve inheritance: a child's field list is its parent's (recursively) plus its own."""
    done: dict[str, list[Field]] = {}

    def resolve(name: str, stack: tuple[str, ...]) -> list[Field]:
        if name in done:
            return done[name]
        t = tables[name]
        if name in stack:
            raise DataError(f"table {name}: inheritance cycle {' -> '.join(stack + (name,))}",
                            file=files[name], field="extends")
        inherited: list[Field] = []
        if t.extends:
            if t.extends not in tables:
                raise DataError(f"entry 'table {name}': extends unknown table {t.extends!r}",
                                file=files[name], field="extends")
            inherited = resolve(t.extends, stack + (name,))
        own = {f.name: f for f in t.own_fields}
        # An own field with an inherited name overrides it in place (more specific description).
        merged = [own.pop(f.name) if f.name in own else f for f in inherited] + [
            f for f in t.own_fields if f.name in own]
        done[name] = merged
        return merged

    for name in tables:
        tables[name].fields = resolve(name, ())


def _load_domain(path: Path, add_table, add_step) -> Domain:
    """One ``domains/<name>.yaml``: its tables and spokes registered through ``add_table`` / ``add_step``."""
    data = _load_yaml(path)
    ctx = _Ctx(path)
    dname = _req(data, "domain", ctx)
    if dname != path.stem:
        raise ctx.err(f"domain {dname!r} must match the file name {path.stem!r}", "domain")
    split = _req(data, "split", ctx)
    if split != "train" and split not in OOD_SPLITS:
        raise ctx.err(f"split {split!r} must be 'train' or one of ood01..ood10", "split")
    dtables = [_parse_table(d, dname, path, i) for i, d in enumerate(_req(data, "tables", ctx, list))]
    for t in dtables:
        add_table(t, path)
    spokes = [_parse_spoke(d, dname, path, i) for i, d in enumerate(data.get("spokes") or [])]
    for s in spokes:
        add_step(s, path)
    return Domain(domain=dname, name=_req(data, "name", ctx), split=split,
                  description=_req(data, "description", ctx),
                  people=_str_list(data, "people", ctx, required=False),
                  tables=dtables, spokes=spokes, file=str(path))


def _check_references(tables: dict[str, Table], files: dict[str, Path]) -> None:
    """References and ``extends`` must point at a table the same instance holds: shared or same domain."""
    for t in tables.values():
        for f in t.own_fields:
            if f.reference:
                target = tables.get(f.reference)
                if target is None or target.domain not in ("shared", t.domain):
                    raise DataError(f"entry 'field {t.name}.{f.name}': reference to unknown table "
                                    f"{f.reference!r} (must be shared or in domain {t.domain})",
                                    file=files[t.name], field="reference")
        if t.extends and tables[t.extends].domain not in ("shared", t.domain):
            raise DataError(f"entry 'table {t.name}': extends {t.extends!r} from another domain",
                            file=files[t.name], field="extends")


def load_catalog(root: str | Path | None = None) -> Catalog:
    """Load, validate and resolve the catalog in ``root`` (default: the repository's ``data/catalog``)."""
    root = Path(root) if root else CATALOG_DIR
    shared_path, core_path = root / "shared.yaml", root / "core_steps.yaml"
    for p in (shared_path, core_path):
        if not p.is_file():
            raise DataError("catalog file not found", file=p)
    tables: dict[str, Table] = {}
    files: dict[str, Path] = {}
    steps: dict[str, Step] = {}
    step_files: dict[str, Path] = {}

    def register(kind: str, obj, registry: dict, where: dict, path: Path):
        """Names are unique across the whole catalog: one instance never holds two objects of a name."""
        if obj.name in registry:
            raise DataError(f"entry '{kind} {obj.name}': defined twice (also in {where[obj.name]})",
                            file=path, field="name")
        registry[obj.name], where[obj.name] = obj, path

    def add_table(t: Table, path: Path):
        register("table", t, tables, files, path)

    def add_step(s: Step, path: Path):
        register("step", s, steps, step_files, path)

    sdata = _load_yaml(shared_path)
    shared = [_parse_table(d, "shared", shared_path, i) for i, d in enumerate(_req(sdata, "tables", _Ctx(shared_path), list))]
    for t in shared:
        add_table(t, shared_path)

    cdata = _load_yaml(core_path)
    core = [_parse_core_step(d, core_path, i) for i, d in enumerate(_req(cdata, "steps", _Ctx(core_path), list))]

    for s in core:
        add_step(s, core_path)

    domains: dict[str, Domain] = {}
    for path in sorted((root / "domains").glob("*.yaml")):
        d = _load_domain(path, add_table, add_step)
        domains[d.domain] = d
    used = {}
    for d in domains.values():
        if d.split in used:
            raise DataError(f"split {d.split} is used by both {used[d.split]} and {d.domain}",
                            file=d.file, field="split")
        used[d.split] = d.domain

    _resolve_fields(tables, files)
    _check_references(tables, files)
    return Catalog(shared=shared, core_steps=core, domains=domains, tables=tables, steps=steps, root=root)


def catalog_stats(cat: Catalog) -> dict:
    """Counts per domain, for the data card and ``check-catalog``."""
    out = {"core_steps": len(cat.core_steps), "shared_tables": len(cat.shared), "domains": {}}
    for d in cat.domains.values():
        nf = [len(t.fields) for t in d.tables]
        out["domains"][d.domain] = {
            "split": d.split, "tables": len(d.tables), "spokes": len(d.spokes),
            "fields": sum(nf), "fields_per_table": round(sum(nf) / max(1, len(nf)), 1),
            "task_tables": sum(t.is_a("task", cat) for t in d.tables),
            "systems": len({s.system for s in d.spokes}),
        }
    out["steps_total"] = len(cat.steps)
    return out
