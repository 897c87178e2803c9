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


def test_helpers_train_keeps_the_names_earlier_code_imports():
    """Notebook 03 and older scripts import from helpers.train; checkpoints pickle _MixingFactory there."""
    import helpers.train as shim
    from helpers.training import pairs, sampling, trainer

    assert shim.cap_indices is pairs.cap_indices and shim.frequency_summary is pairs.frequency_summary
    assert shim.train is trainer.train and shim._MixingFactory is sampling._MixingFactory
    for name in shim.__all__:
        assert getattr(shim, name) is not None, name
