"""Bad input to a CLI gets one line naming the file, line, field or flag, before any work starts, and no
output path ever loses a user's files (issue 12). Fast: nothing here loads a model or trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.data.__main__ import main as data_main
from helpers.io import OUTPUT_MARKER, DataError
from helpers.training.cli import main as train_main
from helpers.training.config import TrainConfig
from tests.fixtures import read_only_dir  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "configs" / "example.yaml"
SMALL = dict(train_flows=60, dev_flows=12, ood_flows=6)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- data build

def test_build_refuses_a_folder_it_did_not_create(tmp_path, capsys):
    out = tmp_path / "data"
    (out / "catalog").mkdir(parents=True)
    (out / "catalog" / "tables.yaml").write_text("tables: []\n")
    (out / "README.md").write_text("data card\n")
    before = files_of(out)
    assert data_main(["build", "--out", str(out), "--profile", "smoke"]) == 2
    err = one_line_error(capsys)
    assert str(out) in err and "did not create" in err and "--overwrite" in err
    assert files_of(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_build_refuses_a_file(tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("precious\n")
    assert data_main(["build", "--out", str(out), "--profile", "smoke"]) == 2
    assert "--out must be a folder, but this is a file" in one_line_error(capsys)
    assert out.read_text() == "precious\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_build_refuses_a_read_only_out(read_only_dir, capsys):
    assert data_main(["build", "--out", str(read_only_dir / "ds"), "--profile", "smoke"]) == 2
    assert "--out is not writable" in one_line_error(capsys)


def test_build_unknown_profile(tmp_path, capsys):
    assert data_main(["build", "--out", str(tmp_path / "ds"), "--profile", "tiny"]) == 2
    assert "--profile: unknown profile 'tiny'; choose one of: smoke, cpu, full" in one_line_error(capsys)
    assert not (tmp_path / "ds").exists()


def test_build_overwrite_keeps_other_files_and_rebuilds_its_own_folder(tmp_path):
    from helpers.data.build import build_dataset

    out = tmp_path / "data"
    out.mkdir()
    (out / "README.md").write_text("data card\n")
    with pytest.raises(DataError, match="--overwrite"):
        build_dataset(out, seed=3, profile="smoke", progress=False, **SMALL)
    build_dataset(out, seed=3, profile="smoke", progress=False, overwrite=True, **SMALL)
    assert (out / "README.md").read_text() == "data card\n"
    assert (out / "stats.json").is_file() and (out / OUTPUT_MARKER).is_file()
    first = files_of(out)
    build_dataset(out, seed=3, profile="smoke", progress=False, **SMALL)   # its own folder: no flag needed
    assert files_of(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]          # nothing hidden left behind


# ---------------------------------------------------------------------------------------------- data validate

def test_validate_corrupt_stats_json(tmp_path, capsys):
    (tmp_path / "stats.json").write_text('{\n  "queries": {\n    "step": {"dev": 3,}\n  }\n}\n')
    assert data_main(["validate", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert f"{tmp_path / 'stats.json'}:3" in err and "invalid JSON" in err
    (tmp_path / "stats.json").write_text('{"queries": ["step"]}\n')
    assert data_main(["validate", str(tmp_path)]) == 2
    assert "(field 'queries')" in one_line_error(capsys)


def test_validate_flow_without_yaml(tmp_path, capsys):
    (tmp_path / "stats.json").write_text('{"queries": {}, "flows": {"train": 1}}\n')
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "train.jsonl").write_text('{"flow_id": "f1", "yaml": "a: 1"}\n{"flow_id": "f2"}\n')
    assert data_main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {tmp_path / 'flows' / 'train.jsonl'}:2 (field 'yaml'): missing required field" in out


# ---------------------------------------------------------------------------------------------- train config

def test_config_numbers_in_any_yaml_spelling(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [step]\nlearning_rate: 5e-5\nwarmup_ratio: '0.1'\nepochs: 2\nbatch_size: 3.2e1\n"
                   "train_pairs: 1_000\nmax_steps: 1e2\n")
    c = TrainConfig.from_yaml(cfg)
    assert c.learning_rate == 5e-5 and isinstance(c.learning_rate, float) and c.warmup_ratio == 0.1
    assert c.epochs == 2.0 and c.batch_size == 32 and c.train_pairs == 1000 and c.max_steps == 100
    assert all(isinstance(v, int) for v in (c.batch_size, c.train_pairs, c.max_steps))


@pytest.mark.parametrize("line,field,message", [
    ("epochs: two", "epochs", "epochs must be a number or null, got 'two'"),
    ("learning_rate: fast", "learning_rate", "learning_rate must be a number, got 'fast'"),
    ("learning_rate: true", "learning_rate", "learning_rate must be a number, got True"),
    ("learning_rate: -1e-5", "learning_rate", "learning_rate must be > 0"),
    ("batch_size: 3.5", "batch_size", "batch_size must be an integer or null, got 3.5"),
    ("max_steps: 0", "max_steps", "max_steps must be a positive integer or null, got 0"),
    ("warmup_ratio: 10%", "warmup_ratio", "warmup_ratio must be a number, got '10%'"),
    ("eval_splits: 3", "eval_splits", "eval_splits must be a list of strings"),
])
def test_bad_config_value_names_file_line_and_field(tmp_path, line, field, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: c\ntasks: [step]\n{line}\n")
    with pytest.raises(DataError) as e:
        TrainConfig.from_yaml(cfg)
    assert e.value.line == 3 and e.value.field == field and message in str(e.value), str(e.value)
    assert str(e.value).startswith(f"{cfg}:3 (field '{field}')")


def test_train_cli_bad_config_fails_before_anything_is_created(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(EXAMPLE_CONFIG.read_text().replace("epochs: 2", "epochs: two"))
    out = tmp_path / "run"
    assert train_main(["--config", str(cfg), "--profile", "smoke", "--out", str(out), "--quiet"]) == 2
    err = one_line_error(capsys)
    assert f"{cfg}:" in err and "(field 'epochs')" in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- train flags and --out

def test_train_cli_max_steps_must_be_positive(tmp_path, capsys):
    assert train_main(["--config", str(EXAMPLE_CONFIG), "--max-steps", "0", "--out", str(tmp_path / "r")]) == 2
    assert one_line_error(capsys) == "error: --max-steps must be an integer >= 1, got 0"
    assert train_main(["--config", str(EXAMPLE_CONFIG), "--save-steps", "-3", "--out", str(tmp_path / "r")]) == 2
    assert "--save-steps must be an integer >= 1" in one_line_error(capsys)
    assert not (tmp_path / "r").exists()


def test_train_cli_out_is_a_file(tmp_path, capsys):
    out = tmp_path / "run.txt"
    out.write_text("notes\n")
    assert train_main(["--config", str(EXAMPLE_CONFIG), "--profile", "smoke", "--out", str(out), "--quiet"]) == 2
    assert "--out must be a folder, but this is a file" in one_line_error(capsys)
    assert out.read_text() == "notes\n"


def test_train_cli_refuses_a_folder_it_did_not_create(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "my-model.bin").write_bytes(b"weights")
    assert train_main(["--config", str(EXAMPLE_CONFIG), "--profile", "smoke", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert (out / "checkpoints" / "my-model.bin").read_bytes() == b"weights"


def test_train_cli_read_only_out(read_only_dir, capsys):
    assert train_main(["--config", str(EXAMPLE_CONFIG), "--profile", "smoke", "--quiet",
                       "--out", str(read_only_dir / "run")]) == 2
    assert "--out is not writable" in one_line_error(capsys)


def test_train_cli_missing_inputs(tmp_path, capsys):
    assert train_main(["--config", str(EXAMPLE_CONFIG), "--profile", "smoke", "--quiet", "--out", str(tmp_path / "r"),
                       "--train-jsonl", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: training file not found" in one_line_error(capsys)
    assert train_main(["--config", str(EXAMPLE_CONFIG), "--profile", "smoke", "--quiet", "--out", str(tmp_path / "r"),
                       "--corpora", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: evaluation corpora folder not found" in one_line_error(capsys)
    assert not (tmp_path / "r").exists()


def test_unknown_profile_from_environment_is_named(monkeypatch):
    from helpers.profiles import get_profile

    monkeypatch.setenv("CASE_STUDY_PROFILE", "tiny")
    with pytest.raises(ValueError, match=r"unknown profile 'tiny' \(from \$CASE_STUDY_PROFILE\)"):
        get_profile()
    assert json.dumps(get_profile("smoke").as_dict())
