"""helpers.train: data loading, downsampling, mixing, and (slow) real smoke training on the example data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.io import DataError
from tests.fixtures import make_clone, readme_command, run_readme_command
from helpers.tasks import TASKS
from helpers.train import (TaskMixingBatchSampler, TrainConfig, cap_indices, downsample, frequency_summary,
                           load_training_pairs, mine_bm25_negatives, sample_budget, temperature_weights)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "data" / "examples" / "train.jsonl"
CORPORA = REPO / "data" / "examples" / "beir"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# ---------------------------------------------------------------------------------------------- data

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


def test_config_errors(tmp_path):
    with pytest.raises(DataError, match="unknown config key"):
        TrainConfig.from_dict({"taks": ["step"]})
    with pytest.raises(DataError, match="valid tasks"):
        TrainConfig.from_dict({"tasks": ["stepp"]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [step]\nmixing: random\n")
    with pytest.raises(DataError, match="mixing must be one of"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(DataError, match="budget_per_task must be true or false") as e:
        TrainConfig.from_dict({"tasks": ["step"], "budget_per_task": "yes"}, source="c.yaml")
    assert "c.yaml" in str(e.value)


def test_run_budget_total_per_task_and_all():
    from helpers.profiles import get_profile
    from helpers.train import run_budget

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


def test_all_configs_parse():
    names = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert {"single_step", "single_table", "single_field", "multitask", "multitask_downsampled",
            "multitask_cap5", "multitask_cap20", "multitask_cap50", "example"} <= names
    for p in (REPO / "configs").glob("*.yaml"):
        cfg = TrainConfig.from_yaml(p)
        assert cfg.name == p.stem
    assert TrainConfig.from_yaml(REPO / "configs" / "multitask_downsampled.yaml").cap_per_positive == 20


def test_configs_are_a_base_plus_deltas():
    """Every study config but the base and the user example extends another and restates none of its keys."""
    import yaml

    for p in (REPO / "configs").glob("*.yaml"):
        if p.stem in ("multitask", "example"):
            continue
        own = yaml.safe_load(p.read_text())
        assert "extends" in own, p.name
        parent = yaml.safe_load((REPO / "configs" / f"{own['extends']}.yaml").read_text())
        same = {k for k, v in own.items() if k not in ("name", "description") and parent.get(k) == v}
        assert not same, f"{p.name} restates {same}"
        assert "seed" not in own, f"{p.name}: the seed comes from the caller"
    doc = TrainConfig.from_yaml(REPO / "configs" / "multitask_doc_instructions.yaml")
    assert (doc.doc_instructions, doc.cap_per_positive, doc.train_pairs, doc.tasks) == \
        (True, 20, "ablation", ["step", "table", "field"])
    assert TrainConfig.from_yaml(REPO / "configs" / "single_step.yaml").tasks == ["step"]


def test_extends_errors_name_the_file_that_set_the_value(tmp_path):
    (tmp_path / "base.yaml").write_text("tasks: [step]\nlearning_rate: fast\n")
    (tmp_path / "child.yaml").write_text("extends: base\nepochs: 1\n")
    with pytest.raises(DataError) as e:
        TrainConfig.from_yaml(tmp_path / "child.yaml")
    assert "base.yaml:2" in str(e.value) and "learning_rate" in str(e.value)
    (tmp_path / "good.yaml").write_text("tasks: [step]\n")
    (tmp_path / "bad.yaml").write_text("extends: good\nepochs: zero\n")
    with pytest.raises(DataError, match=r"bad.yaml:2"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    with pytest.raises(DataError, match="loops back"):
        TrainConfig.from_yaml(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nowhere\n")
    with pytest.raises(DataError, match="nowhere.yaml"):
        TrainConfig.from_yaml(tmp_path / "orphan.yaml")


# ---------------------------------------------------------------------------------------------- downsampling

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


# ---------------------------------------------------------------------------------------------- mixing

def test_temperature_weights():
    w = temperature_weights([100, 400, 1600], 1.0)
    assert np.allclose(w, [100 / 2100, 400 / 2100, 1600 / 2100])
    w2 = temperature_weights([100, 400, 1600], 2.0)
    assert np.allclose(w2, np.array([10, 20, 40]) / 70)
    assert np.allclose(temperature_weights([100, 400, 1600], 1e9), [1 / 3] * 3, atol=1e-6)
    assert temperature_weights([0, 10], 2.0)[0] == 0
    with pytest.raises(ValueError):
        temperature_weights([1, 2], 0)


def _mixing_sampler(mode, sizes=(64, 16, 8), batch=4, group=1, T=2.0):
    import torch
    from datasets import Dataset
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
    from torch.utils.data import ConcatDataset

    sets = [Dataset.from_dict({"anchor": [f"{k}-q{i}" for i in range(n)], "positive": [f"{k}-d{i}" for i in range(n)]})
            for k, n in enumerate(sizes)]
    gen = torch.Generator()          # shared, as the trainer does; each child reseeds it with seed + epoch
    samplers = [NoDuplicatesBatchSampler(d, batch_size=batch, drop_last=True, generator=gen, seed=0) for d in sets]
    return TaskMixingBatchSampler(ConcatDataset(sets), samplers, generator=gen, seed=0, temperature=T, mode=mode,
                                  group_size=group)


@pytest.mark.parametrize("mode", ["temperature", "proportional", "round_robin"])
def test_mixing_sampler_batches_are_homogeneous(mode):
    s = _mixing_sampler(mode)
    batches = list(s)
    assert len(batches) == len(s)
    bounds = [0, 64, 80, 88]
    for b in batches:
        task = [i for i in range(3) if bounds[i] <= b[0] < bounds[i + 1]][0]
        assert all(bounds[task] <= j < bounds[task + 1] for j in b)
    assert batches == list(_mixing_sampler(mode))       # seeded


def test_temperature_sampler_follows_weights_and_groups():
    s = _mixing_sampler("temperature", sizes=(400, 100, 100), batch=2, T=1e6)   # ~uniform over tasks
    plan = s._plan()
    share = np.bincount(plan, minlength=3) / len(plan)
    assert np.allclose(share, [1 / 3] * 3, atol=0.08)
    g = _mixing_sampler("proportional", group=2)
    batches = list(g)
    for i in range(0, len(batches), 2):        # both processes of a step get the same task
        assert (batches[i][0] < 64) == (batches[i + 1][0] < 64)
    assert len(batches) % 2 == 0


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


# ---------------------------------------------------------------------------------------------- training (slow)

def _smoke_cfg(**kw):
    cfg = {"name": "t", "base_model": "minilm-l6", "train_pairs": "all", "batch_size": 8, "max_steps": 4,
           "save_steps": 1000, "eval_steps": 0, "seed": 7}
    cfg.update(kw)
    return cfg


@pytest.mark.slow
def test_smoke_training_writes_model_log_and_card(tmp_path):
    from sentence_transformers import SentenceTransformer

    from helpers.train import train

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = train(_smoke_cfg(cap_per_positive=2), profile="smoke", out_dir=tmp_path / "run",
                train_jsonl=[EXAMPLE], corpora=CORPORA, show_progress=False)
    model_dir = res.model_path
    assert model_dir == tmp_path / "run" / "model" and (model_dir / "README.md").is_file()
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["training"]["global_step"] == 4 and len(log["training"]["loss_curve"]) == 4
    assert log["data"]["downsampling"]["step"]["after"]["max_per_object"] == 2
    assert sum(log["training"]["steps_per_task"].values()) == 4
    assert log["training"]["pairs_seen"] > 0 and log["training"]["pairs_per_second"] > 0
    assert set(log["eval"]["final"]["dev"]) == {"step", "table", "field"}
    assert 0 <= log["eval"]["final"]["dev"]["step"]["recall@15"] <= 1
    card = (model_dir / "README.md").read_text()
    assert "step_query" in card and "Training data" in card and "Evaluation" in card
    assert (tmp_path / "run" / "eval_report.json").is_file()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".model")]   # no temp dir left

    m = SentenceTransformer(str(model_dir), device="cpu")
    for t in TASKS:
        assert f"{t}_query" in m.prompts and f"{t}_document" in m.prompts
    assert m.prompts["step_query"] == TASKS["step"].query_instruction       # minilm has no base prefix
    # trained at the fitted length, saved with the base's inference length (minilm-l6: 256), so long
    # documents are encoded as the base encodes them, not cut at the training length
    assert log["resolved"]["max_seq_length"] <= 64 and log["data"]["seq_len"]["fitted"] <= 64
    assert m.max_seq_length == log["resolved"]["inference_max_seq_length"] == 256
    assert "trained at max_seq_length" in card and "saved with 256" in card


@pytest.mark.slow
def test_learning_curve_top_layers_and_per_task_length(tmp_path):
    from helpers.train import train

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = train(_smoke_cfg(curve_steps=[0, 2, 4], curve_queries=5, train_top_layers=2, max_seq_length=48),
                profile="smoke", out_dir=tmp_path / "run", train_jsonl=[EXAMPLE], corpora=CORPORA,
                show_progress=False)
    tr, seq = res.log["training"], res.log["data"]["seq_len"]
    # the curve: the base at step 0, then the requested steps, each with the dev sample of every task
    assert [p["step"] for p in tr["learning_curve"]] == [0, 2, 4]
    assert all(set(p["dev"]) == {"step", "table", "field"} for p in tr["learning_curve"])
    assert all(0 <= v <= 1 for p in tr["learning_curve"] for v in p["dev"].values())
    secs = [p["train_seconds"] for p in tr["learning_curve"]]
    assert secs[0] < 1 and secs == sorted(secs)       # evaluation time is not counted as training time
    # top 2 of minilm's 6 layers: embeddings and the 4 lower layers get no gradient
    assert tr["trainable_params"] < res.log["resolved"]["params"] / 3
    # each task cut at its own length: a batch's padded length never exceeds its task's
    lens = seq["per_task"]
    assert set(lens) == {"step", "table", "field"} and max(lens.values()) <= 48
    assert res.log["resolved"]["max_seq_length"] == max(lens.values())
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["training"]["learning_curve"] == tr["learning_curve"]


def test_task_length_collator_cuts_each_task_at_its_length():
    from helpers.models import load_encoder
    from helpers.train import _trainer_classes

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = load_encoder("minilm-l6")
    collator_cls = _trainer_classes()[0].data_collator_class
    collator = collator_cls(preprocess_fn=model.preprocess)
    collator.task_lengths = {"step": 8, "field": 24}
    long = " ".join(["requirement"] * 60)
    for task, n in (("step", 8), ("field", 24)):
        batch = collator([{"anchor": long, "positive": long, "dataset_name": task}] * 2)
        assert batch["anchor_input_ids"].shape[1] == n and batch["positive_input_ids"].shape[1] == n


@pytest.mark.slow
def test_resume_after_kill_continues_from_checkpoint(tmp_path):
    from helpers.train import SimulatedKill, stop_at_step_callback, train

    out = tmp_path / "run"
    cfg = _smoke_cfg(max_steps=6, save_steps=2, mixing="temperature")
    with pytest.raises(SimulatedKill):
        train(cfg, profile="smoke", out_dir=out, train_jsonl=[EXAMPLE], show_progress=False, evaluate=False,
              callbacks=[stop_at_step_callback(5)])
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    assert not (out / "model").exists() and not (out / "train_log.json").exists()
    res = train(cfg, profile="smoke", out_dir=out, train_jsonl=[EXAMPLE], show_progress=False, evaluate=False,
                resume=True)
    tr = res.log["training"]
    assert tr["resumed_from_step"] == 4 and tr["global_step"] == 6 and tr["steps_this_run"] == 2
    assert [p["step"] for p in tr["loss_curve"]] == [1, 2, 3, 4, 5, 6]
    assert (out / "model" / "README.md").is_file()

    # the summary covers the whole run, exactly as an uninterrupted run reports it
    whole = train(cfg, profile="smoke", out_dir=tmp_path / "uninterrupted", train_jsonl=[EXAMPLE],
                  show_progress=False, evaluate=False).log["training"]
    for key in ("pairs_seen", "tokens_seen", "padded_tokens", "steps_per_task", "task_per_step", "train_loss",
                "global_step"):
        assert tr[key] == whole[key], key
    assert tr["counts_cover_whole_run"] and len(tr["task_per_step"]) == 6 and tr["pairs_seen_this_run"] < tr["pairs_seen"]
    a = (out / "model" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "uninterrupted" / "model" / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_failed_run_leaves_no_empty_folders(tmp_path):
    """A run that fails before its first checkpoint leaves no empty checkpoints/ (nor the folder it made)."""
    from helpers.train import SimulatedKill, stop_at_step_callback, train

    out = tmp_path / "run"
    with pytest.raises(SimulatedKill):
        train(_smoke_cfg(save_steps=1000), profile="smoke", out_dir=out, train_jsonl=[EXAMPLE], show_progress=False,
              evaluate=False, callbacks=[stop_at_step_callback(1)])
    assert not out.exists()


def test_cli_bad_task_lists_the_valid_ones(tmp_path):
    r = subprocess.run([sys.executable, "-m", "helpers.train", "--config", str(REPO / "configs" / "example.yaml"),
                        "--tasks", "step,tabel", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "valid tasks: step, table, field" in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_readme_example_shows_fine_tuning_helps(tmp_path):
    """The README's bring-your-own-data command, as written (smoke: minilm-l6): the base encoder misses
    some of the example's dev queries and fine-tuning on its 168 pairs recovers most of them."""
    clone = make_clone(tmp_path / "clone")
    command = readme_command("python -m helpers.train --config configs/example.yaml")
    r = run_readme_command(command, clone, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Step@15" in r.stdout
    out = clone / "runs" / "example"
    report = json.loads((out / "eval_report.json").read_text())
    base = {t: m[m["headline"]] for t, m in report["base"]["dev"].items()}
    tuned = {t: m[m["headline"]] for t, m in report["fine-tuned"]["dev"].items()}
    assert set(base) == set(tuned) == {"step", "table", "field"}
    assert all(v < 1.0 for v in base.values()), base
    assert all(tuned[t] >= base[t] for t in base), (base, tuned)
    gain = sum(tuned.values()) / 3 - sum(base.values()) / 3
    assert gain >= 0.1, (base, tuned)
    assert (out / "model" / "config_sentence_transformers.json").is_file()


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


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path):
    """The README's torchrun command, as written: two CPU processes, homogeneous task batches."""
    clone = make_clone(tmp_path / "clone")
    command = readme_command("torchrun ")
    r = run_readme_command(command, clone, timeout=600, OMP_NUM_THREADS="1")
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    out = clone / "runs" / "example-ddp"
    log = json.loads((out / "train_log.json").read_text())
    assert log["training"]["world_size"] == 2 and log["training"]["global_step"] == 3
    assert log["resolved"]["per_device_batch_size"] == 4
    other = json.loads((out / "train_log.rank1.json").read_text())
    assert other["task_per_step"] == log["training"]["task_per_step"]      # same task on both processes
    assert (out / "model" / "modules.json").is_file()


def test_default_data_dir_is_where_make_data_and_the_notebooks_build(monkeypatch, tmp_path):
    from helpers.train import default_data_dir
    from helpers.workspace import REPO, dataset_dir

    monkeypatch.setenv("CASE_STUDY_DATA", str(tmp_path))
    assert default_data_dir("cpu") == tmp_path / "cpu-seed0" == dataset_dir("cpu", 0)
    assert "--out data/generated/$(PROFILE)-seed0" in (REPO / "Makefile").read_text()
    for cfg in sorted((REPO / "configs").glob("*.yaml")):
        header = cfg.read_text().split("\n", 3)[:3]
        assert not any(line.rstrip().endswith("--data data/generated") for line in header), cfg
