"""helpers.training.pairs: loading, capping, budgeting and mining training pairs."""

import json
from collections import Counter
from pathlib import Path

import pytest

from helpers.io import DataError
from helpers.training.config import TrainConfig
from helpers.training.pairs import (cap_indices, default_data_dir, downsample, frequency_summary, load_training_pairs,
                                    mine_bm25_negatives, run_budget, sample_budget)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "data" / "examples" / "train.jsonl"
CORPORA = REPO / "data" / "examples" / "beir"


def test_load_example_jsonl():
    ds = load_training_pairs(EXAMPLE)
    assert list(ds) == ["step", "table", "field"]
    assert {t: len(d) for t, d in ds.items()} == {"step": 57, "table": 55, "field": 56}
    assert ds["step"].column_names == ["anchor", "positive", "positive_id"]
    only = load_training_pairs([EXAMPLE], tasks=["table"])
    assert list(only) == ["table"]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"task": "step", "query": "q", "positive": "p"}\n{"task": "step", "query": "q2"\n')
    with pytest.raises(DataError) as e:
        load_training_pairs([f])
    assert e.value.line == 2 and str(f) in str(e.value) and ":2" in str(e.value)
    f.write_text('{"task": "step", "query": "q", "positive": "p"}\n\n{"task": "step", "query": "q"}\n')
    with pytest.raises(DataError) as e:
        load_training_pairs([f])
    assert e.value.line == 3 and e.value.field == "positive"


def test_unknown_task_in_jsonl_lists_valid_tasks(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"task": "step", "query": "q", "positive": "p"}\n{"task": "tabel", "query": "q", "positive": "p"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2 \(field 'task'\): unknown task 'tabel'; valid tasks: step, table, field"):
        load_training_pairs([f])
    f.write_text('{"task": "workflow", "query": "q", "positive": "p"}\n')
    with pytest.raises(DataError, match="evaluation-only"):
        load_training_pairs([f])
    with pytest.raises(Exception, match="valid tasks"):
        load_training_pairs([EXAMPLE], tasks=["steps"])


def test_load_saved_dataset_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"query": ["a", "b"], "positive": ["A", "B"], "query_id": ["q1", "q2"],
                       "positive_id": ["x", "y"], "flow_id": ["f", "f"]}).save_to_disk(str(tmp_path / "train" / "table"))
    ds = load_training_pairs(tmp_path, ["table"])
    assert ds["table"]["anchor"] == ["a", "b"] and ds["table"]["positive_id"] == ["x", "y"]
    with pytest.raises(DataError, match="no training data for task 'step'"):
        load_training_pairs(tmp_path, ["step"])


def test_run_budget_total_per_task_and_all():
    from helpers.profiles import get_profile

    cpu = get_profile("cpu")
    assert run_budget(TrainConfig.from_dict({"tasks": ["step", "table", "field"]}), cpu, 3) == cpu.train_pairs
    per_task = TrainConfig.from_yaml(REPO / "configs" / "multitask.yaml")
    assert run_budget(per_task, cpu, 3) == 3 * cpu.train_pairs
    ablation = TrainConfig.from_yaml(REPO / "configs" / "multitask_ablation.yaml")
    assert cpu.ablation_pairs < cpu.train_pairs
    assert run_budget(ablation, cpu, 3) == 3 * cpu.ablation_pairs
    assert run_budget(TrainConfig.from_yaml(REPO / "configs" / "multitask_same_budget.yaml"), cpu, 3) == cpu.train_pairs
    assert run_budget(TrainConfig.from_dict({"tasks": ["step"], "train_pairs": 100}), cpu, 1) == 100
    assert run_budget(TrainConfig.from_dict({"tasks": ["step"], "train_pairs": "all"}), cpu, 1) is None


def test_cap_indices_counts_and_determinism():
    ids = ["a"] * 50 + ["b"] * 3 + ["c"] * 20 + ["d"]
    keep = cap_indices(ids, 5, seed=1, task="step")
    kept = [ids[i] for i in keep]
    assert {k: kept.count(k) for k in "abcd"} == {"a": 5, "b": 3, "c": 5, "d": 1}
    assert keep == sorted(keep)
    assert keep == cap_indices(ids, 5, seed=1, task="step")            # same seed, same rows
    assert keep != cap_indices(ids, 5, seed=2, task="step")            # other seed, other rows
    assert cap_indices(ids, 100, seed=1) == list(range(len(ids)))       # cap above every count keeps all
    with pytest.raises(ValueError):
        cap_indices(ids, 0, seed=1)


def test_downsample_report_and_per_task_cap():
    ds = load_training_pairs(EXAMPLE)
    out, rep = downsample(ds, cap=2, seed=0, cap_per_task={"field": 3})
    assert rep["step"]["before"]["pairs"] == 57 and rep["step"]["before"]["max_per_object"] == 3
    assert rep["step"]["after"]["max_per_object"] == 2 and rep["step"]["after"]["objects"] == 34
    assert rep["field"]["cap"] == 3 and rep["field"]["after"]["max_per_object"] == 3
    assert rep["step"]["before"]["head"][0] == ["step:ad_add_to_group", 3]
    assert len(out["step"]) == rep["step"]["after"]["pairs"] < 57
    out2, _ = downsample(ds, cap=2, seed=0, cap_per_task={"field": 3})
    assert out2["table"]["anchor"] == out["table"]["anchor"]
    s = frequency_summary(["x", "x", "y"])
    assert s == {"pairs": 3, "objects": 2, "max_per_object": 2, "head": [["x", 2], ["y", 1]],
                 "head_share": 1.0, "tail_objects": 1}


def test_sample_budget_is_proportional_and_seeded():
    ds = load_training_pairs(EXAMPLE)
    out, counts = sample_budget(ds, 30, seed=3)
    assert counts == {"step": 10, "table": 10, "field": 10}
    again, _ = sample_budget(ds, 30, seed=3)
    assert again["step"]["anchor"] == out["step"]["anchor"]
    _, all_counts = sample_budget(ds, None, seed=3)
    assert sum(all_counts.values()) == 168


def test_bm25_negatives_exclude_known_positives():
    from datasets import Dataset

    ds = Dataset.from_dict({"anchor": ["email the manager", "email the manager", "create an incident record"],
                            "positive": ["send email to a user", "look up manager of user", "create record in table"],
                            "positive_id": ["a", "b", "c"]})
    mined, stats = mine_bm25_negatives(ds, num_negatives=1)
    assert stats["rows"] == 3
    for a, p, n in zip(mined["anchor"], mined["positive"], mined["negative"]):
        assert n != p
        if a == "email the manager":
            assert n == "create record in table"      # both positives of that query are excluded


def test_example_keeps_train_and_dev_phrasing_apart():
    """The example's dev queries share the team's jargon with the training pairs, never a phrasing:
    no 4-word sequence of a dev query occurs in a training query."""
    import re

    def grams(text):
        words = re.findall(r"\w+", text.split(" (table:")[0].lower())
        return {tuple(words[i:i + 4]) for i in range(len(words) - 3)}

    train_grams = set()
    for line in EXAMPLE.read_text().splitlines():
        train_grams |= grams(json.loads(line)["query"])
    for task in ("step", "table", "field"):
        for line in (CORPORA / task / "dev" / "queries.jsonl").read_text().splitlines():
            q = json.loads(line)["text"]
            assert not grams(q) & train_grams, q


def test_default_data_dir_is_where_make_data_and_the_notebooks_build(monkeypatch, tmp_path):
    from helpers.workspace import REPO, dataset_dir

    monkeypatch.setenv("CASE_STUDY_DATA", str(tmp_path))
    assert default_data_dir("cpu") == tmp_path / "cpu-seed0" == dataset_dir("cpu", 0)
    assert "--out data/generated/$(PROFILE)-seed0" in (REPO / "Makefile").read_text()
    for cfg in sorted((REPO / "configs").glob("*.yaml")):
        header = cfg.read_text().split("\n", 3)[:3]
        assert not any(line.rstrip().endswith("--data data/generated") for line in header), cfg


def test_sample_budget_keeps_the_uncapped_task_mix():
    ds = load_training_pairs(EXAMPLE)
    capped, _ = downsample(ds, 1, seed=3)                       # one pair per object: pools shrink unevenly
    sizes = {t: len(d) for t, d in ds.items()}
    _, shifted = sample_budget(capped, 90, seed=3)
    out, kept = sample_budget(capped, 90, seed=3, mix_sizes=sizes)
    assert kept == sample_budget(ds, 90, seed=3)[1] != shifted  # the mix of the uncapped run
    table = out["table"]["anchor"]
    assert len(capped["table"]) < kept["table"] and set(table) == set(capped["table"]["anchor"])   # repeated pool
    counts = Counter(table)
    assert max(counts.values()) - min(counts.values()) <= 1     # every pair as often as the others, give or take one
    again, _ = sample_budget(capped, 90, seed=3, mix_sizes=sizes)
    assert again["table"]["anchor"] == table


def test_task_mix_is_validated():
    from helpers.training.config import TrainConfig

    with pytest.raises(Exception, match="task_mix"):
        TrainConfig.from_dict({"name": "x", "task_mix": "sideways"})
