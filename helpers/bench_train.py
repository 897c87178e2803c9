"""Training throughput: our default setup against a plain sentence-transformers setup, in one run.

``ours``   word embeddings frozen, ``max_seq_length`` fitted to the data (98th percentile, capped by the
           profile), dynamic padding to the longest text of each batch.
``plain``  full fine-tuning (embeddings trainable), every batch padded to a fixed ``--plain-len``
           (128 by default; 256 is the all-MiniLM default) -- what a straightforward script does.

Both go through ``helpers.training.trainer.train`` (same trainer, loss, full no-duplicates homogeneous batches, seed), so
the only differences are the two settings above. Throughput is measured in steady state (from the second
step to the last; checkpointing off) as pairs/s and real (non-padding) tokens/s.

Data: with ``--data DIR`` (dataset builder output) the multi-task training pairs, and after equal steps
the dev metrics of both setups (``DIR/beir/<task>/dev``). Without it, synthetic pairs made from
``data/examples/train.jsonl`` (each example varied with a counter, so every positive is distinct and
batches are full) -- enough to time a step, not to judge quality.

    python -m helpers.bench_train                       # both models, 256 pairs each setup
    python -m helpers.bench_train --model me5-small --pairs 512 --data data/generated/cpu-seed0

``--recipe catalog`` compares, instead, the paper's recipe (``ours`` above: in-batch MNRL over pairs, all
layers) with the catalog recipe (:mod:`helpers.training.catalog_recipe`: query groups against the whole
task catalog, top ``--top-layers`` layers from cached lower layers), same pairs, same steps, one run:
pairs/s, query groups/s, seconds per epoch of the loaded pairs (the catalog recipe's one-time cache
build reported apart). Numbers are printed, never judged here.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from helpers.cli import Parser, add_profile, add_threads, apply_threads, entry, positive_int
from helpers.io import DataError, atomic_write_json, check_output_file, has_json_keys, read_jsonl
from helpers.profiles import DEFAULT_PROFILE
from helpers.workspace import REPO

EXAMPLE = REPO / "data" / "examples" / "train.jsonl"
MODELS = ("minilm-l6", "me5-small")


def synthetic_pairs(n: int, path: Path, source: Path = EXAMPLE) -> Path:
    """Write ``n`` distinct pairs derived from the example file (cycled, numbered) to ``path``."""
    base = [rec for _, rec in read_jsonl(source, required=("task", "query", "positive"))]
    lines = []
    for i in range(n):
        r = base[i % len(base)]
        lines.append(json.dumps({"task": r["task"], "query": f"{r['query']} (case {i})",
                                 "positive": f"{r['positive']} Variant {i}.", "positive_id": f"obj-{i}"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bench_one(model: str, setup: str, pairs: int, batch_size: int, plain_len: int, profile: str,
              data: str | None, jsonl: Path | None, steps: int | None, work: Path) -> dict:
    from helpers.training.trainer import train

    cfg = {"name": f"bench-{model}-{setup}", "base_model": model, "tasks": ["step", "table", "field"],
           "train_pairs": pairs, "batch_size": batch_size, "epochs": 1, "save_steps": 10 ** 6,
           "eval_steps": 0, "seed": 42}
    if steps:
        cfg["max_steps"] = steps
    if setup == "plain":
        cfg.update(freeze_embeddings=False, fit_seq_length=False, max_seq_length=plain_len, pad_to_max_length=True)
    out = work / f"{model}-{setup}"
    t0 = time.perf_counter()
    res = train(cfg, profile=profile, out_dir=out, data_dir=data, train_jsonl=[jsonl] if jsonl else None,
                show_progress=False, evaluate=bool(data))
    wall = time.perf_counter() - t0
    tr = res.log["training"]
    steady = tr.get("steady") or {}
    row = {
        "model": model, "setup": setup, "steps": tr["global_step"], "batch_size": batch_size,
        "max_seq_length": res.log["resolved"]["max_seq_length"],
        "trainable_params": tr["trainable_params"], "params": res.log["resolved"]["params"],
        "pairs_per_second": round(steady.get("pairs_per_second", tr["pairs_per_second"]), 2),
        "tokens_per_second": round(steady.get("tokens_per_second", tr["tokens_per_second"]), 1),
        "seconds_per_step": round(steady.get("seconds_per_step", float("nan")), 3),
        "padding_efficiency": tr["padding_efficiency"],
        "train_seconds": round(res.log["timings"]["train_seconds"], 1), "wall_seconds": round(wall, 1),
        "final_loss": tr["loss_curve"][-1]["loss"] if tr["loss_curve"] else None,
    }
    final = res.log.get("eval", {}).get("final", {})
    if final:
        row["dev"] = {t: m[m["headline"]] for t, m in final.get("dev", {}).items()}
    shutil.rmtree(out, ignore_errors=True)
    return row


def bench_catalog(model: str, pairs: int, batch_size: int, profile: str, data: str | None, jsonl: Path | None,
                  steps: int | None, top_layers: int, catalog_sample: int | None = None) -> dict:
    """The catalog recipe on the pairs ``bench_one`` draws (same budget rule and seed), as a table row.

    Each query is scored against its task's whole training catalog (every distinct positive of the loaded
    pairs, not only of the sampled ones: a step costs what it costs in a real run), or ``catalog_sample``
    objects of it. The catalogs differ in size (128 steps, 47 tables, 891 fields), so a step's seconds are
    kept per task and an epoch is priced from its own mix of task batches.
    """
    import math
    import re

    from helpers.models import load_encoder
    from helpers.profiles import get_profile
    from helpers.precision import resolve_precision
    from helpers.tasks import TASKS, task_prompts
    from helpers.training.catalog_data import query_groups, task_catalogs
    from helpers.training.catalog_recipe import CatalogSettings, epoch_batches, train_catalog
    from helpers.training.encoder import fit_max_seq_length
    from helpers.training.pairs import load_training_pairs, sample_budget

    prof = get_profile(profile)
    loaded = load_training_pairs(data if data else [jsonl], ["step", "table", "field"])
    used, _ = sample_budget(loaded, pairs, 42)
    st = load_encoder(model)
    base = {k: v for k, v in (st.prompts or {}).items() if not re.search(r"_(query|document)$", k)}
    prompts = task_prompts(base, list(TASKS), query_side=True, doc_side=False)
    col = {t: {"anchor": prompts[f"{t}_query"], "positive": prompts[f"{t}_document"]} for t in used}
    fitted, seq = fit_max_seq_length(st, used, col, prof.max_seq_length, seed=42)
    settings = CatalogSettings(top_layers=top_layers, batch_groups=batch_size, seed=42,
                               max_steps=steps or max(1, math.ceil(pairs / batch_size)), max_seq_length=fitted,
                               task_lengths=seq["per_task"], precision=resolve_precision(prof.train_precision),
                               catalog_sample=catalog_sample)
    corpus = {t: dict(zip(c.ids, c.texts)) for t, c in task_catalogs(loaded).items()}
    times: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def timed(rec: dict) -> None:
        now = time.perf_counter()
        times.append((rec["task"], now - last[0]))
        last[0] = now

    log = train_catalog(st, used, col, settings, corpus=corpus, on_step=timed, show_progress=False).log
    per_task = _per_task_seconds(times)
    per_step = log["train_seconds"] / max(1, log["steps_this_run"])
    # an epoch of the loaded pairs: its batches of query groups, each at its task's seconds per step
    full = epoch_batches(query_groups(loaded), batch_size, 42, 0)
    epoch = sum(per_task.get(task, per_step) for task, _ in full)
    sample = f", {catalog_sample} sampled" if catalog_sample else ""
    return {"model": model, "recipe": f"catalog (top {top_layers}{sample})", "steps": log["steps_this_run"],
            "catalog": log["catalog"], "catalog_sample": catalog_sample, "seconds_per_step_by_task": per_task,
            "max_seq_length": fitted, "trainable_params": log["trainable_params"],
            "pairs_per_second": round(log["pairs_per_second"], 2),
            "groups_per_second": round(log["groups_per_second"], 2),
            "seconds_per_step": round(per_step, 3), "cache_seconds": log["cache_seconds"],
            "seconds_per_epoch": round(epoch, 1), "epoch_pairs": sum(len(d) for d in loaded.values()),
            "final_loss": log["records"][-1]["loss"] if log["records"] else None}


def _per_task_seconds(times: list[tuple[str, float]]) -> dict[str, float]:
    """Mean seconds of a step per task, leaving out the run's first step (allocator and thread warm-up)."""
    by: dict[str, list[float]] = {}
    for task, sec in times[1:] or times:
        by.setdefault(task, []).append(sec)
    return {t: round(sum(v) / len(v), 3) for t, v in sorted(by.items())}


def recipe_rows(model: str, args, data, jsonl: Path | None, work: Path) -> list[dict]:
    """The paper recipe (``ours``) and the catalog recipe on the same pairs, one after the other."""
    paper = bench_one(model, "ours", args.pairs, args.batch_size, args.plain_len, args.profile, data, jsonl,
                      args.steps, work)
    catalog = bench_catalog(model, args.pairs, args.batch_size, args.profile, data, jsonl, args.steps, args.top_layers,
                            args.catalog_sample)
    loaded = catalog["epoch_pairs"]
    paper.update(recipe="paper (MNRL, all layers)", groups_per_second=None, cache_seconds=0.0, epoch_pairs=loaded,
                 seconds_per_epoch=round(loaded / paper["pairs_per_second"], 1) if paper["pairs_per_second"] else None)
    return [paper, catalog]


def format_recipe_table(rows: list[dict]) -> str:
    head = ["model", "recipe", "steps", "trainable", "pairs/s", "groups/s", "s/step", "cache s", "s/epoch",
            "epoch pairs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        gps = "-" if r["groups_per_second"] is None else f"{r['groups_per_second']:.1f}"
        lines.append(f"| {r['model']} | {r['recipe']} | {r['steps']} | {r['trainable_params'] / 1e6:.1f}M "
                     f"| {r['pairs_per_second']:.1f} | {gps} | {r['seconds_per_step']:.2f} | {r['cache_seconds']:.0f} "
                     f"| {r['seconds_per_epoch']} | {r['epoch_pairs']} |")
    return "\n".join(lines) + "\n"


def format_table(rows: list[dict]) -> str:
    head = ["model", "setup", "seq", "trainable", "steps", "pairs/s", "tokens/s", "s/step", "pad eff", "dev"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        dev = ", ".join(f"{t} {v:.3f}" for t, v in r.get("dev", {}).items()) or "-"
        lines.append(f"| {r['model']} | {r['setup']} | {r['max_seq_length']} | {r['trainable_params'] / 1e6:.1f}M "
                     f"| {r['steps']} | {r['pairs_per_second']:.1f} | {r['tokens_per_second']:.0f} "
                     f"| {r['seconds_per_step']:.2f} | {r['padding_efficiency']} | {dev} |")
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["setup"]] = r
    for m, d in by_model.items():
        if "ours" in d and "plain" in d and d["plain"]["pairs_per_second"]:
            lines.append(f"\n{m}: ours is {d['ours']['pairs_per_second'] / d['plain']['pairs_per_second']:.2f}x "
                         f"the plain setup's pairs/s")
    return "\n".join(lines) + "\n"


CREATOR = "helpers.bench_train"


def _parser() -> Parser:
    p = Parser(prog="python -m helpers.bench_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, action="append", default=None,
                   help="model(s) to benchmark (default: both)")
    p.add_argument("--pairs", type=positive_int, default=256, help="pairs per setup (default 256)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--plain-len", type=positive_int, default=128, help="fixed padding length of the plain setup")
    add_profile(p, default=DEFAULT_PROFILE, help="profile whose max_seq_length caps our fitted length")
    p.add_argument("--data", default=None, help="dataset builder output: real pairs + dev quality after equal steps")
    p.add_argument("--steps", type=positive_int, default=None, help="optimizer steps (default pairs / batch size)")
    add_threads(p)
    p.add_argument("--recipe", choices=("setups", "catalog"), default="setups",
                   help="setups: ours vs plain (default); catalog: the paper's recipe vs the catalog recipe")
    p.add_argument("--top-layers", type=positive_int, default=2, help="layers the catalog recipe trains (default 2)")
    p.add_argument("--catalog-sample", type=positive_int, default=None,
                   help="objects the catalog recipe scores per step (default: the whole catalog)")
    p.add_argument("--json", default=str(REPO / "runs" / "bench_train.json"), help="where to write the JSON")
    p.add_argument("--overwrite", action="store_true", help="replace a --json file this tool did not write")
    return p


@entry
def main(argv=None) -> int:
    """``python -m helpers.bench_train``: exit code 0, or 2 for bad input (one line on stderr, nothing written)."""
    args = _parser().parse_args(argv)
    check_output_file(args.json, overwrite=args.overwrite, creator=CREATOR, flag="--json",
                      ours=has_json_keys("rows", "plain_len", "table"))   # written before created_by
    if args.data and not (Path(args.data) / "train").is_dir():
        raise DataError("not a built dataset (no train/ folder) (--data)", file=args.data)
    apply_threads(args.threads)
    models = args.model or list(MODELS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_train.") as tmp:
        work = Path(tmp)
        jsonl = None if args.data else synthetic_pairs(args.pairs, work / "pairs.jsonl")
        for m in models:
            if args.recipe == "catalog":
                print(f"[bench_train] {m} / paper recipe, then catalog recipe ...", flush=True)
                rows += recipe_rows(m, args, args.data, jsonl, work)
                continue
            for setup in ("ours", "plain"):
                print(f"[bench_train] {m} / {setup} ...", flush=True)
                rows.append(bench_one(m, setup, args.pairs, args.batch_size, args.plain_len, args.profile,
                                      args.data, jsonl, args.steps, work))
    table = format_recipe_table(rows) if args.recipe == "catalog" else format_table(rows)
    print(table, end="")
    import platform

    import torch
    atomic_write_json(args.json, {"created_by": CREATOR, "rows": rows, "pairs": args.pairs,
                                  "batch_size": args.batch_size, "plain_len": args.plain_len,
                                  "profile": args.profile, "data": args.data, "threads": torch.get_num_threads(),
                                  "machine": platform.machine(), "cpus": os.cpu_count(), "table": table,
                                  "recipe": args.recipe})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
