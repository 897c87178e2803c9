"""The training command line: ``python -m helpers.train --config CONFIG [--profile P] [--data DIR] ...``.

Examples::

    python -m helpers.train --config configs/multitask.yaml --profile cpu --data data/generated/cpu-seed0
    python -m helpers.train --config configs/example.yaml --profile smoke \\
        --train-jsonl data/examples/train.jsonl --corpora data/examples/beir --out runs/example
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from helpers.evaluation import report_markdown
from helpers.io import DataError
from helpers.tasks import UnknownTaskError
from helpers.training.config import TrainConfig
from helpers.training.trainer import train


#: Short flags for the config keys changed most often: each is the same as ``--set KEY=VALUE``.
OVERRIDES = {
    "--model": ("base_model", str, "the base encoder (registered name, path or hub id)"),
    "--tasks": ("tasks", str, "the tasks, comma-separated"),
    "--max-steps": ("max_steps", int, "the number of optimizer steps"),
    "--save-steps": ("save_steps", int, "checkpoint every N steps"),
    "--eval-splits": ("eval_splits", list, "splits for the final report ('all' = every one)"),
    "--compare-base": ("compare_base", bool, "also evaluate the base model"),
}

DESCRIPTION = "Multi-task instruction fine-tuning of a retriever on ``SentenceTransformerTrainer``."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="experiment YAML (configs/*.yaml)")
    p.add_argument("--profile", choices=["smoke", "cpu", "full"], default=None,
                   help="run profile (default $CASE_STUDY_PROFILE or cpu)")
    p.add_argument("--out", default=None, help="output folder (default runs/<config>-<profile>)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty OUT an earlier run did not create (its other files are kept)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUT/checkpoints")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--data", default=None, help="dataset builder output folder (train/<task>/, beir/<task>/<split>/)")
    p.add_argument("--train-jsonl", nargs="+", default=None, metavar="FILE",
                   help='your own pairs: JSONL lines {"task", "query", "positive"[, "negative"]}')
    p.add_argument("--corpora", default=None, help="folder of BEIR folders per task (<task>/<split>/) for evaluation")
    for flag, (key, kind, text) in OVERRIDES.items():
        if kind is bool:
            p.add_argument(flag, dest=key, action="store_const", const=True, default=None, help=text)
        else:
            p.add_argument(flag, dest=key, nargs="+" if kind is list else None, type=kind, default=None,
                           metavar=key.upper(), help=f"{text} (= --set {key}=...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="set any config key for this run (YAML value: --set learning_rate=2e-4 "
                        "--set tasks=[step,table]); repeatable, checked like the config file")
    p.add_argument("--no-eval", action="store_true", help="skip all evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p


def parse_setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--set``, the value read as YAML (as it would be in the config file)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise DataError(f"--set takes KEY=VALUE, got {text!r}", field="--set")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise DataError(f"--set {key.strip()}: not a YAML value ({e.problem or e})", field=key.strip()) from None


def config_with_overrides(path: str, args: argparse.Namespace) -> TrainConfig:
    """The config file with the flags' and ``--set``'s keys over it, validated as one config, so a bad
    value names its key and the flag it came from."""
    overrides = {key: (getattr(args, key), flag) for flag, (key, _, _) in OVERRIDES.items()
                 if getattr(args, key) is not None}
    for text in args.settings:
        key, value = parse_setting(text)
        overrides[key] = (value, "--set")
    return TrainConfig.from_yaml(path, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.train``: exit code 0, or 2 for bad input (message on stderr, nothing created)."""
    args = _parser().parse_args(argv)
    # Flags are checked before anything is loaded; a flag is never silently ignored.
    for flag, value in (("--max-steps", args.max_steps), ("--save-steps", args.save_steps),
                        ("--threads", args.threads)):
        if value is not None and value < 1:
            print(f"error: {flag} must be an integer >= 1, got {value}", file=sys.stderr)
            return 2
    if args.data and args.train_jsonl:
        print("error: give either --data or --train-jsonl, not both", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "datasets", "accelerate", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    try:
        cfg = config_with_overrides(args.config, args)
        result = train(cfg, profile=args.profile, out_dir=args.out, data_dir=args.data,
                       train_jsonl=args.train_jsonl, corpora=args.corpora, resume=args.resume, seed=args.seed,
                       show_progress=not args.quiet, evaluate=not args.no_eval, overwrite=args.overwrite)
    except (DataError, UnknownTaskError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.model_path is None:
        return 0
    tr = result.log["training"]
    print(f"model: {result.model_path}")
    print(f"log:   {result.out_dir / 'train_log.json'}")
    print(f"steps: {tr['global_step']} ({tr['steps_per_task']}), {tr['pairs_per_second']:.1f} pairs/s, "
          f"train {result.log['timings']['train_seconds']:.1f}s, final loss "
          f"{tr['loss_curve'][-1]['loss'] if tr['loss_curve'] else float('nan')}")
    ev = result.log.get("eval", {})
    if ev.get("final"):
        print(report_markdown({"fine-tuned": ev["final"], **({"base": ev["base"]} if ev.get("base") else {})}),
              end="")
    return 0
