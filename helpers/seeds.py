"""The headline comparisons over training seeds: ``python -m helpers.seeds`` (``make seeds``).

The notebooks train each model once, at the study's seed 0, and one seed moved dev Step@15 by 6 points
in this study, so the claims of Tables 3 and 4 are tested here over several seeds. For each seed, the
headline models (:data:`HEADLINE`) are trained (:func:`helpers.experiments.trained_model`: a complete run
is re-used, so seed 0 is the notebooks' own) on the profile's dataset (its seed stays 0: the dataset is
the instrument, the seed is the training's), and evaluated with BM25 and the base encoder on dev and the
profile's OOD splits. The report holds, per model, task and seed, dev recall and the OOD weighted average,
their mean and range over seeds, and the headline comparisons (:data:`COMPARISONS`) by the paired
bootstrap pooled over seeds (:func:`helpers.experiments.compare_seeds`).

Written to ``--out`` (default ``seeds-<profile>.json`` in the profile's results folder:
``results/`` for cpu, ``build/notebooks-<profile>/results/`` otherwise), atomically, never over a file
this tool did not write (``--overwrite``).

    python -m helpers.seeds --seeds 0 1 2                   # cpu: every headline model three times
    python -m helpers.seeds --profile smoke --seeds 0 1     # a pipeline check
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from helpers.cli import Parser, add_profile, add_threads, apply_threads, entry, non_negative_int

CREATOR = "helpers.seeds"
#: The models of the study's headline comparisons (configs/), trained at every seed.
HEADLINE = ("single_step", "single_table", "single_field", "multitask_catalog", "multitask_downsampled")
MULTI = "multitask_catalog"
#: name -> (a, b) of the test of ``b - a``; ``{task}`` is the task tested, ``{base}`` the base encoder.
COMPARISONS = {"multi - base": ("{base}", MULTI), "multi - bm25": ("bm25", MULTI),
               "multi - single": ("single_{task}", MULTI),
               "downsampled - multi": (MULTI, "multitask_downsampled")}


def default_out(profile: str) -> Path:
    """``seeds-<profile>.json`` in the profile's results folder (:func:`helpers.workspace.profile_results`)."""
    from helpers.workspace import profile_results

    return profile_results(profile) / f"seeds-{profile}.json"


def base_encoder(profile: str) -> str:
    """The headline models' base: the profile's substitute (smoke) or the multi-task config's."""
    from helpers.profiles import get_profile
    from helpers.training.config import TrainConfig
    from helpers.workspace import REPO

    return get_profile(profile).base_model or TrainConfig.from_yaml(REPO / "configs" / f"{MULTI}.yaml").base_model


def evaluate_seeds(profile: str, seeds: Sequence[int], base: str, progress: bool = True) -> tuple[dict, dict]:
    """Train (or re-use) every headline model at each seed and evaluate it with BM25 and ``base``.
    Returns ``(grid, splits)``: rows :func:`~helpers.experiments.seed_name` ``(model, seed)``, ``"bm25"``
    and the base; ``splits`` is ``{"dev": [...], "ood": [...]}``. A single-task model is evaluated on its
    own task only."""
    from helpers.experiments import RetrieverFactory, evaluate_grid, join_grids, seed_name, trained_model
    from helpers.profiles import get_profile
    from helpers.tasks import TRAIN_TASKS
    from helpers.workspace import ensure_dataset

    prof = get_profile(profile)
    data_dir = ensure_dataset(profile, 0, progress=progress)
    splits = {"dev": ["dev"], "ood": list(prof.ood_splits)}
    every = splits["dev"] + splits["ood"]
    factory = RetrieverFactory(precision=prof.precision)
    common = dict(max_queries=prof.max_eval_queries, factory=factory, progress=progress)
    grids = [evaluate_grid({"bm25": "bm25", base: base}, data_dir, TRAIN_TASKS, every, **common)]
    for seed in seeds:
        for config in HEADLINE:
            path, _ = trained_model(config, profile, data_dir, seed=seed, show_progress=progress)
            tasks = [config.removeprefix("single_")] if config.startswith("single_") else TRAIN_TASKS
            grids.append(evaluate_grid({seed_name(config, seed): str(path)}, data_dir, tasks, every, **common))
    return join_grids(*grids), splits


def summarise(grid: dict, splits: dict, seeds: Sequence[int], base: str, n_resamples: int = 10_000) -> dict:
    """The report's ``models`` (per seed, mean, min, max of dev recall and the OOD average) and ``tests``."""
    from helpers.experiments import compare_seeds, ood_average, round_tests, seed_name
    from helpers.tasks import TRAIN_TASKS

    def value(row: str, task: str, kind: str) -> float:
        cells = grid[row][task]
        return cells["dev"]["recall"] if kind == "dev" else ood_average(grid, row, task, splits["ood"])

    models: dict = {}
    for name in ("bm25", base, *HEADLINE):
        for task in TRAIN_TASKS:
            for kind in ("dev", "ood"):
                rows = [name] if name in grid else [seed_name(name, s) for s in seeds]
                if task not in grid[rows[0]]:
                    continue
                vals = [value(r, task, kind) for r in rows]
                cell = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)}
                if name not in grid:
                    cell["per_seed"] = dict(zip(map(str, seeds), vals))
                models.setdefault(name, {}).setdefault(kind, {})[task] = cell
    tests = {kind: {label: {task: compare_seeds(grid, a.format(task=task, base=base), b.format(task=task, base=base),
                                                [task], splits[kind], seeds, n_resamples=n_resamples)[task]
                            for task in TRAIN_TASKS}
                    for label, (a, b) in COMPARISONS.items()}
             for kind in ("dev", "ood")}
    return {"models": _rounded(models), "tests": {k: round_tests(v) for k, v in tests.items()}}


def _rounded(obj, digits: int = 4):
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    return round(float(obj), digits)


def build_parser() -> Parser:
    p = Parser(prog="python -m helpers.seeds", description=__doc__.split("\n\n")[0])
    add_profile(p, default="cpu")
    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2],
                   help="training seeds (default 0 1 2; seed 0 is the notebooks' run)")
    p.add_argument("--out", default=None, help="report JSON (default: seeds-<profile>.json in the profile's "
                                               "results folder: results/ for cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out file this tool did not write")
    add_threads(p)
    return p


@entry
def main(argv: Sequence[str] | None = None) -> int:
    from helpers.io import DataError, atomic_write_json, check_output_file

    args = build_parser().parse_args(argv)
    if len(set(args.seeds)) < 2:
        raise DataError(f"a test over seeds needs at least two distinct seeds, got {args.seeds}", field="--seeds")
    seeds = sorted(set(args.seeds))
    out = check_output_file(args.out or default_out(args.profile), overwrite=args.overwrite, creator=CREATOR)
    apply_threads(args.threads)
    base = base_encoder(args.profile)
    grid, splits = evaluate_seeds(args.profile, seeds, base)
    report = {"created_by": CREATOR, "profile": args.profile, "data_seed": 0, "seeds": seeds, "splits": splits,
              "base": base,
              "command": f"python -m helpers.seeds --profile {args.profile} --seeds {' '.join(map(str, seeds))}",
              **summarise(grid, splits, seeds, base)}
    atomic_write_json(out, report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
