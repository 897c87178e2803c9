"""Learning-rate, cheaper-step and recipe sweep: the multi-task model at one fixed budget, several settings.

Every variant is ``configs/multitask.yaml`` (the paper's setup; ``configs/multitask_catalog.yaml`` for the
``catalog`` ones) with a few keys changed, trained for ``--steps`` optimizer steps (``--catalog-steps`` for
the catalog variants) on the profile's dataset; the dev sample (``curve_queries`` queries per task, drawn
with the seed by ``helpers.evaluation.sample_queries``, the same for every variant) is evaluated at doubling
steps, so each variant gives a small learning curve, its points at steps and at training seconds. Variants:

``lr=2e-5``, ``lr=5e-5``, ``lr=1e-4``, ``lr=2e-4``  learning rate (the rest as the config)
``top4``                                        train only the top 4 of 12 transformer layers (cheaper step)
``one_length``                                  one length cap for every task instead of one per task
``lr=2e-4,fp32``, ``lr=2e-4,bf16``              ``lr=2e-4`` in fp32, or with bf16 mixed-precision training
                                                (cheaper step); the other variants train at the profile's
                                                ``train_precision`` (cpu: fp32 until issue #13's re-run, then bf16)
``catalog``                                     the catalog recipe as configured (issue 23: top 2 layers on
                                                cached lower layers, 128 query groups per step, each against
                                                its task's whole catalog, 2e-4)
``catalog,top4``                                the same with 4 top layers
``catalog,sample256``                           the same, each step scoring 256 objects of a larger catalog
                                                (the batch's golds and a seeded sample: only fields, 891)
``catalog,batch32,lr=1e-4``                     32 query groups per step at 1e-4, the recipe's first setting:
                                                at 128 the catalog's pass, a step's main cost, is shared by 4x
                                                the queries (rate x2, the square-root rule for Adam); compare
                                                the two at equal groups

Recipes against the clock: a catalog variant's lower-layer cache is built in memory by the run itself, and
each curve point's ``seconds`` is its training seconds (evaluation excluded) plus that one-time build, so
``--plot`` draws dev recall against the wall-clock seconds each recipe needed to get there (paper-recipe
points: ``seconds`` = ``train_seconds``). Run the recipes one after the other, not at once, for honest seconds.

Each run writes ``runs/<profile>/sweep/<variant>@<steps>.json`` (atomically); ``--report`` gathers them into
one JSON (default ``results/sweep-cpu.json`` for the cpu profile, whose results are committed, and
``build/notebooks-<profile>/results/sweep-<profile>.json`` for the others; it keeps the records it
already holds) and prints a table; ``--plot FILE.png`` draws their curves against seconds (the variants
just run, else every record). Several processes may run different variants at once (``--threads 1`` each
on a 2-core machine), but then their seconds are not comparable.

    python -m helpers.sweep --variant lr=5e-5 lr=1e-4 --steps 120
    python -m helpers.sweep --variant lr=1e-4 catalog --steps 240 --catalog-steps 480 --plot runs/recipes.png
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
CATALOG_CONFIG = REPO / "configs" / "multitask_catalog.yaml"   # the base of the variants with recipe: catalog
VARIANTS: dict[str, dict] = {
    "lr=2e-5": {"learning_rate": 2e-5},
    "lr=5e-5": {"learning_rate": 5e-5},
    "lr=1e-4": {"learning_rate": 1e-4},
    "lr=2e-4": {"learning_rate": 2e-4},
    "top4": {"train_top_layers": 4},
    "one_length": {"seq_len_per_task": False},
    "lr=2e-4,fp32": {"learning_rate": 2e-4, "precision": "fp32"},
    "lr=2e-4,bf16": {"learning_rate": 2e-4, "precision": "bf16"},
    "catalog": {"recipe": "catalog"},
    "catalog,top4": {"recipe": "catalog", "train_top_layers": 4},
    "catalog,sample256": {"recipe": "catalog", "catalog_sample": 256},
    "catalog,batch32,lr=1e-4": {"recipe": "catalog", "batch_size": 32, "learning_rate": 1e-4},
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


def variant_config(variant: str, steps: int, profile: str, curve_queries: int):
    """The :class:`TrainConfig` of one variant run for ``steps`` steps, its curve at doubling steps."""
    from helpers.profiles import get_profile
    from helpers.training.config import TrainConfig

    catalog = VARIANTS[variant].get("recipe") == "catalog"
    cfg = TrainConfig.from_yaml(CATALOG_CONFIG if catalog else BASE_CONFIG)
    for key, value in VARIANTS[variant].items():
        setattr(cfg, key, value)
    cfg.name = f"sweep-{variant}"
    cfg.max_steps = steps
    if catalog:   # the run builds (and is timed with) its own cache, never one a previous run left on disk
        cfg.cache_lower_layers = "memory"
    else:   # every pair fresh: the steps, not the data, differ (the batch as the trainer takes it)
        cfg.train_pairs = steps * (cfg.batch_size or get_profile(profile).batch_size)
        cfg.budget_per_task = False
    cfg.curve_steps = doubling_steps(steps)
    cfg.curve_queries = curve_queries
    cfg.save_steps, cfg.eval_steps = 10 ** 6, 0
    cfg.eval_splits = []
    cfg.validate()
    return cfg


def run_variant(variant: str, steps: int, profile: str, data_dir: Path, seed: int, out_root: Path,
                curve_queries: int = 200, overwrite: bool = False) -> dict:
    """Train one variant for ``steps`` steps with its learning curve; returns (and writes) its record."""
    from helpers.training.callbacks import clear_checkpoints
    from helpers.training.trainer import train

    cfg = variant_config(variant, steps, profile, curve_queries)
    t0 = time.perf_counter()
    key = f"{variant}@{steps}"
    res = train(cfg, profile=profile, out_dir=out_root / key, data_dir=data_dir, seed=seed, overwrite=overwrite)
    tr = res.log["training"]
    cache_seconds = res.log["timings"].get("cache_seconds", 0.0)
    record = {"created_by": CREATOR, "variant": variant, "changes": VARIANTS[variant], "steps": steps, "seed": seed,
              "recipe": cfg.recipe, "learning_rate": cfg.learning_rate, "cache_seconds": cache_seconds,
              "curve": [{**p, "seconds": round(p["train_seconds"] + cache_seconds, 1)} for p in tr["learning_curve"]],
              "dev_sample": f"helpers.evaluation.sample_queries: {curve_queries} queries per task, seed {seed}",
              "steady": tr["steady"], "trainable_params": tr["trainable_params"],
              "seq_len": {k: res.log["data"]["seq_len"].get(k) for k in
                          ("fitted", "per_task", "per_task_truncated_share", "truncated_share")},
              "padding_efficiency": tr.get("padding_efficiency"), "train_seconds": res.log["timings"]["train_seconds"],
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
    lines = ["| variant | steps | precision | s/step | trainable | seconds | Step@15 | Table@5 | Field@5 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rec in records.items():
        curve = curve_with_seconds(rec)
        last = curve[-1] if curve else {"dev": {}}
        sps = (rec.get("steady") or {}).get("seconds_per_step", float("nan"))
        # records written before the field existed: the variant's own setting, else fp32 (all were)
        precision = rec.get("precision") or rec.get("changes", {}).get("precision", "fp32")
        lines.append(f"| {name} | {rec['steps']} | {precision} | {sps:.2f} | "
                     f"{rec['trainable_params'] / 1e6:.1f}M | {last.get('seconds', float('nan')):.0f} | "
                     + " | ".join(f"{last['dev'].get(t, float('nan')):.3f}" for t in ("step", "table", "field"))
                     + " |")
    return records, "\n".join(lines) + "\n"


def curve_with_seconds(rec: dict) -> list[dict]:
    """A record's curve, every point with ``seconds`` (training wall-clock: ``train_seconds`` plus the run's
    one-time ``cache_seconds``). Records written before ``seconds`` was kept were paper-recipe runs without a
    cache, so theirs is ``train_seconds``; a point with neither is left without."""
    extra = rec.get("cache_seconds", 0.0)
    return [p if "seconds" in p or "train_seconds" not in p else {**p, "seconds": round(p["train_seconds"] + extra, 1)}
            for p in rec.get("curve") or []]


def seconds_to_match(reference: dict, rec: dict, tasks=("step", "table", "field")) -> dict:
    """When ``rec``'s curve first reaches ``reference``'s last dev recall, in training wall-clock seconds.

    For each task (and ``"all"``: every task at once) the first point of ``rec`` whose recall is at least
    the reference's last point's, its ``seconds`` (cache build included, :func:`curve_with_seconds`) and the
    ratio to the reference's seconds; ``None`` where the curve never gets there. Points lie at doubling
    steps, so a crossing between two points is reported at the later one: the seconds are an upper bound.
    """
    ref = curve_with_seconds(reference)[-1]
    points = curve_with_seconds(rec)
    out = {"reference_seconds": ref["seconds"], "reference_dev": {t: ref["dev"][t] for t in tasks}}

    def first(ok) -> dict | None:
        hit = next((p for p in points if ok(p["dev"])), None)
        return None if hit is None else {"step": hit["step"], "seconds": hit["seconds"],
                                         "ratio": round(hit["seconds"] / ref["seconds"], 3)}

    for t in tasks:
        out[t] = first(lambda dev, t=t: dev[t] >= ref["dev"][t])
    out["all"] = first(lambda dev: all(dev[t] >= ref["dev"][t] for t in tasks))
    return out


def plot_records(records: dict, path: Path) -> Path:
    """Dev recall against training wall-clock seconds, one line per record, written atomically to a PNG
    (marked as this tool's, so a later ``--plot`` may replace it)."""
    import io

    import matplotlib.pyplot as plt

    from helpers.io import atomic_write_bytes
    from helpers.plots import learning_curves

    fig = learning_curves({name: curve_with_seconds(rec) for name, rec in records.items()}, x="seconds",
                          title="dev sample recall against training seconds (helpers.sweep)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": CREATOR})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _plot_is_ours(path: Path) -> bool:
    with open(path, "rb") as f:
        return CREATOR.encode() in f.read(4096)   # the PNG text chunk plot_records writes, before the image


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
    p.add_argument("--catalog-steps", type=positive_int, default=None,
                   help="optimizer steps of the catalog variants (default: --steps)")
    add_profile(p, default=DEFAULT_PROFILE)
    p.add_argument("--data", default=None, help="dataset folder (default data/generated/<profile>-seed0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curve-queries", type=positive_int, default=200)
    add_threads(p)
    p.add_argument("--report", action="store_true", help="gather the variants' records and print a table")
    p.add_argument("--json", default=None, help="report JSON (default: sweep-<profile>.json in the profile's results "
                   "folder: results/ for cpu, build/notebooks-<profile>/results/ for the others)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="draw dev recall against training seconds of the variants run now (else of every record)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files and run folders (runs/<profile>/sweep/) this tool did not write")
    return p


def _steps(args, variant: str) -> int:
    """A variant's optimizer steps: ``--catalog-steps`` for the catalog ones when given, else ``--steps``."""
    catalog = VARIANTS[variant].get("recipe") == "catalog"
    return args.catalog_steps if catalog and args.catalog_steps else args.steps


def _check_outputs(args, out_root: Path, dest: Path, writes_report: bool) -> None:
    """Every output checked before the first variant trains."""
    if writes_report:
        check_output_file(dest, overwrite=args.overwrite, creator=CREATOR, flag="--json", ours=OLD_REPORT)
    for v in args.variant:
        check_output_file(out_root / f"{v}@{_steps(args, v)}.json", overwrite=args.overwrite, creator=CREATOR,
                          flag="the variant's record", ours=OLD_RECORD)
    if args.plot is not None:
        if Path(args.plot).suffix.lower() != ".png":
            raise DataError(f"--plot must name a .png file, got {args.plot!r}")
        check_output_file(args.plot, overwrite=args.overwrite, flag="--plot", ours=_plot_is_ours)


@entry
def main(argv=None) -> int:
    """``python -m helpers.sweep``: exit code 0, or 2 for bad input (one line on stderr, nothing written)."""
    args = _parser().parse_args(argv)
    from helpers.training.pairs import default_data_dir
    from helpers.workspace import runs_dir

    out_root = runs_dir(args.profile) / "sweep"
    data_dir = Path(args.data) if args.data else default_data_dir(args.profile)
    dest = Path(args.json) if args.json else report_path(args.profile)
    writes_report = args.report or not args.variant
    _check_outputs(args, out_root, dest, writes_report)
    if args.variant and not (data_dir / "train").is_dir():
        raise DataError("not a built dataset (no train/ folder): build it with `python -m helpers.data build` "
                        "or pass --data DIR", file=data_dir)
    apply_threads(args.threads)
    for v in args.variant:   # one after the other: the seconds of each run are its own
        print(f"[sweep] {v}: {_steps(args, v)} steps", flush=True)
        run_variant(v, _steps(args, v), args.profile, data_dir, args.seed, out_root, args.curve_queries,
                    args.overwrite)
    if not (writes_report or args.plot):
        return 0
    # a fresh clone has no runs/: the committed report's records must survive a new run's --report
    records, table = report(out_root, (load_report(args.profile, dest) or {}).get("variants"))
    if not records:
        raise DataError(f"nothing to report: no variant records under {out_root} and no earlier report; "
                        f"run some first (--variant {' '.join(sorted(VARIANTS)[:2])} ...)", file=dest)
    if writes_report:
        print(table, end="")
        atomic_write_json(dest, {"created_by": CREATOR, "profile": args.profile, "variants": records,
                                 "table": table})
        print(f"wrote {dest}")
    if args.plot:
        run_now = {f"{v}@{_steps(args, v)}" for v in args.variant}
        shown = {k: r for k, r in records.items() if not run_now or k in run_now}
        print(f"wrote {plot_records(shown, Path(args.plot))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
