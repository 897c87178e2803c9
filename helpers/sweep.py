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
one JSON (default ``results/sweep-<profile>.json``, keeping the records it already holds) and prints a
table. Several processes may run different variants at once (``--threads 1`` each on a 2-core machine).

    python -m helpers.sweep --variant lr=5e-5 lr=1e-4 --steps 120
    python -m helpers.sweep --report
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from helpers.io import atomic_write_json
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


def run_variant(variant: str, steps: int, profile: str, data_dir: Path, seed: int, out_root: Path,
                curve_queries: int = 200) -> dict:
    """Train one variant for ``steps`` steps with its learning curve; returns (and writes) its record."""
    from helpers.profiles import get_profile
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
    res = train(cfg, profile=profile, out_dir=out_root / key, data_dir=data_dir, seed=seed, overwrite=True)
    tr = res.log["training"]
    record = {"variant": variant, "changes": VARIANTS[variant], "steps": steps, "seed": seed,
              "learning_rate": cfg.learning_rate, "curve": tr["learning_curve"],
              "dev_sample": f"helpers.evaluation.sample_queries: {curve_queries} queries per task, seed {seed}",
              "steady": tr["steady"], "trainable_params": tr["trainable_params"],
              "seq_len": {k: res.log["data"]["seq_len"].get(k) for k in
                          ("fitted", "per_task", "per_task_truncated_share", "truncated_share")},
              "padding_efficiency": tr["padding_efficiency"], "train_seconds": res.log["timings"]["train_seconds"],
              "wall_seconds": round(time.perf_counter() - t0, 1),
              "threads": res.log["environment"]["threads"], "precision": res.log["resolved"]["precision"]}
    shutil.rmtree(out_root / key / "checkpoints", ignore_errors=True)   # the record is the product, not the weights
    atomic_write_json(out_root / f"{key}.json", record)
    return record


def report(out_root: Path, earlier: dict | None = None) -> tuple[dict, str]:
    """All variant records under ``out_root`` and a markdown table of their last curve point.

    ``earlier`` (the ``variants`` of a report already written) keeps the records of runs made on another
    checkout or machine, whose ``runs/`` folder is not here; a record under ``out_root`` replaces the
    earlier one of the same ``<variant>@<steps>``."""
    records = dict(earlier or {})
    for p in sorted(out_root.glob("*.json")):
        rec = json.loads(p.read_text(encoding="utf-8"))
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
    return REPO / "results" / f"sweep-{profile}.json"


def load_report(profile: str, path: Path | None = None) -> dict | None:
    """The sweep report of a profile (``path``, default ``results/sweep-<profile>.json``), or None if none
    was written."""
    path = path or report_path(profile)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", nargs="+", choices=sorted(VARIANTS), default=[])
    p.add_argument("--steps", type=int, default=120, help="optimizer steps per variant (default 120)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--data", default=None, help="dataset folder (default data/generated/<profile>-seed0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curve-queries", type=int, default=200)
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 when two sweeps share 2 cores)")
    p.add_argument("--report", action="store_true", help="gather the variants' records and print a table")
    p.add_argument("--json", default=None, help="report JSON (default results/sweep-<profile>.json)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    from helpers.training.pairs import default_data_dir
    from helpers.workspace import runs_dir

    out_root = runs_dir(args.profile) / "sweep"
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    data_dir = Path(args.data) if args.data else default_data_dir(args.profile)
    for v in args.variant:
        print(f"[sweep] {v}: {args.steps} steps", file=sys.stderr, flush=True)
        run_variant(v, args.steps, args.profile, data_dir, args.seed, out_root, args.curve_queries)
    if args.report or not args.variant:
        dest = Path(args.json) if args.json else report_path(args.profile)
        # a fresh clone has no runs/: the committed report's records must survive a new run's --report
        records, table = report(out_root, (load_report(args.profile, dest) or {}).get("variants"))
        print(table, end="")
        atomic_write_json(dest, {"profile": args.profile, "variants": records, "table": table})
        print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
