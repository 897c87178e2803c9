"""helpers.training.cli: ``python -m helpers.train`` (input errors: test_cli_inputs.py)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_cli_bad_task_lists_the_valid_ones(tmp_path):
    r = subprocess.run([sys.executable, "-m", "helpers.train", "--config", str(REPO / "configs" / "example.yaml"),
                        "--tasks", "step,tabel", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "valid tasks: step, table, field" in r.stderr
    assert not (tmp_path / "x").exists()


def test_checkpoints_pickled_under_helpers_train_still_load():
    """Checkpoints written before the split into helpers.training pickled _MixingFactory as helpers.train's."""
    import pickle

    from helpers.training.sampling import _MixingFactory

    old = pickle.dumps(_MixingFactory("round_robin", 1.0, 2), protocol=0)
    old = old.replace(b"helpers.training.sampling\n", b"helpers.train\n")
    assert b"helpers.train\n" in old
    factory = pickle.loads(old)
    assert isinstance(factory, _MixingFactory) and (factory.mode, factory.group_size) == ("round_robin", 2)


def _config(argv):
    from helpers.training.cli import _config, _parser

    return _config(_parser().parse_args(argv))


def test_an_explicit_model_is_honoured_in_the_smoke_profile():
    """Issue 26: the smoke profile replaced even an explicit --model (one WARNING, exit 0)."""
    cfg, prof = _config(["--config", str(REPO / "configs" / "example.yaml"), "--profile", "smoke",
                         "--model", "me5-small", "--no-eval"])
    assert cfg.base_model == "me5-small" and prof.name == "smoke" and prof.base_model is None
    cfg, prof = _config(["--config", str(REPO / "configs" / "example.yaml"), "--profile", "smoke", "--no-eval"])
    assert prof.base_model == "minilm-l6"   # the config's encoder is still replaced: a pipeline check


def test_no_eval_skips_the_learning_curve_too(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text((REPO / "configs" / "example.yaml").read_text() + "curve_steps: [0, 5]\n")
    cfg, _ = _config(["--config", str(cfg_path), "--profile", "smoke"])
    assert cfg.curve_steps == [0, 5]
    cfg, _ = _config(["--config", str(cfg_path), "--profile", "smoke", "--no-eval"])
    assert cfg.curve_steps == []


def test_interrupt_line_names_the_checkpoint_and_the_command(tmp_path):
    from helpers.training.cli import _interrupted

    argv = ["--config", "c.yaml", "--out", str(tmp_path)]
    assert "before the first checkpoint" in _interrupted(tmp_path, argv)
    (tmp_path / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-12").mkdir()
    line = _interrupted(tmp_path, argv)
    assert f"last checkpoint {tmp_path / 'checkpoints' / 'checkpoint-12'};" in line
    assert line.endswith(f"python -m helpers.train --config c.yaml --out {tmp_path} --resume")


def test_interrupt_line_names_a_catalog_checkpoint_and_set_takes_the_recipe_keys(tmp_path):
    from helpers.training.cli import _interrupted

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint-4.pt").write_bytes(b"x")
    (tmp_path / "checkpoints" / "checkpoint-10.pt").write_bytes(b"x")
    assert f"last checkpoint {tmp_path / 'checkpoints' / 'checkpoint-10.pt'};" in _interrupted(tmp_path, ["--x"])
    cfg, _ = _config(["--config", str(REPO / "configs" / "multitask_catalog.yaml"), "--profile", "smoke",
                      "--set", "catalog_sample=64", "--set", "catalog_loss=sum", "--set", "cache_lower_layers=memory",
                      "--set", "cache_dtype=fp32", "--set", "train_top_layers=3", "--no-eval"])
    assert (cfg.catalog_sample, cfg.catalog_loss, cfg.cache_lower_layers, cfg.cache_dtype, cfg.train_top_layers) \
        == (64, "sum", "memory", "fp32", 3)
