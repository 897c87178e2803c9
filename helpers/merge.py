"""Merging a fine-tuned encoder with its base, and choosing the weight on dev.

A weight-space merge (LM-Cocktail; WiSE-FT for image models) pulls a fine-tuned model back toward
what its base knew, without training: ``theta = (1 - w) * base + w * fine-tuned`` over every
floating-point tensor, so ``w = 0`` is the base's weights and ``w = 1`` the fine-tuned model's. The
merged model keeps the fine-tuned model's prompts (per-task instructions) and is saved with its base's
inference length.

sentence-transformers 6.2 offers ``SentenceTransformer.merge(method="linear")``, but only through
mergekit, which is heavy and not in our stack; for two models of one architecture the average is a few
lines (:func:`merge_with_base`), with a compatibility check modelled on the library's
(:func:`check_mergeable`: module types and configs, parameter names and shapes, tokenizer vocabulary).

The weight is chosen on dev only (:func:`merge_sweep`, then :func:`choose_weight` and its rule
:data:`CHOICE_RULE`); OOD, translated and test splits are for reporting the chosen model, never for
choosing it.

CLI::

    python -m helpers.merge --model FT [--base BASE] --weight W --out DIR [--overwrite]
    python -m helpers.merge --model FT [--base BASE] --choose-on DATA [--weights 0 0.25 0.5 0.75 0.9 1]
        [--tasks step table field] [--max-queries N] [--seed S] --out DIR [--overwrite]
"""

from __future__ import annotations

import copy
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from helpers.cli import Parser, entry, positive_int
from helpers.io import DataError, atomic_dir, atomic_write_json, check_output_dir

CREATOR = "helpers.merge"
DEFAULT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
WORKFLOW_TASK = "workflow"
TOLERANCE = 0.01
CHOICE_RULE = ("among the weights whose mean dev recall over the trained tasks (each task's headline "
               "recall@k, unweighted mean) is at least that of w = 1 minus {tol}, the one with the highest "
               "dev recall on the untrained workflow task; ties go to the larger w (closer to the fine-tuned "
               "model)")


# ----------------------------------------------------------------------------------------------------------
# the merge
# ----------------------------------------------------------------------------------------------------------

def _load(model_or_name):
    if isinstance(model_or_name, (str, os.PathLike)):
        from helpers.models import load_encoder

        return load_encoder(str(model_or_name))
    return model_or_name


def model_label(model_or_name) -> str:
    """A name for messages and cards: the spec as given, else the name :func:`load_encoder` stamped."""
    if isinstance(model_or_name, (str, os.PathLike)):
        return str(model_or_name)
    meta = getattr(model_or_name, "_helpers_encoder", None)
    return str(meta["name"]) if isinstance(meta, dict) and meta.get("name") else type(model_or_name).__name__


def _config_without(module, ignored: set[str]) -> dict:
    return {k: v for k, v in module.get_config_dict().items() if k not in ignored}


# named first when configs differ: the keys that tell two architectures apart at a glance
_TELLING_KEYS = ("model_type", "architecture", "vocab_size", "hidden_size", "num_hidden_layers",
                 "num_attention_heads", "intermediate_size", "max_position_embeddings", "pooling_mode")


def _first_difference(a: dict, b: dict) -> str:
    keys = sorted(set(a) | set(b), key=lambda k: (k not in _TELLING_KEYS, _TELLING_KEYS.index(k)
                                                   if k in _TELLING_KEYS else 0, k))
    key = next(k for k in keys if a.get(k) != b.get(k))
    return f"{key} {a.get(key)!r} vs {b.get(key)!r}"


def mergeable_problem(finetuned, base) -> str | None:
    """Why two loaded SentenceTransformers cannot be averaged, or None when they can.

    Checked as sentence-transformers' own merge checks them: the same module types in the same order,
    the same module and backbone configs (lengths aside: the merge sets the base's), the same parameter
    names and shapes, the same tokenizer vocabulary and special tokens.
    """
    mods_f, mods_b = list(finetuned), list(base)
    types_f, types_b = [type(m).__name__ for m in mods_f], [type(m).__name__ for m in mods_b]
    if types_f != types_b:
        return f"different architectures: modules {types_f} vs {types_b}"
    for mf, mb in zip(mods_f, mods_b):
        if hasattr(mf, "get_config_dict"):
            cf, cb = _config_without(mf, {"max_seq_length"}), _config_without(mb, {"max_seq_length"})
            if cf != cb:
                return f"{type(mf).__name__} configs differ: {_first_difference(cf, cb)}"
        af, ab = getattr(mf, "auto_model", None), getattr(mb, "auto_model", None)
        if af is not None and ab is not None:
            if type(af) is not type(ab):
                return f"different architectures: {type(af).__name__} vs {type(ab).__name__}"
            ignored = {"architectures", "transformers_version", "torch_dtype", "dtype"}
            cf = {k: v for k, v in af.config.to_dict().items() if k not in ignored and not k.startswith("_")}
            cb = {k: v for k, v in ab.config.to_dict().items() if k not in ignored and not k.startswith("_")}
            if cf != cb:
                return f"different backbones: {_first_difference(cf, cb)}"
        tf, tb = getattr(mf, "tokenizer", None), getattr(mb, "tokenizer", None)
        if (tf is None) != (tb is None):
            return "one model has a tokenizer and the other has none"
        if tf is not None and (tf.get_vocab() != tb.get_vocab()
                               or getattr(tf, "special_tokens_map", None) != getattr(tb, "special_tokens_map", None)):
            return "different tokenizers (vocabulary or special tokens)"
    sf, sb = finetuned.state_dict(), base.state_dict()
    if sf.keys() != sb.keys():
        name = sorted(set(sf) ^ set(sb))[0]
        return f"different parameter names (e.g. {name!r} is in only one of them)"
    for name, tensor in sf.items():
        if tensor.shape != sb[name].shape:
            return f"parameter {name!r} has shape {tuple(tensor.shape)} vs {tuple(sb[name].shape)}"
    return None


def check_mergeable(finetuned, base, labels: tuple[str, str] = ("--model", "--base")) -> None:
    """:class:`DataError` in one line when the two models cannot be merged (:func:`mergeable_problem`)."""
    problem = mergeable_problem(finetuned, base)
    if problem:
        raise DataError(f"cannot merge {labels[0]} with {labels[1]}: {problem}")


def merge_with_base(finetuned, base, weight: float):
    """A new ``SentenceTransformer``: ``(1 - weight) * base + weight * finetuned`` over the state dict.

    ``finetuned`` and ``base`` are loaded models or specs for :func:`helpers.models.load_encoder`
    (``me5-small``, ``minilm-l6``, a folder). Non-floating tensors (position ids) are the fine-tuned
    model's. The result keeps the fine-tuned model's prompts and modules, takes the base's
    ``max_seq_length`` (its inference length) and gets a fresh model card: the parents' training
    history does not describe it. Neither input is changed. ``weight`` must lie in [0, 1]; the ends are
    exact copies of the base's and the fine-tuned model's weights.
    """
    import torch

    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"--weight must be between 0 and 1 (0: the base, 1: the fine-tuned model), got {weight}")
    labels = (model_label(finetuned), model_label(base))
    finetuned, base = _load(finetuned), _load(base)
    check_mergeable(finetuned, base, labels)
    sf, sb = finetuned.state_dict(), base.state_dict()
    merged_state = {}
    with torch.no_grad():
        for name, tf in sf.items():
            if tf.is_floating_point():
                # (1 - w) * b + w * f, not lerp: at w = 0 and w = 1 this is exactly b and f
                mixed = (1.0 - weight) * sb[name].to(torch.float32) + weight * tf.to(torch.float32)
                merged_state[name] = mixed.to(tf.dtype)
            else:
                merged_state[name] = tf.clone()
    merged = copy.deepcopy(finetuned)
    merged.load_state_dict(merged_state)
    merged.max_seq_length = base.max_seq_length
    merged.prompts = dict(getattr(finetuned, "prompts", None) or {})
    # as sentence-transformers' own merge does: the card is regenerated, not the fine-tuned model's
    merged._model_card_text = None
    merged.model_card_data = merged.model_card_data_class(local_files_only=True)
    merged.model_card_data.register_model(merged)
    merged.model_card_data.add_tags(["merge"])
    merged.eval()
    merged._helpers_encoder = {"name": f"merge({labels[0]}, base={labels[1]}, w={weight:g})",
                               "source": f"helpers.merge: (1 - {weight:g}) * {labels[1]} + {weight:g} * {labels[0]}",
                               "path": ""}
    merged._helpers_merge = {"model": labels[0], "base": labels[1], "weight": weight}
    return merged


def save_merged(merged, out: str | os.PathLike, overwrite: bool = False, sweep: "MergeSweep | None" = None,
                choice: "WeightChoice | None" = None) -> Path:
    """Save a model from :func:`merge_with_base` into ``out`` (atomically, behind the output guard),
    with a card saying it is a merge, of what and with which weight, and ``merge.json`` (the same facts,
    and the dev sweep when the weight was chosen on dev)."""
    from helpers.models import mark_without_pooler
    from helpers.training.card import save_with_section

    info = dict(merged._helpers_merge)
    check_output_dir(out, overwrite=overwrite)
    with atomic_dir(out, overwrite=overwrite, creator=CREATOR) as tmp:
        name = f"{info['model']} merged with its base {info['base']} (w = {info['weight']:g})"
        save_with_section(merged, tmp, name, merge_card_section(merged, sweep, choice))
        if getattr(merged[0].auto_model, "pooler", None) is None:
            mark_without_pooler(tmp)
        atomic_write_json(tmp / "merge.json", {
            "created_by": CREATOR, **info, "formula": "(1 - w) * base + w * fine-tuned",
            "max_seq_length": merged.max_seq_length, "prompts": dict(merged.prompts),
            "chosen_on_dev": choice.as_dict() if choice else None, "sweep": sweep.as_dict() if sweep else None})
    return Path(out)


def merge_card_section(merged, sweep: "MergeSweep | None" = None, choice: "WeightChoice | None" = None) -> str:
    """Markdown for the card: what was merged, with which weight and why, and how to encode."""
    from helpers.training.card import prompts_lines

    info = merged._helpers_merge
    how = f"chosen on dev by the rule: {choice.rule}" if choice else "given with `--weight`"
    lines = ["## Case study: a merge with the base", "",
             "This model was not trained: it is a weight-space merge (LM-Cocktail, WiSE-FT) of a fine-tuned "
             "model with its base, `theta = (1 - w) * base + w * fine-tuned` over every floating-point tensor, "
             "made with `helpers.merge`.", "",
             "| | |", "|---|---|", f"| fine-tuned model | `{info['model']}` |", f"| base | `{info['base']}` |",
             f"| weight w | {info['weight']:g} ({how}) |",
             f"| inference length | {merged.max_seq_length} (the base's) |", ""]
    if sweep is not None:
        lines += ["### Dev sweep", "", sweep.markdown(), ""]
    lines += prompts_lines(dict(merged.prompts))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# choosing w on dev
# ----------------------------------------------------------------------------------------------------------

@dataclass
class MergeSweep:
    """Dev metrics of merged models, one per weight: ``results[w][task]`` is
    :func:`helpers.evaluation.evaluate_model`'s entry (``"recall@k"``..., ``"headline"``, ``"label"``)."""

    model: str
    base: str
    split: str
    tasks: list[str]
    workflow_task: str
    results: dict[float, dict[str, dict]] = field(default_factory=dict)
    # how it was encoded: per-task lengths (absent: the merged model's own, the base's) and precision
    max_seq_length: dict[str, int] = field(default_factory=dict)
    precision: str = "fp32"

    @property
    def weights(self) -> list[float]:
        return sorted(self.results)

    def headline(self, weight: float, task: str) -> float:
        m = self.results[weight][task]
        return float(m[m["headline"]])

    def trained_mean(self, weight: float) -> float:
        """Unweighted mean of the trained tasks' headline recall at ``weight``."""
        return sum(self.headline(weight, t) for t in self.tasks) / len(self.tasks)

    def curve(self, task: str) -> list[tuple[float, float]]:
        """``[(w, headline recall of task)]`` in weight order: one line of the sweep plot."""
        return [(w, self.headline(w, task)) for w in self.weights]

    def markdown(self) -> str:
        tasks = self.tasks + [self.workflow_task]
        labels = [self.results[self.weights[0]][t]["label"] for t in tasks]
        lines = [f"| w | {' | '.join(f'{t} {lab}' for t, lab in zip(tasks, labels))} | trained mean |",
                 "|---" * (len(tasks) + 2) + "|"]
        for w in self.weights:
            cells = " | ".join(f"{self.headline(w, t):.4f}" for t in tasks)
            lines.append(f"| {w:g} | {cells} | {self.trained_mean(w):.4f} |")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"model": self.model, "base": self.base, "split": self.split, "tasks": list(self.tasks),
                "workflow_task": self.workflow_task, "max_seq_length": dict(self.max_seq_length),
                "precision": self.precision,
                "results": [{"weight": w, "tasks": self.results[w]} for w in self.weights]}

    @classmethod
    def from_dict(cls, d: dict) -> "MergeSweep":
        # sweeps saved before the encoding settings were recorded used the defaults
        return cls(d["model"], d["base"], d["split"], list(d["tasks"]), d["workflow_task"],
                   {float(r["weight"]): r["tasks"] for r in d["results"]},
                   dict(d.get("max_seq_length") or {}), d.get("precision", "fp32"))


def check_dev_split(split: str) -> None:
    """Choices are made on dev: any other split (OOD, translations, test, train) is refused."""
    if split != "dev":
        raise ValueError(f"the merge weight is chosen on the dev split only, not {split!r}: OOD, translated and "
                         "test splits are for reporting the chosen model")


def sweep_weights(weights: Sequence[float] | None) -> list[float]:
    """The grid, sorted, with 0 and 1 always in it (the rule compares with the fine-tuned model)."""
    grid = sorted({float(w) for w in (weights if weights is not None else DEFAULT_WEIGHTS)} | {0.0, 1.0})
    bad = [w for w in grid if not 0.0 <= w <= 1.0]
    if bad:
        raise ValueError(f"--weights must lie between 0 and 1, got {bad}")
    return grid


def merge_sweep(finetuned, base, weights: Sequence[float] | None, data_root: str | os.PathLike,
                tasks: Sequence[str], split: str = "dev", workflow_task: str = WORKFLOW_TASK,
                max_queries: int | None = None, seed: int = 0, max_seq_length: Mapping[str, int] | None = None,
                precision: str = "fp32", cache_dir: str | os.PathLike | None = None) -> MergeSweep:
    """Evaluate the merge at each weight (0 and 1 always included) on the ``dev`` folders of ``tasks``
    (the trained ones) and ``workflow_task`` (the untrained one) under ``data_root``, with
    :func:`helpers.evaluation.evaluate_model` (the fine-tuned model's per-task prompts; ``cache_dir``,
    default none, an embedding cache: w = 1 has the fine-tuned model's weights bit for bit and w = 0
    the base's, so a notebook that evaluated those already finds their documents there).

    ``max_seq_length`` maps a task to its encoding length (a notebook's workflow length, so the sweep
    chooses at the length the model is reported at); ``precision`` is the encoding precision."""
    from helpers.evaluation import evaluate_model, find_eval_folder

    check_dev_split(split)
    grid = sweep_weights(weights)
    tasks = list(tasks)
    if not tasks or workflow_task in tasks:
        raise ValueError(f"--tasks: give the trained tasks (not {workflow_task!r}, the untrained one), got {tasks}")
    for t in tasks + [workflow_task]:
        if find_eval_folder(data_root, t, split) is None:
            raise DataError(f"no {split} folder for task {t!r} (expected {t}/{split} or beir/{t}/{split} inside)",
                            file=data_root)
    labels = (model_label(finetuned), model_label(base))
    finetuned, base = _load(finetuned), _load(base)
    check_mergeable(finetuned, base, labels)
    lengths = {t: int(n) for t, n in (max_seq_length or {}).items() if t in tasks + [workflow_task]}
    sweep = MergeSweep(labels[0], labels[1], split, tasks, workflow_task, max_seq_length=lengths,
                       precision=precision)
    for w in grid:
        merged = merge_with_base(finetuned, base, w)
        sweep.results[w] = {t: evaluate_model(merged, data_root, [t], [split], max_queries=max_queries, seed=seed,
                                              max_seq_length=lengths.get(t), precision=precision,
                                              cache_dir=cache_dir)[split][t]
                            for t in tasks + [workflow_task]}
        del merged
    return sweep


@dataclass
class WeightChoice:
    """The weight :func:`choose_weight` picked, the rule and the candidates that passed it."""

    weight: float
    rule: str
    eligible: list[float]
    trained_mean: dict[float, float]
    workflow: dict[float, float]

    def as_dict(self) -> dict:
        return {"weight": self.weight, "rule": self.rule, "eligible": self.eligible,
                "trained_mean": [[w, v] for w, v in self.trained_mean.items()],
                "workflow": [[w, v] for w, v in self.workflow.items()]}


def choose_weight(sweep: MergeSweep, tolerance: float = TOLERANCE) -> WeightChoice:
    """Pick w from a dev sweep by :data:`CHOICE_RULE` (w = 1 always passes its own test, so there is
    always a choice)."""
    check_dev_split(sweep.split)
    trained = {w: sweep.trained_mean(w) for w in sweep.weights}
    workflow = {w: sweep.headline(w, sweep.workflow_task) for w in sweep.weights}
    floor = trained[1.0] - tolerance
    # a rounding margin: evaluate_model rounds to 4 decimals
    eligible = [w for w in sweep.weights if trained[w] >= floor - 1e-9]
    best = max(eligible, key=lambda w: (workflow[w], w))
    return WeightChoice(best, CHOICE_RULE.format(tol=tolerance), eligible, trained, workflow)


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------

def build_parser() -> Parser:
    p = Parser(prog="python -m helpers.merge", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the fine-tuned SentenceTransformer folder")
    p.add_argument("--base", help="its base: me5-small, minilm-l6, a folder or a hub id (default: the base_model "
                   "in the model's train_summary.json)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--weight", type=float, help="w in [0, 1]: (1 - w) * base + w * fine-tuned")
    how.add_argument("--choose-on", metavar="DATA", help="choose w on the dev folders of this dataset")
    p.add_argument("--weights", type=float, nargs="+", metavar="W",
                   help="with --choose-on: the grid (0 and 1 always added); default "
                        + " ".join(f"{w:g}" for w in DEFAULT_WEIGHTS))
    p.add_argument("--tasks", nargs="+", help="with --choose-on: the trained tasks (default: the model's, from "
                   "its train_summary.json, else step table field)")
    p.add_argument("--max-queries", type=positive_int,
                   help="with --choose-on: a seeded sample of at most N dev queries per task")
    p.add_argument("--seed", type=int, default=0, help="seed of the query sample; default 0")
    p.add_argument("--out", required=True, help="output folder for the merged model")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder the toolkit did not create")
    return p


def trained_config(model: str, key: str):
    """``config[key]`` of a model folder of ours (``train_summary.json``, written by ``helpers.train``
    with the profile's base model resolved), or None for a folder without one."""
    summary = Path(model) / "train_summary.json"
    if not summary.is_file():
        return None
    try:
        return json.loads(summary.read_text(encoding="utf-8"))["config"][key]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"unreadable train summary (expected config.{key})", file=summary) from None


def trained_tasks(model: str) -> list[str]:
    """The tasks a model folder of ours was trained on, else every trainable task."""
    from helpers.tasks import TRAIN_TASKS

    tasks = trained_config(model, "tasks")
    return [t for t in tasks if t != WORKFLOW_TASK] if tasks is not None else list(TRAIN_TASKS)


def run(args) -> Path:
    """What the CLI does, raising :class:`DataError` / ``ValueError`` on bad input."""
    check_output_dir(args.out, overwrite=args.overwrite)
    if args.base is None:
        args.base = trained_config(args.model, "base_model")
        if args.base is None:
            raise ValueError(f"--base is needed: {args.model} has no train_summary.json naming its base model")
    if args.weight is not None:
        given = [f for f, v in (("--weights", args.weights), ("--tasks", args.tasks),
                                ("--max-queries", args.max_queries)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --choose-on, not with --weight")
        merged = merge_with_base(args.model, args.base, args.weight)
        return save_merged(merged, args.out, args.overwrite)
    if not Path(args.choose_on).is_dir():
        raise DataError("folder not found (--choose-on)", file=args.choose_on)
    from helpers.tasks import validate_tasks

    tasks = validate_tasks(args.tasks, trainable=True) if args.tasks else trained_tasks(args.model)
    grid = sweep_weights(args.weights)
    finetuned, base = _load(args.model), _load(args.base)  # once: the sweep and the final merge share them
    sweep = merge_sweep(finetuned, base, grid, args.choose_on, tasks, "dev",
                        max_queries=args.max_queries, seed=args.seed)
    choice = choose_weight(sweep)
    print(sweep.markdown())
    print(f"chosen w = {choice.weight:g} ({choice.rule})")
    return save_merged(merge_with_base(finetuned, base, choice.weight), args.out, args.overwrite, sweep, choice)


@entry
def main(argv: Sequence[str] | None = None) -> int:
    from transformers.utils import logging as hf_logging

    args = build_parser().parse_args(argv)
    hf_logging.disable_progress_bar()  # a bar per weight load and shard write is noise next to our lines
    out = run(args)   # bad input: one line and exit 2 (helpers.cli.entry)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
