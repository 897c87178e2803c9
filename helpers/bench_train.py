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
            for setup in ("ours", "plain"):
                print(f"[bench_train] {m} / {setup} ...", flush=True)
                rows.append(bench_one(m, setup, args.pairs, args.batch_size, args.plain_len, args.profile,
                                      args.data, jsonl, args.steps, work))
    table = format_table(rows)
    print(table, end="")
    import platform

    import torch
    atomic_write_json(args.json, {"created_by": CREATOR, "rows": rows, "pairs": args.pairs,
                                  "batch_size": args.batch_size, "plain_len": args.plain_len,
                                  "profile": args.profile, "data": args.data, "threads": torch.get_num_threads(),
                                  "machine": platform.machine(), "cpus": os.cpu_count(), "table": table})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
