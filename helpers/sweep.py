"""Learning-rate and cheaper-step sweep: the multi-task model at one fixed budget, several settings.

Every variant is ``configs/multitask.yaml`` (the paper's setup) with a few keys changed, trained for
``--steps`` optimizer steps on the profile's dataset; the dev sample (``curve_queries`` queries per task,
drawn with the seed by ``helpers.evaluation.sample_queries``) is evaluated at doubling steps, so each variant gives a small learning curve. Variants:

``lr=2e-5``, ``lr=5e-5``, ``lr=1e-4``, ``lr=2e-4``  learning rate (the rest as the config)
``top4``                                        train only the top 4 of 12 transformer layers (cheaper step)
``one_length``                                  one length cap for every task instead of one per task
``lr=2e-4,fp32``, ``lr=2e-4,bf16``              ``lr=2e-4`` in fp32, or with bf16 mixed-precision training
                                                (cheaper step); the other variants train at the profile's
                                                ``train_precision`` (cpu: fp32 until issue #13's re-run, then bf16)

Each run writes ``runs/<profile>/sweep/<variant>@<steps>.json`` (atomically); ``--report`` gathers them into
one JSON (default ``results/sweep-cpu.json`` for the cpu profile, whose results are committed, and
``build/notebooks-<profile>/results/sweep-<profile>.json`` for the others; it keeps the records it
already holds) and prints a table. Several processes may run different variants at once (``--threads
1`` each on a 2-core machine).

    python -m helpers.sweep --variant lr=5e-5 lr=1e-4 --steps 120
    python -m helpers.sweep --report
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from helpers.cli import Parser, add_profile, add_threads, apply_threads, entry, positive_int
from helpers.io import DataError, atomic_write_json, check_output_file, has_json_keys
from helpers.profiles import DEFAULT_PROFILE
from helpers.workspace import REPO

BASE_CONFIG = REPO / "configs" / "multitask.yaml"
VARIANTS: dict[str, dict] = {
    "lr=2e-5": {"learning_rate": 2e-5},
    "lr=5e-5": {"learning_rate": 5e-5},
    "lr=1e-4": {"learning_rate": 1e-4},
    "lr=2e-4": {"learning_rate": 2e-4},
    "top4": {"train_top_layers": 4},
    "one_length": {"seq_len_per_task": False},
    "lr=2e-4,fp32": {"learning_rate": 2e-4, "precision": "fp32"},
    "lr=2e-4,bf16": {"learning_rate": 2e-4, "precision": "bf16"},
}


def doubling_steps(last: int, first: int = 15) -> list[int]:
    """0, first, 2*first, ... up to and including ``last``."""
    steps, s = [0], first
    while s < last:
        steps.append(s)
        s *= 2
    return steps + [last]


CREATOR = "helpers.sweep"
# how records and reports written before they carried created_by are recognised
OLD_RECORD, OLD_REPORT = has_json_keys("variant", "steps", "curve"), has_json_keys("profile", "variants", "table")


def run_variant(variant: str, steps: int, profile: str, data_dir: Path, seed: int, out_root: Path,
                curve_queries: int = 200, overwrite: bool = False) -> dict:
    """Train one variant for ``steps`` steps with its learning curve; returns (and writes) its record."""
    from helpers.profiles import get_profile
    from helpers.training.callbacks import clear_checkpoints
    from helpers.training.config import TrainConfig
    from helpers.training.trainer import train

    cfg = TrainConfig.from_yaml(BASE_CONFIG)
    for key, value in VARIANTS[variant].items():
        setattr(cfg, key, value)
    cfg.name = f"sweep-{variant}"
    cfg.max_steps = steps
    # every pair fresh: the steps, not the data, differ (the batch as the trainer takes it: config, else profile)
    cfg.train_pairs = steps * (cfg.batch_size or get_profile(profile).batch_size)
    cfg.budget_per_task = False
    cfg.curve_steps = doubling_steps(steps)
    cfg.curve_queries = curve_queries
    cfg.save_steps, cfg.eval_steps = 10 ** 6, 0
    cfg.eval_splits = []
    t0 = time.perf_counter()
    key = f"{variant}@{steps}"
    res = train(cfg, profile=profile, out_dir=out_root / key, data_dir=data_dir, seed=seed, overwrite=overwrite)
    tr = res.log["training"]
    record = {"created_by": CREATOR, "variant": variant, "changes": VARIANTS[variant], "steps": steps, "seed": seed,
              "learning_rate": cfg.learning_rate, "curve": tr["learning_curve"],
              "dev_sample": f"helpers.evaluation.sample_queries: {curve_queries} queries per task, seed {seed}",
              "steady": tr["steady"], "trainable_params": tr["trainable_params"],
              "seq_len": {k: res.log["data"]["seq_len"].get(k) for k in
                          ("fitted", "per_task", "per_task_truncated_share", "truncated_share")},
              "padding_efficiency": tr["padding_efficiency"], "train_seconds": res.log["timings"]["train_seconds"],
              "wall_seconds": round(time.perf_counter() - t0, 1),
              "threads": res.log["environment"]["threads"], "precision": res.log["resolved"]["precision"]}
    clear_checkpoints(out_root / key / "checkpoints")   # the record is the product, not the weights
    atomic_write_json(out_root / f"{key}.json", record)
    return record


def report(out_root: Path, earlier: dict | None = None) -> tuple[dict, str]:
    """All variant records under ``out_root`` and a markdown table of their last curve point.

    ``earlier`` (the ``variants`` of a report already written) keeps the records of runs made on another
    checkout or machine, whose ``runs/`` folder is not here; a record under ``out_root`` replaces the
    earlier one of the same ``<variant>@<steps>``."""
    records = dict(earlier or {})
    for p in sorted(out_root.glob("*.json")):
        rec = _read_json(p)
        records[f"{rec['variant']}@{rec['steps']}"] = rec
    lines = ["| variant | steps | precision | s/step | trainable | Step@15 | Table@5 | Field@5 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rec in records.items():
        last = rec["curve"][-1] if rec["curve"] else {"dev": {}}
        sps = (rec.get("steady") or {}).get("seconds_per_step", float("nan"))
        # records written before the field existed: the variant's own setting, else fp32 (all were)
        precision = rec.get("precision") or rec.get("changes", {}).get("precision", "fp32")
        lines.append(f"| {name} | {rec['steps']} | {precision} | {sps:.2f} | "
                     f"{rec['trainable_params'] / 1e6:.1f}M | "
                     + " | ".join(f"{last['dev'].get(t, float('nan')):.3f}" for t in ("step", "table", "field"))
                     + " |")
    return records, "\n".join(lines) + "\n"


def report_path(profile: str) -> Path:
    """``sweep-<profile>.json`` in the profile's results folder (:func:`helpers.workspace.profile_results`)."""
    from helpers.workspace import profile_results

    return profile_results(profile) / f"sweep-{profile}.json"


def load_report(profile: str, path: Path | None = None) -> dict | None:
    """The sweep report of a profile (``path``, default :func:`report_path`), or None if none was written."""
    path = path or report_path(profile)
    return _read_json(path) if path.is_file() else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"not a readable JSON file ({e})", file=path) from None


def _parser() -> Parser:
    p = Parser(prog="python -m helpers.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", nargs="+", choices=sorted(VARIANTS), default=[])
    p.add_argument("--steps", type=positive_int, default=120, help="optimizer steps per variant (default 120)")
    add_profile(p, default=DEFAULT_PROFILE)
    p.add_argument("--data", default=None, help="dataset folder (default data/generated/<profile>-seed0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curve-queries", type=positive_int, default=200)
    add_threads(p)
    p.add_argument("--report", action="store_true", help="gather the variants' records and print a table")
    p.add_argument("--json", default=None, help="report JSON (default: sweep-<profile>.json in the profile's results "
                   "folder: results/ for cpu, build/notebooks-<profile>/results/ for the others)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files and run folders (runs/<profile>/sweep/) this tool did not write")
    return p


@entry
def main(argv=None) -> int:
    """``python -m helpers.sweep``: exit code 0, or 2 for bad input (one line on stderr, nothing written)."""
    args = _parser().parse_args(argv)
    from helpers.training.pairs import default_data_dir
    from helpers.workspace import runs_dir

    out_root = runs_dir(args.profile) / "sweep"
    data_dir = Path(args.data) if args.data else default_data_dir(args.profile)
    # every output is checked before the first variant trains
    dest = Path(args.json) if args.json else report_path(args.profile)
    writes_report = args.report or not args.variant
    if writes_report:
        check_output_file(dest, overwrite=args.overwrite, creator=CREATOR, flag="--json", ours=OLD_REPORT)
    for v in args.variant:
        check_output_file(out_root / f"{v}@{args.steps}.json", overwrite=args.overwrite, creator=CREATOR,
                          flag="the variant's record", ours=OLD_RECORD)
    if args.variant and not (data_dir / "train").is_dir():
        raise DataError("not a built dataset (no train/ folder): build it with `python -m helpers.data build` "
                        "or pass --data DIR", file=data_dir)
    apply_threads(args.threads)
    for v in args.variant:
        print(f"[sweep] {v}: {args.steps} steps", flush=True)
        run_variant(v, args.steps, args.profile, data_dir, args.seed, out_root, args.curve_queries, args.overwrite)
    if writes_report:
        # a fresh clone has no runs/: the committed report's records must survive a new run's --report
        records, table = report(out_root, (load_report(args.profile, dest) or {}).get("variants"))
        if not records:
            raise DataError(f"nothing to report: no variant records under {out_root} and no earlier report; "
                            f"run some first (--variant {' '.join(sorted(VARIANTS)[:2])} ...)", file=dest)
        print(table, end="")
        atomic_write_json(dest, {"created_by": CREATOR, "profile": args.profile, "variants": records,
                                 "table": table})
        print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
