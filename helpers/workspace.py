"""Where things live, and the few calls every notebook starts with.

Generated data goes to ``data/generated/<profile>-seed<seed>/`` (rebuilt, not committed), trained
models to ``runs/<profile>/<config>/``, each notebook's machine-readable results to
``<results_dir>/<notebook>.json``. Set ``CASE_STUDY_DATA`` / ``CASE_STUDY_RUNS`` to move them.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from helpers.io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]


def dataset_dir(profile: str, seed: int = 0) -> Path:
    root = Path(os.environ.get("CASE_STUDY_DATA", REPO / "data" / "generated"))
    return root / f"{profile}-seed{seed}"


def runs_dir(profile: str) -> Path:
    return Path(os.environ.get("CASE_STUDY_RUNS", REPO / "runs")) / profile


def ensure_dataset(profile: str, seed: int = 0, progress: bool = True) -> Path:
    """Return the dataset folder for ``profile``/``seed``, building it first if it is missing."""
    out = dataset_dir(profile, seed)
    if not (out / "stats.json").is_file():
        from helpers.data.build import build_dataset

        build_dataset(out, seed=seed, profile=profile, progress=progress)
    return out


def save_results(results_dir: str | os.PathLike, name: str, payload: dict) -> Path:
    """Write a notebook's results JSON (atomically) with the environment it ran in."""
    import torch

    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = Path(results_dir) / f"{name}.json"
    atomic_write_json(path, {**payload, "_meta": meta})
    return path


def load_results(results_dir: str | os.PathLike, name: str) -> dict:
    return json.loads((Path(results_dir) / f"{name}.json").read_text(encoding="utf-8"))
