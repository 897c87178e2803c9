"""The training command line: ``python -m helpers.train --config CONFIG [--profile P] [--data DIR] ...``.

Examples::

    python -m helpers.train --config configs/multitask.yaml --profile cpu --data data/generated/cpu-seed0
    python -m helpers.train --config configs/example.yaml --profile smoke \\
        --train-jsonl data/examples/train.jsonl --corpora data/examples/beir --out runs/example

Bad input ends with one line and exit status 2 (:mod:`helpers.cli`); Ctrl-C with one line naming the
last checkpoint and the ``--resume`` command, exit status 130.
"""

from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from helpers.cli import EXIT_INTERRUPTED, Parser, add_profile, add_threads, apply_threads, entry
from helpers.evaluation import report_markdown
from helpers.io import DataError
from helpers.training.config import TrainConfig
from helpers.training.trainer import _resolve_path, train

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


def _parser() -> Parser:
    import argparse

    p = Parser(prog="python -m helpers.train", description=DESCRIPTION,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="experiment YAML (configs/*.yaml)")
    add_profile(p)
    p.add_argument("--out", default=None, help="output folder (default runs/<config>-<profile>)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty OUT an earlier run did not create (its other files are kept)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUT/checkpoints")
    p.add_argument("--seed", type=int, default=None, help="training seed (default 0, the study's)")
    p.add_argument("--data", default=None, help="dataset builder output folder (train/<task>/, beir/<task>/<split>/)")
    p.add_argument("--train-jsonl", nargs="+", default=None, metavar="FILE",
                   help='your own pairs: JSONL lines {"task", "query", "positive"[, "negative"]}')
    p.add_argument("--corpora", default=None, help="folder of BEIR folders per task (<task>/<split>/) for evaluation")
    for flag, (key, kind, text) in OVERRIDES.items():
        if kind is bool:
            p.add_argument(flag, dest=key, action="store_const", const=True, default=None, help=text)
        else:
            p.add_argument(flag, dest=key, nargs="+" if kind is list else None, default=None,
                           type=str if kind is list else kind,   # a list flag's items are strings
                           metavar=key.upper(), help=f"{text} (= --set {key}=...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="set any config key for this run (YAML value: --set learning_rate=2e-4 "
                        "--set tasks=[step,table]); repeatable, checked like the config file")
    p.add_argument("--no-eval", action="store_true",
                   help="skip all evaluation: during training, the learning curve (curve_steps) and the final report")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars of the run and no INFO log lines (TQDM_DISABLE=1 also hides the "
                        "libraries' bars of loading and saving)")
    add_threads(p)
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


def config_with_overrides(path: str, args) -> TrainConfig:
    """The config file with the flags' and ``--set``'s keys over it, validated as one config, so a bad
    value names its key and the flag it came from."""
    overrides = {key: (getattr(args, key), flag) for flag, (key, _, _) in OVERRIDES.items()
                 if getattr(args, key) is not None}
    for text in args.settings:
        key, value = parse_setting(text)
        overrides[key] = (value, "--set")
    return TrainConfig.from_yaml(path, overrides)


@entry
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.train``: exit code 0, 2 for bad input (message on stderr, nothing created) or 130
    when interrupted (Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    # Flags are checked before anything is loaded; a flag is never silently ignored.
    for flag, value in (("--max-steps", args.max_steps), ("--save-steps", args.save_steps)):
        if value is not None and value < 1:
            raise DataError(f"{flag} must be an integer >= 1, got {value}")
    if args.data and args.train_jsonl:
        raise DataError("give either --data or --train-jsonl, not both")
    if args.tasks is not None and not args.tasks.strip(" ,"):
        raise DataError("--tasks names no task; give a comma-separated list, e.g. step,table,field")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "datasets", "accelerate", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    apply_threads(args.threads)
    cfg, prof = _config(args)
    out = Path(args.out) if args.out else _default_out(cfg, prof)
    try:
        result = train(cfg, profile=prof, out_dir=out, data_dir=args.data, train_jsonl=args.train_jsonl,
                       corpora=args.corpora, resume=args.resume, seed=args.seed, show_progress=not args.quiet,
                       evaluate=not args.no_eval, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(_interrupted(out, argv), file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.model_path is None:
        return 0
    _print_summary(result)
    return 0


def _config(args):
    """The config with the flags and ``--set`` applied and validated, and the profile (which replaces a
    config's base encoder in the smoke profile, but never one given with ``--model`` or ``--set
    base_model=``)."""
    from helpers.profiles import get_profile

    cfg = config_with_overrides(args.config, args)
    prof = get_profile(args.profile)
    if args.base_model or any(parse_setting(s)[0] == "base_model" for s in args.settings):
        prof = replace(prof, base_model=None)   # an encoder the user names is never replaced
    if args.no_eval:
        cfg.curve_steps = []   # --no-eval means no evaluation at all, the learning curve included
    else:
        _check_eval_splits(cfg, prof.name, args)
    return cfg, prof


def _default_out(cfg: TrainConfig, prof) -> Path:
    from helpers.workspace import run_dir

    return run_dir(cfg.name, prof.name)


def _check_eval_splits(cfg: TrainConfig, profile: str, args) -> None:
    """Every split the final report asks for exists for some task, or the run is refused before it starts."""
    from helpers.evaluation import task_splits
    from helpers.training.pairs import default_data_dir

    flag = "--eval-splits" if args.eval_splits else f"{args.config}: eval_splits"
    if args.corpora or cfg.corpora:   # the trainer's evaluation root, in its order
        root = _resolve_path(args.corpora or cfg.corpora)
    elif args.train_jsonl or cfg.train_jsonl and not args.data:
        root = None
    else:
        data = _resolve_path(args.data or cfg.data_dir or default_data_dir(profile))
        root = data / "beir" if (data / "beir").is_dir() or not data.is_dir() else None
    if root is None:
        if args.eval_splits:
            raise DataError(f"{flag}: there is nothing to evaluate on (no folder of BEIR folders per task); "
                            "give --corpora DIR or drop --eval-splits")
        return   # no final report, which the run's summary says
    if not root.is_dir():
        return   # the trainer names the missing folder
    if cfg.eval_splits == ["all"]:
        return
    tasks = list(dict.fromkeys(list(cfg.tasks) + list(cfg.eval_tasks or [])))
    found = {s for t in tasks for s in task_splits(root, t)}
    if "-" in found:   # a task folder that is itself a BEIR folder serves dev and test
        found |= {"dev", "test"}
    missing = [s for s in cfg.eval_splits if s not in found]
    if missing:
        raise DataError(f"{flag}: no split {missing[0]!r} for tasks {', '.join(tasks)} under {root}; splits "
                        f"there: {', '.join(sorted(found - {'-'})) or 'none'} (or 'all')")


def _interrupted(out: Path, argv: list[str]) -> str:
    """The one line Ctrl-C ends a run with: the last checkpoint and how to continue from it."""
    from helpers.training.callbacks import latest_checkpoint
    from helpers.training.catalog_recipe import latest_checkpoint_file

    last = latest_checkpoint(out / "checkpoints") or latest_checkpoint_file(out / "checkpoints")
    if last is None:
        return f"interrupted before the first checkpoint (none in {out / 'checkpoints'}); nothing to resume"
    again = argv + ([] if "--resume" in argv else ["--resume"])
    return f"interrupted; last checkpoint {last}; continue with: python -m helpers.train {shlex.join(again)}"


def _print_summary(result) -> None:
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
    elif result.log["resolved"].get("eval_root") is None:
        print("evaluation: none (no evaluation corpora; give --corpora DIR)")
