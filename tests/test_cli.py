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
