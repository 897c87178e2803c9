"""Where things live, and the few calls every notebook starts with.

Generated data goes to ``data/generated/<profile>-seed<seed>/`` (rebuilt, not committed), trained
models to ``runs/<profile>/<config>/``, each notebook's machine-readable results to
``<results_dir>/<notebook>.json``. Set ``CASE_STUDY_DATA`` / ``CASE_STUDY_RUNS`` to move them. What is
derived from models and kept across clones (the converted me5-small, int8 exports, the embedding
cache) lives under :func:`cache_root` (``$CASE_STUDY_CACHE``, default ``~/.cache/multitask-rag``).

The repository's ``results/`` holds the committed results of the ``cpu`` profile
(:data:`COMMITTED_PROFILE`); a notebook run in another profile writes to
``build/notebooks-<profile>/results/`` instead (:func:`profile_results`), where ``python -m
helpers.reproduce --profile <profile>`` puts its results too, so trying a notebook in the smoke
profile never overwrites a committed result.

Every path here is found from this package's location, never from the working directory, so a
notebook run with "Run All" in JupyterLab, by papermill or from any other folder writes into the
same clone it runs from.
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from pathlib import Path

from helpers.io import DataError, atomic_write_json, check_writable, read_json_object
from helpers.profiles import DEFAULT_PROFILE

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
NOTEBOOKS = REPO / "notebooks"
# the profile whose results are committed in results/
COMMITTED_PROFILE = DEFAULT_PROFILE


def results_path(results_dir: str | os.PathLike | None = None) -> Path:
    """Where a notebook's results go: ``None`` is the repository's ``results/``; a relative path is
    taken from ``notebooks/``, the folder the notebooks' parameter cells are written for
    (``"../results"``), whatever the kernel's working directory."""
    if results_dir is None:
        return RESULTS
    path = Path(results_dir).expanduser()
    return path if path.is_absolute() else (NOTEBOOKS / path).resolve()


def profile_results(profile: str) -> Path:
    """Where results of ``profile`` go by default: ``results/`` for :data:`COMMITTED_PROFILE`, else
    ``build/notebooks-<profile>/results/`` (never committed)."""
    return RESULTS if profile == COMMITTED_PROFILE else REPO / "build" / f"notebooks-{profile}" / "results"


def dataset_dir(profile: str, seed: int = 0) -> Path:
    root = Path(os.environ.get("CASE_STUDY_DATA", REPO / "data" / "generated"))
    return root / f"{profile}-seed{seed}"


def runs_dir(profile: str) -> Path:
    return Path(os.environ.get("CASE_STUDY_RUNS", REPO / "runs")) / profile


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Argument, else ``$CASE_STUDY_CACHE``, else ``~/.cache/multitask-rag``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("CASE_STUDY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "multitask-rag"


def embedding_cache_dir() -> Path:
    """The study's embedding cache: ``<cache_root()>/embeddings`` (one variable, ``$CASE_STUDY_CACHE``).

    ``$CASE_STUDY_EMBEDDING_CACHE``, the old separate variable, is still honoured with a deprecation
    warning (a ``FutureWarning``, which Python shows to end users).
    """
    old = os.environ.get("CASE_STUDY_EMBEDDING_CACHE")
    if old:
        warnings.warn("CASE_STUDY_EMBEDDING_CACHE is deprecated: set CASE_STUDY_CACHE instead (embeddings "
                      "are cached in its embeddings/ folder)", FutureWarning, stacklevel=2)
        return Path(old).expanduser()
    return cache_root() / "embeddings"


def run_dir(name: str, profile: str) -> Path:
    """Where ``python -m helpers.train`` writes a run of config ``name`` without ``--out``."""
    return REPO / "runs" / f"{name}-{profile}"


def dataset_fingerprint(folder: str | os.PathLike) -> str | None:
    """The source fingerprint a built dataset records (None if it is missing or predates it)."""
    path = Path(folder) / "stats.json"
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # unreadable: treated as stale, so it is rebuilt
    return stats.get("source_fingerprint") if isinstance(stats, dict) else None


def ensure_dataset(profile: str, seed: int = 0, progress: bool = True) -> Path:
    """Return the dataset folder for ``profile``/``seed``, (re)building it if missing or stale.

    Stale means built from other catalog, language or builder sources than the current ones.
    """
    from helpers.data.build import build_dataset, source_fingerprint

    out = dataset_dir(profile, seed)
    found = dataset_fingerprint(out)
    if found != source_fingerprint():
        # A folder with a fingerprinted stats.json was built by build_dataset before it left marker
        # files; replacing its entries is safe (build_dataset keeps any other file).
        build_dataset(out, seed=seed, profile=profile, progress=progress, overwrite=found is not None)
    return out


def save_results(results_dir: str | os.PathLike | None, name: str, payload: dict) -> Path:
    """Write a notebook's results JSON (atomically) with the environment it ran in; returns its path.

    ``results_dir`` as :func:`results_path` reads it. When that is the repository's ``results/`` and the
    payload's ``profile`` is not :data:`COMMITTED_PROFILE`, the file goes to :func:`profile_results`
    instead (and a line says so), so a try in the smoke profile keeps the committed results. An
    existing file is replaced only if it is a notebook results file of the same profile.
    """
    import torch

    from helpers.precision import native_bf16

    profile = payload.get("profile")
    if not isinstance(profile, str):
        raise ValueError(f"save_results({name!r}): the payload needs the run's 'profile'")
    folder = results_path(results_dir)
    if folder.resolve() == RESULTS.resolve() and profile != COMMITTED_PROFILE:
        folder = profile_results(profile)
        print(f"profile {profile}: results go to {folder} (results/ holds the committed {COMMITTED_PROFILE} results)")
    path = folder / f"{name}.json"
    found = results_profile(path)
    if path.is_dir() or path.exists() and found != profile:
        what = "a folder" if path.is_dir() else f"results of profile {found!r}" if found else "another file"
        raise DataError(f"holds {what}, not results of profile {profile!r}: pass another results_dir", file=path)
    check_writable(path, flag="results_dir")
    # native_bf16: whether the profiles' "auto" precision ran bf16 (True) or fp32 on this machine
    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(), "native_bf16": native_bf16(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(path, {**payload, "_meta": meta})
    return path


def results_profile(path: str | os.PathLike) -> str | None:
    """The profile of a notebook results file (None: not one)."""
    obj = read_json_object(path)
    return obj.get("profile") if obj is not None and isinstance(obj.get("_meta"), dict) else None


def load_results(results_dir: str | os.PathLike | None, name: str) -> dict:
    return json.loads((results_path(results_dir) / f"{name}.json").read_text(encoding="utf-8"))
