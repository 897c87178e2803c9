"""helpers.training.catalog_stage: ``recipe: catalog`` through ``python -m helpers.train`` (smoke profile, tiny
data): it trains, saves a SentenceTransformer as the paper recipe does, resumes to the uninterrupted run's
weights, and refuses what it cannot run in one line."""

import json
import shutil
from pathlib import Path

import pytest

from helpers.io import DataError
from helpers.tasks import TASKS
from helpers.training.callbacks import SimulatedKill
from helpers.training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "multitask_catalog.yaml"
#: the top-level keys of every run's train_log.json, whatever the recipe
LOG_KEYS = {"name", "config", "profile", "resolved", "data", "training", "timings", "environment", "eval",
            "model_path"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The layer cache's default folder ($CASE_STUDY_CACHE/layers) inside the test's folder."""
    monkeypatch.setenv("CASE_STUDY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "layers"


@pytest.mark.slow
def test_smoke_cli_trains_and_saves_a_sentence_transformer_like_the_paper_recipe(tiny, tmp_path, cache, capsys,
                                                                                  monkeypatch):
    from dataclasses import replace

    from sentence_transformers import SentenceTransformer

    from helpers import profiles
    from helpers.training.cli import main

    # the whole epoch here: the smoke profile's own step cap is checked apart (below)
    monkeypatch.setitem(profiles.PROFILES, "smoke", replace(profiles.PROFILES["smoke"], catalog_max_steps=None))

    out = tmp_path / "run"
    code = main(["--config", str(CONFIG), "--profile", "smoke", "--data", str(tiny), "--out", str(out),
                 "--no-eval", "--quiet"])
    assert code == 0, capsys.readouterr().err
    log = json.loads((out / "train_log.json").read_text())
    assert set(log) == LOG_KEYS
    res, tr = log["resolved"], log["training"]
    assert (res["recipe"], res["train_top_layers"], res["cache_lower_layers"], res["cache_dtype"],
            res["catalog_loss"], res["catalog_sample"]) == ("catalog", 2, "disk", "bf16", "each", None)
    assert res["layer_cache_dir"] == str(cache) and any(cache.glob("*.safetensors"))
    # every training pair, one epoch of query groups: the steps are the epoch's batches
    assert res["budget_pairs"] is None and tr["pairs_seen"] == sum(log["data"]["used"].values())
    assert tr["global_step"] == res["max_steps"] == tr["catalog"]["batches_per_epoch"]
    assert tr["catalog"]["cut_layer"] == 4 and tr["trainable_params"] == res["params"] - res["frozen_params"]
    assert [p["step"] for p in tr["loss_curve"]] == list(range(1, tr["global_step"] + 1))
    assert "train_seconds" in log["timings"] and "cache_seconds" in log["timings"]

    model_dir = out / "model"
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert summary["config"]["recipe"] == "catalog" and summary["global_step"] == tr["global_step"]
    card = (model_dir / "README.md").read_text()
    assert "recipe `catalog`" in card and "top 2 transformer layers" in card and "whole training catalog" in card
    assert "saved with 256" in card
    # loaded as any model: the base's inference length (minilm-l6: 256), every task's prompts
    m = SentenceTransformer(str(model_dir), device="cpu")
    assert m.max_seq_length == res["inference_max_seq_length"] == 256 and res["max_seq_length"] <= 64
    for t in TASKS:
        assert m.prompts[f"{t}_query"] == TASKS[t].query_instruction and f"{t}_document" in m.prompts
    assert m.encode(["close the incident"], prompt_name="step_query").shape == (1, 384)


def test_the_smoke_profile_caps_a_catalog_run_and_a_config_s_max_steps_wins():
    from types import SimpleNamespace

    from helpers.profiles import get_profile
    from helpers.training.catalog_stage import _base_settings, catalog_steps
    from helpers.training.settings import resolve_settings

    from tests.test_catalog_data import _pairs

    used = {"field": _pairs([(f"q{i}", f"doc {i % 7}", f"d{i % 7}") for i in range(400)])}   # 400 groups
    cfg = TrainConfig.from_yaml(CONFIG)
    cfg.tasks = ["field"]

    def steps(profile, max_steps=None):
        cfg.max_steps = max_steps
        prof = get_profile(profile)
        return catalog_steps(SimpleNamespace(cfg=cfg, prof=prof, settings=resolve_settings(cfg, prof)), used)

    assert steps("smoke") == get_profile("smoke").catalog_max_steps == 8
    assert steps("smoke", max_steps=3) == 3
    assert cfg.batch_size == 128 and steps("cpu") == 400 // 128 + 1 and get_profile("cpu").catalog_max_steps is None
    # smoke caps the groups per step too (16 of the config's 128): a pipeline check, not the recipe's work
    smoke = get_profile("smoke")
    spec = SimpleNamespace(cfg=cfg, prof=smoke, settings=resolve_settings(cfg, smoke))
    assert _base_settings(spec).batch_groups == smoke.catalog_max_batch == 16


def _cfg(**kw) -> TrainConfig:
    cfg = TrainConfig.from_yaml(CONFIG)
    for k, v in {"tasks": ["table", "field"], "max_steps": 4, "save_steps": 2, "curve_steps": [], **kw}.items():
        setattr(cfg, k, v)
    return cfg


def _kill_at(step):
    def stop(record):
        if record["step"] == step:
            raise SimulatedKill(f"step {step}")
    return stop


@pytest.mark.slow
def test_resume_gives_the_uninterrupted_runs_model_and_log(tiny, tmp_path, cache):
    from helpers.training.trainer import train

    kw = dict(profile="smoke", data_dir=tiny, show_progress=False, evaluate=False)
    with pytest.raises(SimulatedKill):   # before the first checkpoint: nothing is left behind
        train(_cfg(), out_dir=tmp_path / "early", callbacks=[_kill_at(1)], **kw)
    assert not (tmp_path / "early").exists()
    out = tmp_path / "run"
    with pytest.raises(SimulatedKill):
        train(_cfg(), out_dir=out, callbacks=[_kill_at(3)], **kw)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2.pt"]
    assert not (out / "model").exists()
    resumed = train(_cfg(), out_dir=out, resume=True, **kw).log["training"]
    whole = train(_cfg(), out_dir=tmp_path / "whole", **kw).log["training"]
    assert resumed["resumed_from_step"] == 2 and resumed["steps_this_run"] == 2
    assert resumed["resumed_from"].endswith("checkpoint-2.pt") and resumed["catalog"]["cache"]
    for key in ("global_step", "loss_curve", "task_per_step", "steps_per_task", "pairs_seen", "train_loss"):
        assert resumed[key] == whole[key], key
    a = (out / "model" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "whole" / "model" / "model.safetensors").read_bytes()
    # a fresh run in the same folder starts over: the old checkpoint is cleared, not resumed
    fresh = train(_cfg(save_steps=100), out_dir=out, **kw).log["training"]
    assert fresh["resumed_from_step"] == 0 and not (out / "checkpoints").exists()


def test_prepare_refuses_torchrun_and_a_cache_folder_that_is_a_file(tmp_path):
    from helpers.training.catalog_stage import cache_folder, prepare_catalog_config

    cfg = TrainConfig.from_yaml(CONFIG)
    with pytest.raises(DataError, match=r"field 'recipe'.*one process.*without torchrun"):
        prepare_catalog_config(cfg, 2)
    (tmp_path / "f").write_text("x")
    cfg.layer_cache_dir = str(tmp_path / "f")
    with pytest.raises(DataError, match=r"field 'layer_cache_dir'.*is a file") as e:
        prepare_catalog_config(cfg, 1)
    assert str(tmp_path / "f") in str(e.value) and "\n" not in str(e.value)
    cfg.cache_lower_layers = "memory"   # no folder is used, so none is checked
    assert cache_folder(cfg) is None
    cfg.train_top_layers = None
    prepare_catalog_config(cfg, 1)
    assert cfg.train_top_layers == 2   # resolved, so the log and the card name it


def test_a_trainer_callback_is_refused_with_the_reason():
    from helpers.training.catalog_stage import _on_step
    from helpers.training.callbacks import stop_at_step_callback

    with pytest.raises(TypeError, match="functions called with each step's record"):
        _on_step([stop_at_step_callback(2)])
    seen = []
    _on_step([seen.append])({"step": 1})
    assert seen == [{"step": 1}] and _on_step([]) is None


@pytest.mark.slow
def test_the_anchor_term_reads_the_training_flows_logs_its_loss_and_is_on_the_card(tiny, tmp_path, cache):
    from helpers.training.anchor import FLOWS_FILE
    from helpers.training.trainer import train

    kw = dict(profile="smoke", show_progress=False, evaluate=False)
    log = train(_cfg(anchor_weight=10.0, anchor_batch=8, max_steps=2, save_steps=None), data_dir=tiny,
                out_dir=tmp_path / "run", **kw).log
    tr = log["training"]
    anchor = tr["catalog"]["anchor"]
    assert anchor["source"] == str(tiny / FLOWS_FILE) and (anchor["weight"], anchor["batch"]) == (10.0, 8)
    assert 16 <= anchor["length"] <= 64   # the workflow texts' own fitted length, capped by the profile's
    assert all("anchor_loss" in p for p in tr["loss_curve"])
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "anchor term of weight 10.0" in card and "8 workflow texts" in card
    # the flows file is required, and only a dataset folder has one
    bare = tmp_path / "bare"
    shutil.copytree(tiny / "train", bare / "train")   # the training pairs without the flows
    with pytest.raises(DataError) as e:
        train(_cfg(anchor_weight=1.0), data_dir=bare, out_dir=tmp_path / "bare-run", **kw)
    assert str(bare / FLOWS_FILE) in str(e.value) and "\n" not in str(e.value)
