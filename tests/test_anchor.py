"""helpers.training.anchor: the training flows' workflow texts with the workflow prompts, bad files in one line,
a seeded half-and-half sample per step, the drift measure."""

import json

import pytest
import torch

from helpers.io import DataError
from helpers.tasks import TASKS, task_prompts
from helpers.training.anchor import FLOWS_FILE, anchor_sample, drift, load_anchor_texts

PROMPTS = task_prompts({"query": "query: ", "document": "passage: "}, list(TASKS))


def _flows(folder, rows):
    path = folder / FLOWS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_anchor_texts_are_the_training_flows_with_the_workflow_prompts(tmp_path):
    _flows(tmp_path, [{"flow_id": f"f{i}", "requirement": f"req {i}", "yaml": f"name: {i}"} for i in range(3)])
    (tmp_path / "flows" / "dev.jsonl").write_text(json.dumps({"requirement": "dev req", "yaml": "dev"}) + "\n")
    a = load_anchor_texts(tmp_path, PROMPTS)
    assert a.requirements == ["req 0", "req 1", "req 2"] and a.documents == ["name: 0", "name: 1", "name: 2"]
    assert (a.query_prompt, a.document_prompt) == (PROMPTS["workflow_query"], PROMPTS["workflow_document"])
    assert a.query_prompt == "query: " + TASKS["workflow"].query_instruction and a.document_prompt == "passage: "


def test_a_missing_flows_file_or_field_fails_in_one_line_naming_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_anchor_texts(tmp_path, PROMPTS)
    assert str(tmp_path / FLOWS_FILE) in str(e.value) and "anchor_weight" in str(e.value) and "\n" not in str(e.value)
    path = _flows(tmp_path, [{"requirement": "r", "yaml": "y"}, {"requirement": "r2"}])
    with pytest.raises(DataError, match=fr"{path}:2 \(field 'yaml'\): missing required field"):
        load_anchor_texts(tmp_path, PROMPTS)
    _flows(tmp_path, [{"requirement": "", "yaml": "y"}])
    with pytest.raises(DataError, match=r":1 \(field 'requirement'\): empty value"):
        load_anchor_texts(tmp_path, PROMPTS)


def test_each_step_samples_half_requirements_half_yaml_seeded_by_the_step():
    q, d = anchor_sample(100, 7, seed=0, step=3)
    assert (len(q), len(d)) == (4, 3) and len(set(q)) == 4 and all(0 <= i < 100 for i in q + d)
    assert (q, d) == anchor_sample(100, 7, seed=0, step=3)
    assert (q, d) != anchor_sample(100, 7, seed=0, step=4) and (q, d) != anchor_sample(100, 7, seed=1, step=3)
    assert anchor_sample(3, 32, seed=0, step=0) == ([0, 1, 2], [0, 1, 2])   # never more than every flow


def test_drift_is_one_minus_cosine_and_ignores_the_norm():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert float(drift(a, a * 3)) == pytest.approx(0.0, abs=1e-7)
    assert float(drift(a, torch.tensor([[0.0, 1.0], [0.0, -1.0]]))) == pytest.approx((1 + 2) / 2)
