"""The retrieval task registry, in one place.

Four tasks: ``step``, ``table`` and ``field`` are trained and evaluated; ``workflow`` (retrieve a whole
workflow from its description) is evaluation-only, as in the paper (Table 6: a task never seen in training).

Each task carries an LLM-Embedder-style instruction for the query side and one for the document side,
and the metric the paper reports for it (recall at k: Step@15, Table@5, Field@5, Workflow@5).

Prompt convention (shared with ``helpers.retrieval``): a model's per-task prompts live in
``model.prompts`` under ``"<task>_query"`` and ``"<task>_document"``. They are built *on top of* the base
model's own prefixes, so for multilingual-e5 (``{"query": "query: ", "document": "passage: "}``) the step query
prompt is ``"query: Given a request for an enterprise workflow, retrieve the flow steps it needs: "``. With
``query_side=False`` / ``doc_side=False`` the task prompt is just the base prefix, so every model always has
both keys for every task and evaluation code never needs a special case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping


class UnknownTaskError(ValueError):
    """A task name that is not in :data:`TASKS` (or not trainable where training was asked for)."""


@dataclass(frozen=True)
class Task:
    name: str
    query_instruction: str
    doc_instruction: str
    metric: str          # "recall": share of gold objects in the top k, averaged over queries
    k: int
    trainable: bool
    description: str

    @property
    def label(self) -> str:
        """The paper's column name, e.g. ``Step@15``."""
        return f"{self.name.capitalize()}@{self.k}"

    @property
    def metric_key(self) -> str:
        """Key of the headline metric in metric dicts, e.g. ``recall@15``."""
        return f"{self.metric}@{self.k}"

    @property
    def query_prompt_name(self) -> str:
        return prompt_key(self.name, "query")

    @property
    def document_prompt_name(self) -> str:
        return prompt_key(self.name, "document")


TASKS: dict[str, Task] = {
    "step": Task(
        "step",
        query_instruction="Given a request for an enterprise workflow, retrieve the flow steps it needs: ",
        doc_instruction="Represent this flow step for retrieval: ",
        metric="recall", k=15, trainable=True,
        description="workflow steps (actions, subflows, spoke actions) a requirement needs",
    ),
    "table": Task(
        "table",
        query_instruction="Given a request for an enterprise workflow, retrieve the database tables it uses: ",
        doc_instruction="Represent this database table for retrieval: ",
        metric="recall", k=5, trainable=True,
        description="database tables a workflow step reads or writes",
    ),
    "field": Task(
        "field",
        query_instruction="Given a step of an enterprise workflow, retrieve the table fields it sets or reads: ",
        doc_instruction="Represent this table field for retrieval: ",
        metric="recall", k=5, trainable=True,
        description="table fields a workflow step sets or reads",
    ),
    "workflow": Task(
        "workflow",
        query_instruction="Given a description of an enterprise workflow, retrieve the workflow that implements it: ",
        doc_instruction="Represent this workflow for retrieval: ",
        metric="recall", k=5, trainable=False,
        description="whole workflows (YAML) from their text description; evaluation only",
    ),
}

TRAIN_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if t.trainable)
EVAL_TASKS: tuple[str, ...] = tuple(TASKS)

# Base-model prompt names, in order of preference (sentence-transformers' own conventions).
_BASE_QUERY_KEYS = ("query",)
_BASE_DOC_KEYS = ("document", "passage", "corpus")


def prompt_key(task: str, side: str) -> str:
    """``prompt_key("step", "query") -> "step_query"``; side is ``query`` or ``document``."""
    if side not in ("query", "document"):
        raise ValueError(f"side must be 'query' or 'document', got {side!r}")
    return f"{task}_{side}"


def _unknown(name, valid: Iterable[str], what: str = "task") -> UnknownTaskError:
    return UnknownTaskError(f"unknown {what} {name!r}; valid tasks: {', '.join(valid)}")


def get_task(name: str, *, trainable: bool = False) -> Task:
    """Return the :class:`Task` called ``name``; ``trainable=True`` also rejects eval-only tasks."""
    if not isinstance(name, str) or name not in TASKS:
        raise _unknown(name, TASKS)
    task = TASKS[name]
    if trainable and not task.trainable:
        raise UnknownTaskError(
            f"task {name!r} is evaluation-only and cannot be trained; trainable tasks: {', '.join(TRAIN_TASKS)}")
    return task


def validate_tasks(names: Iterable[str] | str | None, *, trainable: bool = False) -> list[str]:
    """Check a list of task names (or one comma-separated string); ``None`` means all (trainable) tasks.

    Keeps the given order, drops repeats, and raises :class:`UnknownTaskError` listing valid tasks.
    """
    if names is None:
        return list(TRAIN_TASKS if trainable else EVAL_TASKS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for n in names:
        get_task(n, trainable=trainable)
        if n not in out:
            out.append(n)
    if not out:
        raise UnknownTaskError(f"no task given; valid tasks: {', '.join(TRAIN_TASKS if trainable else TASKS)}")
    return out


def base_prefixes(base_prompts: Mapping[str, str] | None) -> tuple[str, str]:
    """The base model's own (query prefix, document prefix), ``""`` where it has none."""
    base_prompts = dict(base_prompts or {})
    q = next((base_prompts[k] for k in _BASE_QUERY_KEYS if base_prompts.get(k)), "")
    d = next((base_prompts[k] for k in _BASE_DOC_KEYS if base_prompts.get(k)), "")
    return q or "", d or ""


def task_prompts(base_prompts: Mapping[str, str] | None, tasks: Iterable[str] | None = None,
                 query_side: bool = True, doc_side: bool = False) -> dict[str, str]:
    """Build a model's prompt table: the base prompts plus ``"<task>_query"``/``"<task>_document"`` per task.

    ``base_prompts`` is the base model's ``model.prompts`` (e.g. ``{"query": "query: ", "document": "passage: "}``
    for multilingual-e5, empty strings for all-MiniLM). The task instruction is appended after the base prefix:
    ``"query: " + instruction``. Sides that are switched off get the bare base prefix, so the keys always exist.
    Earlier ``"<task>_*"`` entries in ``base_prompts`` are replaced (a fine-tuned model re-trained keeps one
    consistent set). ``tasks=None`` means every task in :data:`TASKS`.
    """
    tasks = validate_tasks(tasks)
    q_prefix, d_prefix = base_prefixes(base_prompts)
    prompts = dict(base_prompts or {})
    for name in tasks:
        task = TASKS[name]
        prompts[task.query_prompt_name] = q_prefix + (task.query_instruction if query_side else "")
        prompts[task.document_prompt_name] = d_prefix + (task.doc_instruction if doc_side else "")
    return prompts


def metric_table() -> dict[str, dict]:
    """``{task: {"label": "Step@15", "metric": "recall", "k": 15, "trainable": True}}`` for reports."""
    return {n: {"label": t.label, "metric": t.metric, "k": t.k, "trainable": t.trainable}
            for n, t in TASKS.items()}


__all__ = ["Task", "TASKS", "TRAIN_TASKS", "EVAL_TASKS", "UnknownTaskError", "get_task", "validate_tasks",
           "prompt_key", "base_prefixes", "task_prompts", "metric_table"]
