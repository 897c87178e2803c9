"""The task registry: prompts built on the base model's prefixes, metrics, unknown-task errors."""

import pytest

from helpers.tasks import (TASKS, TRAIN_TASKS, UnknownTaskError, base_prefixes, get_task, metric_table,
                           prompt_key, task_prompts, validate_tasks)

E5 = {"query": "query: ", "document": "passage: "}


def test_registry_and_metrics():
    assert list(TASKS) == ["step", "table", "field", "workflow"]
    assert TRAIN_TASKS == ("step", "table", "field")
    assert [TASKS[t].label for t in TASKS] == ["Step@15", "Table@5", "Field@5", "Workflow@5"]
    assert TASKS["step"].metric_key == "recall@15"
    assert not TASKS["workflow"].trainable
    assert metric_table()["table"] == {"label": "Table@5", "metric": "recall", "k": 5, "trainable": True}
    for t in TASKS.values():
        assert t.query_instruction.endswith(": ") and t.doc_instruction.endswith(": ")


def test_task_prompts_on_e5_prefixes():
    p = task_prompts(E5, ["step", "table"], query_side=True, doc_side=False)
    assert p["query"] == "query: " and p["document"] == "passage: "
    assert p["step_query"] == "query: " + TASKS["step"].query_instruction
    assert p["step_document"] == "passage: "
    assert p["table_query"].startswith("query: Given a request")
    assert "field_query" not in p
    both = task_prompts(E5, ["field"], query_side=True, doc_side=True)
    assert both["field_document"] == "passage: " + TASKS["field"].doc_instruction
    bare = task_prompts(E5, ["field"], query_side=False, doc_side=False)
    assert bare["field_query"] == "query: " and bare["field_document"] == "passage: "


def test_task_prompts_without_base_prefixes():
    p = task_prompts({"query": "", "document": ""}, None)
    assert set(p) == {"query", "document"} | {prompt_key(t, s) for t in TASKS for s in ("query", "document")}
    assert p["workflow_query"] == TASKS["workflow"].query_instruction
    assert p["step_document"] == ""
    assert task_prompts(None, ["step"])["step_query"] == TASKS["step"].query_instruction
    assert base_prefixes({"query": "q: ", "passage": "p: "}) == ("q: ", "p: ")


def test_task_prompts_replace_old_task_entries():
    old = dict(E5, step_query="query: OLD ")
    assert task_prompts(old, ["step"])["step_query"] == "query: " + TASKS["step"].query_instruction


def test_unknown_task_lists_valid_ones():
    with pytest.raises(UnknownTaskError, match=r"unknown task 'steps'; valid tasks: step, table, field, workflow"):
        get_task("steps")
    with pytest.raises(UnknownTaskError, match="valid tasks"):
        task_prompts(E5, ["step", "tables"])
    with pytest.raises(UnknownTaskError, match="evaluation-only.*trainable tasks: step, table, field"):
        validate_tasks(["workflow"], trainable=True)
    assert validate_tasks("step, table,step") == ["step", "table"]
    assert validate_tasks(None, trainable=True) == ["step", "table", "field"]
    with pytest.raises(ValueError):
        prompt_key("step", "passage")
