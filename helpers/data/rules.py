"""Declared labelling rules: the only gold labels a query may hold without naming them.

A gold label must be earned by its query's words. The generator makes gold of exactly the objects
a text names (by label, id, alias or paraphrase) plus the objects below, each reached
deterministically from fixed words, so a model can learn them:

``manager``
    "the caller's manager" (any ``manager_recipients`` phrasing) goes through the user record:
    table ``sys_user``, field ``sys_user.manager``, and the ``look_up_record`` step that reads it.
``journal``
    a public-comment step ("respond publicly") writes the table's ``comments`` field; a work-note
    step ("document in internal journal") writes ``work_notes``.
``knowledge``
    the knowledge-article steps ("turn the resolution into self-help content") act on
    ``kb_knowledge``.

:mod:`helpers.data.audit` checks a built dataset against the same rules, from the text alone.
"""

from __future__ import annotations

MANAGER_RULE = frozenset({("table", "sys_user"), ("field", "sys_user.manager"), ("step", "look_up_record")})

# step -> objects it always uses: ("table", name) or ("field", field name on the step's table)
STEP_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "add_comment": (("field", "comments"),),
    "add_work_note": (("field", "work_notes"),),
    "create_knowledge_article": (("table", "kb_knowledge"),),
    "publish_knowledge_article": (("table", "kb_knowledge"),),
    "retire_knowledge_article": (("table", "kb_knowledge"),),
}
# steps whose table is fixed by what they do
FIXED_TABLE = {name: t for name, objs in STEP_RULES.items() for kind, t in objs if kind == "table"}
# steps that get no drawn field values (their field is fixed by a rule above)
WITHOUT_VALUES = frozenset(name for name, objs in STEP_RULES.items() if any(k == "field" for k, _ in objs))

RULES = {
    "manager": "a manager_recipients phrasing covers sys_user, sys_user.manager and look_up_record",
    "journal": "add_comment phrasings cover <table>.comments; add_work_note phrasings cover <table>.work_notes",
    "knowledge": "create/publish/retire_knowledge_article phrasings cover kb_knowledge",
}


def field_id(catalog, table, f) -> str:
    """The field corpus id of field ``f`` as seen from ``table`` (inherited fields live under it)."""
    if table is not None and any(x.name == f.name for x in table.fields):
        return f"{table.name}.{f.name}"
    return f"{f.table}.{f.name}"
