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

# rule -> step -> objects the step always uses: ("table", name) or ("field", field name on its table)
STEP_RULES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "journal": {"add_comment": (("field", "comments"),), "add_work_note": (("field", "work_notes"),)},
    "knowledge": {step: (("table", "kb_knowledge"),)
                  for step in ("create_knowledge_article", "publish_knowledge_article", "retire_knowledge_article")},
}
STEP_OBJECTS = {step: objs for steps in STEP_RULES.values() for step, objs in steps.items()}
# steps whose table is fixed by what they do
FIXED_TABLE = {name: t for name, objs in STEP_OBJECTS.items() for kind, t in objs if kind == "table"}
# steps that get no drawn field values (their field is fixed by a rule above)
WITHOUT_VALUES = frozenset(name for name, objs in STEP_OBJECTS.items() if any(k == "field" for k, _ in objs))


def field_id(table, f) -> str:
    """The field corpus id of field ``f`` as seen from ``table`` (inherited fields live under it)."""
    if table is not None and any(x.name == f.name for x in table.fields):
        return f"{table.name}.{f.name}"
    return f"{f.table}.{f.name}"
