"""helpers.training.trainer: (slow) real smoke training on the example data, resume, DDP, the README example."""

import json
import os
from pathlib import Path

import pytest

from helpers.tasks import TASKS
from helpers.training.callbacks import SimulatedKill, stop_at_step_callback
from helpers.training.trainer import train
from tests.fixtures import make_clone, readme_command, run_readme_command

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "data" / "examples" / "train.jsonl"
CORPORA = REPO / "data" / "examples" / "beir"


def _smoke_cfg(**kw):
    cfg = {"name": "t", "base_model": "minilm-l6", "train_pairs": "all", "batch_size": 8, "max_steps": 4,
           "save_steps": 1000, "eval_steps": 0, "seed": 7}
    cfg.update(kw)
    return cfg


@pytest.mark.slow
def test_smoke_training_writes_model_log_and_card(tmp_path):
    from sentence_transformers import SentenceTransformer


    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = train(_smoke_cfg(cap_per_positive=2), profile="smoke", out_dir=tmp_path / "run",
                train_jsonl=[EXAMPLE], corpora=CORPORA, show_progress=False)
    model_dir = res.model_path
    assert model_dir == tmp_path / "run" / "model" and (model_dir / "README.md").is_file()
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["training"]["global_step"] == 4 and len(log["training"]["loss_curve"]) == 4
    assert log["data"]["downsampling"]["step"]["after"]["max_per_object"] == 2
    assert sum(log["training"]["steps_per_task"].values()) == 4
    assert log["training"]["pairs_seen"] == 4 * 8 and log["training"]["pairs_per_second"] > 0   # every batch full
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
def test_resume_after_kill_continues_from_checkpoint(tmp_path):

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

    out = tmp_path / "run"
    with pytest.raises(SimulatedKill):
        train(_smoke_cfg(save_steps=1000), profile="smoke", out_dir=out, train_jsonl=[EXAMPLE], show_progress=False,
              evaluate=False, callbacks=[stop_at_step_callback(1)])
    assert not out.exists()


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


@pytest.mark.slow
def test_learning_curve_top_layers_and_per_task_length(tmp_path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = train(_smoke_cfg(curve_steps=[0, 2, 8], curve_queries=5, train_top_layers=2, max_seq_length=48),
                profile="smoke", out_dir=tmp_path / "run", train_jsonl=[EXAMPLE], corpora=CORPORA,
                show_progress=False, evaluate=False)   # as the notebooks train: the curve still runs
    tr, seq = res.log["training"], res.log["data"]["seq_len"]
    # the curve: the base at step 0, the requested steps the run reaches (8 is past its 4), then the
    # last step, so the curve ends at the saved model; each point has the dev sample of every task
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


@pytest.mark.slow
def test_bf16_training_saves_fp32_weights_that_load_plainly(tmp_path):
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = train(_smoke_cfg(precision="bf16", max_steps=2), profile="smoke", out_dir=tmp_path / "run",
                train_jsonl=[EXAMPLE], corpora=CORPORA, show_progress=False, evaluate=False)
    assert res.log["resolved"]["precision"] == "bf16" and res.log["config"]["precision"] == "bf16"
    assert res.log["training"]["global_step"] == 2 and all(l == l for l in res.log["training"]["loss_curve"])
    # mixed precision: the products ran in bf16, the weights (and so the product) stay fp32
    weights = load_file(str(next(res.model_path.rglob("model.safetensors"))))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    m = SentenceTransformer(str(res.model_path), device="cpu")
    assert m.encode(["reset my password"], convert_to_tensor=True).dtype == torch.float32
    # the profile's default (smoke: fp32) applies when the config leaves it unset
    res32 = train(_smoke_cfg(max_steps=1), profile="smoke", out_dir=tmp_path / "run32", train_jsonl=[EXAMPLE],
                  corpora=CORPORA, show_progress=False, evaluate=False)
    assert res32.log["resolved"]["precision"] == "fp32"


@pytest.mark.slow
def test_batches_stay_full_when_queries_share_a_positive(tmp_path):
    """40 queries of one popular table and 20 of rare ones: a no-duplicates batch holds one popular query, so
    sentence-transformers' sampler ends its pass in one-pair batches (loss 0); ours fills every batch."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = [{"task": "table", "query": f"popular request number {i}", "positive": "incident (Incident): outages.",
             "positive_id": "table:incident"} for i in range(40)]
    rows += [{"task": "table", "query": f"rare request {i}", "positive": f"t{i} (Table {i}): records of kind {i}.",
              "positive_id": f"table:t{i}"} for i in range(20)]
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train(_smoke_cfg(tasks=["table"], max_steps=6), profile="smoke", out_dir=tmp_path / "run", train_jsonl=[jsonl],
          corpora=CORPORA, show_progress=False)
    tr = json.loads((tmp_path / "run" / "train_log.json").read_text())["training"]
    assert tr["pairs_seen_this_run"] == 6 * 8
    assert all(rec["loss"] > 0 for rec in tr["loss_curve"])
