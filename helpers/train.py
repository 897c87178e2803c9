"""Multi-task instruction fine-tuning of a retriever on ``SentenceTransformerTrainer``.

What one run does (``train()`` / ``python -m helpers.train``):

1. **Data.** Training pairs per task (``load_training_pairs``): either the dataset builder's folders
   ``DATA/train/<task>/`` (HF ``datasets`` saved with ``save_to_disk``; columns ``query``, ``positive``,
   ``query_id``, ``positive_id``, ``flow_id``) or the user's own JSONL files, one
   ``{"task", "query", "positive"[, "negative"][, "positive_id"]}`` object a line. Each task becomes one
   named dataset with columns ``anchor``, ``positive`` (``negative``) and ``positive_id``; the id column is
   dropped before training (the trainer would otherwise tokenize it as text).
2. **Frequency-based downsampling** (``cap_per_positive: K``, optionally ``cap_per_task: {task: K}``).
   The paper balances over-represented objects but does not give its rule; ours is: *within a task, group
   the pairs by their positive object (``positive_id``; the positive text when no id is given); any object
   with more than K pairs keeps a seeded random K of them, objects with K or fewer keep all*. Order is
   preserved, the RNG is seeded by ``(seed, task)``, so the result depends only on the data, K and the seed.
   The log reports pairs and objects before/after per task and the head (most frequent objects) and tail
   (objects with one pair) of the distribution before and after.
3. **Budget.** ``train_pairs`` (profile) pairs are drawn (seeded; per-task quotas proportional to the
   downsampled task sizes) and the run takes ``ceil(train_pairs * epochs / batch_size)`` optimizer steps.
   Single-task and multi-task runs under the same profile therefore take the same number of steps on the
   same number of pairs; a pool smaller than the budget is repeated (more epochs), never cut short.
   ``budget_per_task: true`` multiplies the budget by the number of tasks instead, so a multi-task run sees
   about as many pairs of each task as the single-task run of that task (the paper's setup, where the
   multi-task model trains on the union of the single-task data).
4. **Optional hard negatives** (``hard_negatives: model | bm25``), mined within each task's object set:
   ``model`` uses ``sentence_transformers.util.mine_hard_negatives`` with the base encoder and the task
   prompts, skipping the top ``hn_range_min`` candidates and any candidate within ``hn_relative_margin`` of
   the positive's score; ``bm25`` ranks objects with ``rank_bm25``. Both exclude every known positive of the
   same query text (a query with several gold objects is never given one of them as a negative).
5. **Instructions.** Per-task instructions (``helpers.tasks``) go on the query side (and, with
   ``doc_instructions: true``, on the document side) through the trainer's ``prompts`` argument
   ``{task: {"anchor": ..., "positive": ..., "negative": ...}}``. The same strings are stored in the saved
   model's ``prompts`` under ``"<task>_query"`` / ``"<task>_document"`` so evaluation applies exactly the
   text training saw. Prompts are stored for every task in the registry (``workflow`` included).
6. **Batches.** Each batch holds pairs of one task only (LLM-Embedder's homogeneous in-batch negatives),
   because a ``DatasetDict`` goes through a multi-dataset batch sampler: ``proportional`` and
   ``round_robin`` use sentence-transformers' samplers, ``temperature`` uses
   :class:`TaskMixingBatchSampler` (task ``i`` drawn with weight ``n_i ** (1/T)``, seeded). Inside a task
   batches are ``NO_DUPLICATES`` (no text twice in a batch, so no false in-batch negatives).
   *Length-grouped batches are not used*: HF ``group_by_length`` is ignored once a batch sampler is set,
   and a length-bucketing sampler would have to run inside the no-duplicates, per-task samplers, where it
   would group queries of the same template (and so often the same objects), starving in-batch negatives.
   Dynamic padding to the longest sequence of each batch plus a fitted ``max_seq_length`` already removes
   most padding waste (see ``helpers.bench_train``).
7. **Loss.** ``MultipleNegativesRankingLoss(scale=20)`` (= temperature 0.05), ``gather_across_devices``
   when several processes train.
8. **CPU speed.** The word-embedding matrix is frozen by default (``freeze_embeddings``): for
   multilingual-e5-small it is 250k x 384 = 96M of the 118M parameters, so freezing removes most of the
   optimizer state and its update time, and rows of tokens never seen in this domain stay intact.
   ``max_seq_length`` is fitted to the data: the ``seq_len_percentile`` (98th) percentile of token lengths
   of prompted queries and documents, rounded up to a multiple of 8, capped by the profile.
9. **Bookkeeping.** Checkpoints every ``save_steps`` in ``OUT/checkpoints`` (``--resume`` continues from
   the latest), ``OUT/train_log.json`` (config, counts, loss per step, task per step, timings, pairs/s),
   optional dev evaluation during training (sentence-transformers' ``InformationRetrievalEvaluator`` per
   task with the task prompts), and the final model in ``OUT/model`` written atomically (built under a
   temporary name, renamed when complete) with a model card (``README.md``) and an evaluation report
   (``OUT/eval_report.json``) on the dev BEIR folders or the user's ``--corpora``.

Multi-GPU / multi-process: ``torchrun --nproc_per_node=N -m helpers.train ...`` runs DDP through the
Trainer. The global batch stays ``batch_size`` (``batch_size / N`` per process), the loss gathers
embeddings across processes, and :class:`TaskMixingBatchSampler` emits ``N`` consecutive batches of the
same task so every process of a step works on the same task (accelerate hands batch ``i`` to process
``i % N``), keeping the gathered negatives homogeneous. On CPU the backend is gloo.

CLI::

    python -m helpers.train --config configs/multitask.yaml --profile cpu --data data/generated/cpu-seed0
    python -m helpers.train --config configs/example.yaml --profile smoke \\
        --train-jsonl data/examples/train.jsonl --corpora data/examples/beir --out runs/example
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import sys
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from helpers.io import (OUTPUT_MARKER, DataError, atomic_dir, atomic_write_json, atomic_write_text, check_output_dir,
                        read_jsonl, write_output_marker)
from helpers.models import load_encoder, mark_without_pooler
from helpers.profiles import Profile, get_profile
from helpers.tasks import TASKS, TRAIN_TASKS, UnknownTaskError, get_task, task_prompts, validate_tasks

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir(profile: str) -> Path:
    """Where ``make data`` and the notebooks build the profile's dataset (data seed 0)."""
    from helpers.workspace import dataset_dir

    return dataset_dir(profile, 0)
MIXINGS = ("proportional", "round_robin", "temperature")
HARD_NEGATIVES = (None, "model", "bm25")
TEXT_COLUMNS = ("anchor", "positive", "negative")


# ----------------------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------------------

# field -> (type, may be null); values are coerced from any YAML spelling of a number
_NUMBER_FIELDS: dict[str, tuple[type, bool]] = {
    "temperature": (float, False), "loss_scale": (float, False), "learning_rate": (float, False),
    "warmup_ratio": (float, False), "weight_decay": (float, False), "hn_relative_margin": (float, False),
    "seq_len_percentile": (float, False), "epochs": (float, True),
    "num_negatives": (int, False), "hn_range_min": (int, False), "hn_range_max": (int, False),
    "seed": (int, False), "save_total_limit": (int, False),
    "cap_per_positive": (int, True), "train_pairs": (int, True), "batch_size": (int, True),
    "max_steps": (int, True), "max_seq_length": (int, True), "save_steps": (int, True),
    "eval_steps": (int, True), "max_eval_queries": (int, True), "train_top_layers": (int, True),
    "curve_queries": (int, False),
}


def _as_number(value, kind: type):
    """``value`` as ``kind`` (int or float), or None if it is not one.

    YAML 1.1 (PyYAML) reads ``5e-5`` and ``1e3`` as strings and ``true`` as a bool: strings that
    spell a finite number are accepted, booleans are not, and an int field takes a float only if it
    is whole (``1e3``, ``32.0``).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if kind is int:
        return int(value) if float(value).is_integer() else None
    return float(value)


def _where(source, lines, fld) -> tuple:
    """(file, line) of a config key; keys inherited through ``extends`` name their own file."""
    at = (lines or {}).get(fld)
    return at if isinstance(at, tuple) else (source, at)


def _read_config_yaml(path: Path, chain: tuple) -> tuple[dict, dict]:
    """A config file's keys after ``extends``, and where each key was set (key -> (file, line))."""
    import yaml

    if not path.is_file():
        raise DataError("config file not found", file=path)
    if path.resolve() in chain:
        raise DataError(f"'extends' loops back to {path.name}", file=chain[-1], field="extends")
    try:
        text = path.read_text(encoding="utf-8")
        d = yaml.safe_load(text) or {}
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", file=path) from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise DataError(f"invalid YAML: {e}", file=path, line=None if line is None else line + 1) from None
    if not isinstance(d, dict):
        raise DataError("a config must be a mapping of keys to values", file=path)
    lines = {k: (str(path), n) for k, n in _key_lines(text).items()}
    parent = d.pop("extends", None)
    if parent is None:
        return d, lines
    if not isinstance(parent, str) or not parent:
        raise DataError(f"extends must name a config in the same folder, got {parent!r}", file=path,
                        line=lines.get("extends", (None, None))[1], field="extends")
    base, base_lines = _read_config_yaml(path.parent / f"{parent}.yaml", chain + (path.resolve(),))
    for own in ("name", "description"):   # these describe the base, not this file
        base.pop(own, None)
    return {**base, **d}, {**base_lines, **lines}


def _key_lines(text: str) -> dict[str, int]:
    """Line (1-based) of each top-level key of a YAML mapping, for error messages."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


@dataclass
class TrainConfig:
    """One experiment. ``None`` means "take it from the profile" (or, for ``max_seq_length``, fit it)."""

    name: str = "run"
    description: str = ""
    base_model: str = "me5-small"
    tasks: list[str] = field(default_factory=lambda: list(TRAIN_TASKS))
    # instructions (helpers.tasks)
    query_instructions: bool = True
    doc_instructions: bool = False
    # mixing of task batches
    mixing: str = "proportional"
    temperature: float = 2.0
    # loss and optimiser
    loss_scale: float = 20.0
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    freeze_embeddings: bool = True
    train_top_layers: int | None = None      # train only the top N transformer layers (None: all)
    # frequency-based downsampling
    cap_per_positive: int | None = None
    cap_per_task: dict[str, int] | None = None
    # hard negatives
    hard_negatives: str | None = None
    num_negatives: int = 1
    hn_range_min: int = 0
    hn_range_max: int = 30
    hn_relative_margin: float = 0.05
    # budget (None: profile)
    train_pairs: int | str | None = None     # int, None (profile), "ablation" (profile's ablation budget) or "all"
    budget_per_task: bool = False            # budget x number of tasks (see the module docstring, 3.)
    batch_size: int | None = None
    epochs: float | None = None
    max_steps: int | None = None             # overrides the budget rule
    max_seq_length: int | None = None        # cap on the fitted length (None: profile)
    fit_seq_length: bool = True
    seq_len_per_task: bool = True            # fit (and cap) the length per task; batches are one task each
    pad_to_max_length: bool = False          # pad every batch to max_seq_length (the plain setup, for benchmarks)
    seq_len_percentile: float = 98.0
    # checkpoints / evaluation
    save_steps: int | None = None
    save_total_limit: int = 2
    eval_steps: int | None = None            # dev evaluation during training (None: profile; 0: off)
    curve_steps: list[int] = field(default_factory=list)  # learning curve: dev sample evaluated at these steps
    curve_queries: int = 200                 # the curve's fixed dev sample: first N query ids per task
    dev_split: str = "dev"
    eval_splits: list[str] = field(default_factory=lambda: ["dev"])   # final report; ["all"] = every split
    eval_tasks: list[str] | None = None      # final report tasks (None: trained tasks + workflow if present)
    compare_base: bool = False               # also report the base model in the final evaluation
    max_eval_queries: int | None = None      # None: profile
    # data
    data_dir: str | None = None
    train_jsonl: list[str] = field(default_factory=list)
    corpora: str | None = None
    seed: int = 42

    @classmethod
    def from_dict(cls, d: dict, source: str | None = None, lines: dict[str, int] | None = None) -> "TrainConfig":
        """A validated config; ``source`` and ``lines`` (key -> line in the file) name where a bad value is."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            file, line = _where(source, lines, unknown[0])
            raise DataError(f"unknown config key(s) {unknown}; valid keys: {', '.join(sorted(known))}",
                            file=file, line=line, field=unknown[0])
        cfg = cls(**d)
        cfg.validate(source, lines)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        """A config file; ``extends: <name>`` starts from ``<name>.yaml`` in the same folder (an
        ablation is its base plus the keys it changes). ``name`` defaults to the file's stem."""
        path = Path(path)
        d, lines = _read_config_yaml(path, ())
        d.setdefault("name", path.stem)
        return cls.from_dict(d, source=str(path), lines=lines)

    def validate(self, source: str | None = None, lines: dict[str, int] | None = None) -> None:
        """Check and normalise every field; a bad one raises :class:`DataError` naming it.

        Numbers are accepted in any YAML spelling (``5e-5`` reads as a string in YAML 1.1), so the
        trainer never meets a string where it computes.
        """
        lines = lines or {}

        def bad(msg, fld):
            file, line = _where(source, lines, fld)
            raise DataError(msg, file=file, line=line, field=fld)

        for name, (kind, nullable) in _NUMBER_FIELDS.items():
            value = getattr(self, name)
            if value is None and nullable:
                continue
            if name == "train_pairs" and value in ("all", "ablation"):
                continue
            number = _as_number(value, kind)
            if number is None:
                what = "an integer" if kind is int else "a number"
                extra = ", 'all', 'ablation'" if name == "train_pairs" else ""
                bad(f"{name} must be {what}{extra}{' or null' if nullable else ''}, got {value!r}", name)
            setattr(self, name, number)
        for name in ("name", "description", "base_model", "mixing", "dev_split"):
            if not isinstance(getattr(self, name), str):
                bad(f"{name} must be a string, got {getattr(self, name)!r}", name)
        for name in ("data_dir", "corpora", "hard_negatives"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                bad(f"{name} must be a string or null, got {getattr(self, name)!r}", name)

        if isinstance(self.tasks, str):
            self.tasks = [t.strip() for t in self.tasks.split(",") if t.strip()]
        try:
            self.tasks = validate_tasks(self.tasks, trainable=True)
        except UnknownTaskError as e:
            bad(str(e), "tasks")
        try:
            if self.eval_tasks is not None:
                self.eval_tasks = validate_tasks(self.eval_tasks)
        except UnknownTaskError as e:
            bad(str(e), "eval_tasks")
        if self.cap_per_task is not None and not isinstance(self.cap_per_task, dict):
            bad(f"cap_per_task must be a mapping of task to cap, got {self.cap_per_task!r}", "cap_per_task")
        for t, v in list((self.cap_per_task or {}).items()):
            try:
                get_task(t, trainable=True)
            except UnknownTaskError as e:
                bad(str(e), "cap_per_task")
            n = _as_number(v, int)
            if n is None or n < 1:
                bad(f"cap for task {t!r} must be a positive integer, got {v!r}", "cap_per_task")
            self.cap_per_task[t] = n
        if self.mixing not in MIXINGS:
            bad(f"mixing must be one of {', '.join(MIXINGS)}, got {self.mixing!r}", "mixing")
        if self.hard_negatives not in HARD_NEGATIVES:
            bad(f"hard_negatives must be null, 'model' or 'bm25', got {self.hard_negatives!r}", "hard_negatives")
        for name in ("cap_per_positive", "batch_size", "max_steps", "max_seq_length", "save_steps",
                     "max_eval_queries", "num_negatives", "save_total_limit", "train_pairs", "train_top_layers",
                     "curve_queries"):
            v = getattr(self, name)
            if isinstance(v, int) and v < 1:
                bad(f"{name} must be a positive integer{' or null' if _NUMBER_FIELDS[name][1] else ''}, "
                    f"got {v!r}", name)
        for name in ("temperature", "loss_scale", "learning_rate", "epochs"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                bad(f"{name} must be > 0, got {v!r}", name)
        for name in ("weight_decay", "hn_range_min", "eval_steps"):
            v = getattr(self, name)
            if v is not None and v < 0:
                bad(f"{name} must be >= 0, got {v!r}", name)
        if not 0 <= self.warmup_ratio < 1:
            bad(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}", "warmup_ratio")
        if not 0 < self.seq_len_percentile <= 100:
            bad(f"seq_len_percentile must be in (0, 100], got {self.seq_len_percentile!r}", "seq_len_percentile")
        if self.hn_range_max <= self.hn_range_min:
            bad(f"hn_range_max must be > hn_range_min ({self.hn_range_min}), got {self.hn_range_max!r}",
                "hn_range_max")
        for name in ("budget_per_task", "query_instructions", "doc_instructions", "freeze_embeddings",
                     "fit_seq_length", "seq_len_per_task", "pad_to_max_length", "compare_base"):
            if not isinstance(getattr(self, name), bool):
                bad(f"{name} must be true or false, got {getattr(self, name)!r}", name)
        for name in ("train_jsonl", "eval_splits"):
            v = getattr(self, name)
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                bad(f"{name} must be a list of strings, got {getattr(self, name)!r}", name)
            setattr(self, name, v)
        steps = self.curve_steps
        numbers = [_as_number(x, int) for x in steps] if isinstance(steps, list) else [None]
        if any(n is None or n < 0 for n in numbers):
            bad(f"curve_steps must be a list of step numbers >= 0, got {steps!r}", "curve_steps")
        self.curve_steps = sorted(set(numbers))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model_path: Path | None          # None on non-zero ranks of a multi-process run
    out_dir: Path
    log: dict

    @property
    def dev_metrics(self) -> dict:
        return self.log.get("eval", {}).get("final", {})


def _as_config(config: dict | TrainConfig | str | os.PathLike) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return replace(config)
    if isinstance(config, dict):
        return TrainConfig.from_dict(dict(config))
    return TrainConfig.from_yaml(config)


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------

def _rows_to_dataset(rows: dict[str, list]):
    from datasets import Dataset

    cols = ["anchor", "positive"] + (["negative"] if "negative" in rows else []) + ["positive_id"]
    return Dataset.from_dict({c: rows[c] for c in cols})


def _read_pairs_jsonl(files: Sequence[str | os.PathLike], tasks: list[str] | None) -> dict[str, dict[str, list]]:
    rows: dict[str, dict[str, list]] = {}
    has_neg: dict[str, bool] = {}
    for path in files:
        for lineno, rec in read_jsonl(path, required=("task", "query", "positive")):
            task = rec["task"]
            if not isinstance(task, str) or task not in TASKS:
                raise DataError(f"unknown task {task!r}; valid tasks: {', '.join(TRAIN_TASKS)}",
                                file=path, line=lineno, field="task")
            if not TASKS[task].trainable:
                raise DataError(f"task {task!r} is evaluation-only; trainable tasks: {', '.join(TRAIN_TASKS)}",
                                file=path, line=lineno, field="task")
            for key in ("query", "positive", "negative", "positive_id"):
                if key in rec and rec[key] is not None and not isinstance(rec[key], str):
                    raise DataError(f"expected a string, got {type(rec[key]).__name__}",
                                    file=path, line=lineno, field=key)
            neg = rec.get("negative")
            if "negative" in rec and (neg is None or not neg.strip()):
                raise DataError("empty value", file=path, line=lineno, field="negative")
            if tasks is not None and task not in tasks:
                continue
            r = rows.setdefault(task, {"anchor": [], "positive": [], "negative": [], "positive_id": []})
            if task in has_neg and has_neg[task] != (neg is not None):
                raise DataError(f"either every line of task {task!r} has a 'negative' or none does",
                                file=path, line=lineno, field="negative")
            has_neg[task] = neg is not None
            r["anchor"].append(rec["query"])
            r["positive"].append(rec["positive"])
            r["negative"].append(neg)
            r["positive_id"].append(rec.get("positive_id") or rec["positive"])
    for task, r in rows.items():
        if not has_neg.get(task):
            del r["negative"]
    return rows


def load_training_pairs(source: str | os.PathLike | Sequence[str | os.PathLike],
                        tasks: Iterable[str] | None = None) -> dict:
    """Training pairs per task: ``{task: Dataset(anchor, positive[, negative], positive_id)}``.

    ``source`` is the dataset builder's output folder (reads ``source/train/<task>/``, saved with
    ``Dataset.save_to_disk``), or one or more JSONL files of ``{"task", "query", "positive"}`` lines
    (optional ``"negative"``, ``"positive_id"``). ``tasks=None`` means every trainable task found.
    Bad lines raise :class:`~helpers.io.DataError` naming the file, line and field; unknown task names list
    the valid ones.
    """
    tasks = None if tasks is None else validate_tasks(tasks, trainable=True)
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from datasets import load_from_disk

        root = Path(source)
        train_root = root / "train" if (root / "train").is_dir() else root
        wanted = tasks if tasks is not None else [t for t in TRAIN_TASKS if (train_root / t).is_dir()]
        if not wanted:
            raise DataError(f"no task folder ({', '.join(TRAIN_TASKS)}) found", file=train_root)
        out = {}
        for t in wanted:
            folder = train_root / t
            if not folder.is_dir():
                raise DataError(f"no training data for task {t!r} (expected a saved dataset folder)", file=folder)
            ds = load_from_disk(str(folder))
            for col in ("query", "positive"):
                if col not in ds.column_names:
                    raise DataError(f"missing column; columns are {ds.column_names}", file=folder, field=col)
            ids = ds["positive_id"] if "positive_id" in ds.column_names else ds["positive"]
            rows = {"anchor": list(ds["query"]), "positive": list(ds["positive"]),
                    "positive_id": [str(i) for i in ids]}
            if "negative" in ds.column_names:
                rows["negative"] = list(ds["negative"])
            if not rows["anchor"]:
                raise DataError(f"task {t!r} has no training pairs", file=folder)
            out[t] = _rows_to_dataset(rows)
        return out

    files = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not files:
        raise DataError("no training JSONL file given")
    rows = _read_pairs_jsonl(files, tasks)
    names = ", ".join(str(f) for f in files)
    if tasks is not None:
        for t in tasks:
            if t not in rows:
                raise DataError(f"no training pairs for task {t!r} in {names}")
    if not rows:
        raise DataError(f"no training pairs in {names}")
    order = tasks if tasks is not None else [t for t in TRAIN_TASKS if t in rows]
    return {t: _rows_to_dataset(rows[t]) for t in order}


def _task_rng(seed: int, task: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{task}:{purpose}".encode())])


def frequency_summary(positive_ids: Sequence[str], head: int = 5) -> dict:
    """Pairs and objects, the ``head`` most frequent objects and the tail (objects with one pair)."""
    c = Counter(positive_ids)
    top = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:head]
    return {"pairs": len(positive_ids), "objects": len(c),
            "max_per_object": max(c.values()) if c else 0,
            "head": [[k, v] for k, v in top],
            "head_share": round(sum(v for _, v in top) / max(1, len(positive_ids)), 4),
            "tail_objects": sum(1 for v in c.values() if v == 1)}


def cap_indices(positive_ids: Sequence[str], cap: int, seed: int, task: str = "") -> list[int]:
    """Indices kept by frequency-based downsampling: at most ``cap`` pairs per positive object.

    Objects with more than ``cap`` pairs keep a random ``cap`` of them (RNG seeded by ``seed`` and
    ``task``); the others keep all. Returned indices are sorted, so the original order is preserved.
    """
    if cap < 1:
        raise ValueError("cap must be >= 1")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, pid in enumerate(positive_ids):
        groups[pid].append(i)
    rng = _task_rng(seed, task, "cap")
    keep: list[int] = []
    for pid in sorted(groups):
        idx = groups[pid]
        if len(idx) > cap:
            idx = sorted(rng.choice(idx, size=cap, replace=False).tolist())
        keep.extend(idx)
    return sorted(keep)


def downsample(datasets: dict, cap: int | None, seed: int, cap_per_task: dict[str, int] | None = None,
               head: int = 5) -> tuple[dict, dict]:
    """Apply :func:`cap_indices` per task; returns ``(datasets, report)`` with before/after summaries."""
    report = {}
    out = {}
    for task, ds in datasets.items():
        k = (cap_per_task or {}).get(task, cap)
        before = frequency_summary(ds["positive_id"], head)
        if k is not None:
            ds = ds.select(cap_indices(ds["positive_id"], k, seed, task))
        out[task] = ds
        report[task] = {"cap": k, "before": before, "after": frequency_summary(ds["positive_id"], head)}
    return out, report


def run_budget(cfg: "TrainConfig", prof, n_tasks: int) -> int | None:
    """Pairs a run draws: the config's ``train_pairs`` or the profile's, times ``n_tasks`` with
    ``budget_per_task``; ``None`` (``train_pairs: all``) keeps every pair."""
    if cfg.train_pairs == "all":
        return None
    if cfg.train_pairs == "ablation":
        budget = prof.ablation_pairs or prof.train_pairs
    else:
        budget = cfg.train_pairs or prof.train_pairs
    if budget is not None and cfg.budget_per_task:
        budget *= n_tasks
    return budget


def sample_budget(datasets: dict, budget: int | None, seed: int) -> tuple[dict, dict]:
    """Draw ``budget`` pairs in all, per task in proportion to its size (largest remainder), seeded.

    A task smaller than its quota keeps everything. ``budget=None`` keeps all.
    """
    sizes = {t: len(d) for t, d in datasets.items()}
    total = sum(sizes.values())
    if budget is None or budget >= total:
        return dict(datasets), dict(sizes)
    raw = {t: budget * n / total for t, n in sizes.items()}
    quota = {t: int(math.floor(v)) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: (-(raw[t] - quota[t]), t))[: budget - sum(quota.values())]:
        quota[t] += 1
    out = {}
    for t, ds in datasets.items():
        q = max(1, min(quota[t], len(ds)))
        idx = np.sort(_task_rng(seed, t, "budget").choice(len(ds), size=q, replace=False))
        out[t] = ds.select(idx.tolist())
    return out, {t: len(d) for t, d in out.items()}


# ----------------------------------------------------------------------------------------------------------
# hard negatives
# ----------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def _bm25_tokens(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def mine_bm25_negatives(ds, num_negatives: int = 1, range_min: int = 0, range_max: int = 30, seed: int = 0):
    """BM25 hard negatives among the task's own positives (``rank_bm25``), known positives excluded.

    For each distinct query text, objects are ranked by BM25; ranks ``[range_min, range_max)`` that are not
    a positive of that query are candidates, the top ``num_negatives`` are kept. Rows with too few
    candidates are dropped (counted in the returned stats).
    """
    from datasets import Dataset
    from rank_bm25 import BM25Okapi

    docs = list(dict.fromkeys(ds["positive"]))
    doc_idx = {d: i for i, d in enumerate(docs)}
    bm25 = BM25Okapi([_bm25_tokens(d) or ["_"] for d in docs])
    positives_of: dict[str, set[int]] = defaultdict(set)
    for a, p in zip(ds["anchor"], ds["positive"]):
        positives_of[a].add(doc_idx[p])
    chosen: dict[str, list[int]] = {}
    for a, pos in positives_of.items():
        scores = bm25.get_scores(_bm25_tokens(a))
        order = np.lexsort((np.arange(len(docs)), -scores))   # score desc, then index
        cands = [int(i) for i in order if int(i) not in pos][range_min:range_max]
        chosen[a] = cands[:num_negatives]
    cols: dict[str, list] = {"anchor": [], "positive": []}
    neg_cols = ["negative"] if num_negatives == 1 else [f"negative_{i + 1}" for i in range(num_negatives)]
    for c in neg_cols:
        cols[c] = []
    cols["positive_id"] = []
    dropped = 0
    for a, p, pid in zip(ds["anchor"], ds["positive"], ds["positive_id"]):
        negs = chosen[a]
        if len(negs) < num_negatives:
            dropped += 1
            continue
        cols["anchor"].append(a)
        cols["positive"].append(p)
        for c, n in zip(neg_cols, negs):
            cols[c].append(docs[n])
        cols["positive_id"].append(pid)
    return Dataset.from_dict(cols), {"method": "bm25", "rows": len(cols["anchor"]), "dropped": dropped}


def mine_model_negatives(ds, model, query_prompt: str, doc_prompt: str, num_negatives: int = 1,
                         range_min: int = 0, range_max: int = 30, relative_margin: float = 0.05,
                         batch_size: int = 64):
    """Hard negatives from the base encoder with ``sentence_transformers.util.mine_hard_negatives``."""
    from sentence_transformers.util import mine_hard_negatives

    n_objects = len(set(ds["positive"]))
    range_max = max(min(range_max, n_objects - 1), range_min + num_negatives)
    pid_of = dict(zip(ds["positive"], ds["positive_id"]))
    mined = mine_hard_negatives(
        ds.select_columns(["anchor", "positive"]), model, anchor_column_name="anchor",
        positive_column_name="positive", range_min=range_min, range_max=range_max,
        relative_margin=relative_margin, num_negatives=num_negatives, sampling_strategy="top",
        query_prompt=query_prompt or None, corpus_prompt=doc_prompt or None,
        output_format="triplet" if num_negatives == 1 else "n-tuple", batch_size=batch_size, verbose=False)
    mined = mined.add_column("positive_id", [pid_of[p] for p in mined["positive"]])
    return mined, {"method": "model", "rows": len(mined), "dropped": len(ds) - len(mined)}


# ----------------------------------------------------------------------------------------------------------
# batch sampling
# ----------------------------------------------------------------------------------------------------------

def temperature_weights(sizes: Sequence[int], temperature: float) -> np.ndarray:
    """Sampling weights ``n_i ** (1/T)``, normalised. ``T=1``: proportional; large ``T``: uniform."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    s = np.asarray(sizes, dtype=np.float64)
    if (s < 0).any() or s.sum() <= 0:
        raise ValueError(f"sizes must be >= 0 with a positive sum, got {list(sizes)}")
    w = np.where(s > 0, s ** (1.0 / temperature), 0.0)
    return w / w.sum()


def _sampler_base():
    from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler
    return MultiDatasetDefaultBatchSampler


try:  # the class must be importable at module level (training args are pickled with checkpoints)
    _Base = _sampler_base()
except Exception:  # pragma: no cover - sentence-transformers missing or moved
    _Base = object


class TaskMixingBatchSampler(_Base):
    """Multi-dataset batch sampler: every batch from one task; tasks mixed by ``mode``.

    ``mode="temperature"``: each group of batches picks task ``i`` with probability ``n_i ** (1/T)`` (normalised;
    ``n_i`` = pairs of task ``i``), drawn from a NumPy RNG seeded with ``seed + epoch``; a task whose batches run
    out starts a new reshuffled pass, so small tasks can be up-sampled. ``"proportional"``: every batch of every
    task once, in seeded random order. ``"round_robin"``: tasks in turn until the smallest runs out.
    ``group_size``: consecutive batches of the same task per draw (= number of processes under DDP, so the
    processes of one optimizer step all train on the same task). Length: the sum of the per-task batch counts
    (``min * n_tasks`` for round robin), rounded down to a multiple of ``group_size``.
    """

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, temperature: float = 2.0,
                 mode: str = "temperature", group_size: int = 1) -> None:
        super().__init__(dataset, batch_samplers=batch_samplers, generator=generator, seed=seed)
        if mode not in MIXINGS:
            raise ValueError(f"mode must be one of {MIXINGS}")
        self.mode = mode
        self.temperature = float(temperature)
        self.group_size = max(1, int(group_size))
        self.sizes = [len(d) for d in dataset.datasets]
        self.weights = temperature_weights(self.sizes, self.temperature)

    def _plan(self) -> list[int]:
        g = self.group_size
        rng = np.random.default_rng(int(self.seed or 0) + int(self.epoch))
        lens = [len(s) // g for s in self.batch_samplers]
        if self.mode == "round_robin":
            return list(range(len(lens))) * min(lens)
        if self.mode == "proportional":
            plan = [i for i, n in enumerate(lens) for _ in range(n)]
            return [plan[j] for j in rng.permutation(len(plan))]
        return rng.choice(len(lens), size=sum(lens), p=self.weights).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        iters: dict[int, Iterator] = {}
        passes = defaultdict(int)

        def next_batch(i: int) -> list[int]:
            for _ in range(3):
                if i not in iters:
                    sampler = self.batch_samplers[i]
                    if hasattr(sampler, "set_epoch"):
                        sampler.set_epoch(self.epoch * 1009 + passes[i])
                    passes[i] += 1
                    iters[i] = iter(sampler)
                try:
                    return next(iters[i])
                except StopIteration:
                    del iters[i]
            raise RuntimeError(f"batch sampler of dataset {i} yields no batch")

        for i in self._plan():
            for _ in range(self.group_size):
                yield [idx + offsets[i] for idx in next_batch(i)]

    def __len__(self) -> int:
        g = self.group_size
        lens = [len(s) // g for s in self.batch_samplers]
        n = min(lens) * len(lens) if self.mode == "round_robin" else sum(lens)
        return n * g


class _MixingFactory:
    """Picklable callable handed to the training arguments as ``multi_dataset_batch_sampler``."""

    def __init__(self, mode: str, temperature: float, group_size: int):
        self.mode, self.temperature, self.group_size = mode, temperature, group_size

    def __call__(self, dataset, batch_samplers, generator=None, seed=0):
        return TaskMixingBatchSampler(dataset, batch_samplers, generator=generator, seed=seed,
                                      temperature=self.temperature, mode=self.mode, group_size=self.group_size)


# ----------------------------------------------------------------------------------------------------------
# model helpers
# ----------------------------------------------------------------------------------------------------------

def freeze_unused_pooler(model) -> int:
    """Freeze the backbone's pooler (BERT's CLS dense layer), which mean pooling never uses.

    Its parameters get no gradient, which DDP would otherwise report as unused parameters.
    """
    pooler = getattr(model[0].auto_model, "pooler", None)
    if pooler is None:
        return 0
    n = 0
    for p in pooler.parameters():
        p.requires_grad_(False)
        n += p.numel()
    return n


def freeze_word_embeddings(model) -> int:
    """Freeze the first module's word-embedding matrix; returns the number of frozen parameters."""
    emb = model[0].auto_model.get_input_embeddings()
    emb.weight.requires_grad_(False)
    return int(emb.weight.numel())


def freeze_lower_layers(model, top: int) -> int:
    """Train only the top ``top`` transformer layers: freeze the embeddings and every layer below.

    A cheaper step: no gradient flows below the first trainable layer, so the backward pass stops
    there. Returns the number of newly frozen parameters.
    """
    backbone = model[0].auto_model
    layers = list(getattr(getattr(backbone, "encoder", None), "layer", []) or [])
    if not layers:
        raise DataError("train_top_layers needs a BERT-style encoder (encoder.layer); this model has none",
                        field="train_top_layers")
    frozen = [backbone.embeddings] + layers[:max(0, len(layers) - top)]
    n = 0
    for module in frozen:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                n += p.numel()
    return n


def _round_len(raw: float, cap: int) -> int:
    return int(min(cap, max(16, 8 * math.ceil(raw / 8))))


def fit_max_seq_length(model, datasets: dict, prompts_by_task: dict[str, dict[str, str]], cap: int,
                       percentile: float = 98.0, sample: int = 2000, seed: int = 0) -> tuple[int, dict]:
    """Token length at ``percentile`` over prompted texts of every column, rounded up to 8, capped.

    The report's ``per_task`` is the same rule per task, taken over the column that needs most (a
    query and its short document are padded separately, so the long column sets the length).
    """
    tok = model.tokenizer
    lengths: list[int] = []
    per_col: dict[str, float] = {}
    per_task: dict[str, int] = {}
    by_task: dict[str, list[int]] = {}
    for task, ds in datasets.items():
        n = len(ds)
        idx = np.sort(_task_rng(seed, task, "seqlen").choice(n, size=min(n, sample), replace=False)).tolist()
        for col in ds.column_names:
            if col not in prompts_by_task[task]:
                continue
            texts = [prompts_by_task[task][col] + t for t in ds.select(idx)[col]]
            ls = [len(x) for x in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]]
            per_col[f"{task}.{col}"] = float(np.percentile(ls, percentile))
            lengths.extend(ls)
            by_task.setdefault(task, []).extend(ls)
        cols = [v for k, v in per_col.items() if k.startswith(f"{task}.")]
        per_task[task] = _round_len(max(cols), cap) if cols else cap
    raw = float(np.percentile(lengths, percentile)) if lengths else cap
    fitted = _round_len(raw, cap)
    cut = {t: float(np.mean(np.asarray(ls) > per_task[t])) for t, ls in by_task.items()}
    return fitted, {"percentile": percentile, "raw": raw, "cap": cap, "fitted": fitted,
                    "per_task": per_task, "per_task_truncated_share": cut,
                    "max": int(max(lengths)) if lengths else 0, "per_column": per_col,
                    "truncated_share": float(np.mean(np.asarray(lengths) > fitted)) if lengths else 0.0}


# ----------------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------------

def find_eval_folder(root: str | os.PathLike, task: str, split: str) -> Path | None:
    """``root/<task>/<split>/`` (the builder's layout) or ``root/<task>/`` itself if it is a BEIR folder."""
    root = Path(root)
    for cand in (root / task / split, root / "beir" / task / split):
        if (cand / "corpus.jsonl").is_file():
            return cand
    if split in ("dev", "test", "-") and (root / task / "corpus.jsonl").is_file():
        return root / task
    return None


def _splits_of(root: Path, task: str) -> list[str]:
    for base in (root / task, root / "beir" / task):
        if base.is_dir():
            if (base / "corpus.jsonl").is_file():
                return ["-"]
            return sorted(p.name for p in base.iterdir() if (p / "corpus.jsonl").is_file())
    return []


def _load_eval(folder: Path, max_queries: int | None):
    from helpers.beir import load_beir

    corpus, queries, qrels = load_beir(folder, split="test")
    if max_queries and len(queries) > max_queries:
        keep = sorted(queries)[:max_queries]
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
    return corpus, queries, qrels


def build_ir_evaluators(root: Path, tasks: list[str], split: str, prompts: dict[str, str],
                        max_queries: int | None):
    """sentence-transformers ``InformationRetrievalEvaluator`` per task with a dev folder, task prompts applied."""
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    from helpers.retrieval import doc_text

    evaluators = []
    for task in tasks:
        folder = find_eval_folder(root, task, split)
        if folder is None:
            continue
        corpus, queries, qrels = _load_eval(folder, max_queries)
        k = TASKS[task].k
        evaluators.append(InformationRetrievalEvaluator(
            queries=queries, corpus={d: doc_text(v) for d, v in corpus.items()},
            relevant_docs={q: {d for d, g in r.items() if g > 0} for q, r in qrels.items()},
            precision_recall_at_k=sorted({k, 10}), accuracy_at_k=[1], mrr_at_k=[10], ndcg_at_k=[10],
            map_at_k=[100], name=f"{split}_{task}", write_csv=False, batch_size=64,
            query_prompt=prompts.get(f"{task}_query") or None,
            corpus_prompt=prompts.get(f"{task}_document") or None))
    return evaluators


def evaluate_model(model, root: str | os.PathLike, tasks: list[str], splits: list[str],
                   max_queries: int | None = None) -> dict:
    """``{split: {task: {"recall@k": ..., "n_queries": ..., "n_docs": ...}}}`` with the project's harness.

    Uses ``helpers.retrieval.DenseRetriever`` with the model's ``"<task>_query"``/``"<task>_document"`` prompts
    (so what is reported is what the evaluation notebooks compute) and ``helpers.metrics.evaluate_run``.
    """
    from helpers.metrics import evaluate_run
    from helpers.retrieval import DenseRetriever, prompt_names_for

    root = Path(root)
    out: dict[str, dict] = {}
    for task in tasks:
        task_splits = _splits_of(root, task) if splits == ["all"] else splits
        for split in task_splits:
            folder = find_eval_folder(root, task, split)
            if folder is None:
                continue
            corpus, queries, qrels = _load_eval(folder, max_queries)
            qn, dn = prompt_names_for(model, task)
            retr = DenseRetriever(model, query_prompt_name=qn, doc_prompt_name=dn, show_progress=False,
                                  cache_dir="")
            run = retr.index(corpus).search(queries, k=max(15, TASKS[task].k))
            means, _ = evaluate_run(qrels, run, ks=sorted({1, 5, 10, 15, TASKS[task].k}))
            means = {k: round(float(v), 4) for k, v in means.items()}
            means.update(n_queries=len(queries), n_docs=len(corpus), headline=TASKS[task].metric_key,
                         label=TASKS[task].label, folder=str(folder))
            out.setdefault(split, {})[task] = means
    return out


def _report_markdown(report: dict) -> str:
    lines = ["| model | split | task | metric | value | queries | docs |", "|---|---|---|---|---|---|---|"]
    for model_name, by_split in report.items():
        for split, by_task in by_split.items():
            for task, m in by_task.items():
                lines.append(f"| {model_name} | {split} | {task} | {m['label']} | {m[m['headline']]:.4f} "
                             f"| {m['n_queries']} | {m['n_docs']} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------
# trainer plumbing
# ----------------------------------------------------------------------------------------------------------

def _trainer_classes():
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class CountingTrainer(SentenceTransformerTrainer):
        """Counts pairs and tokens per step and task (for pairs/s and the task-per-step log)."""

        step_stats: list

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            training = model.training
            if training:
                task = inputs.get("dataset_name")
                n = int(inputs["anchor_input_ids"].shape[0]) if "anchor_input_ids" in inputs else 0
                toks = sum(int(v.sum()) for k, v in inputs.items() if k.endswith("_attention_mask"))
                padded = sum(int(v.numel()) for k, v in inputs.items() if k.endswith("_attention_mask"))
                started = time.perf_counter()
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
            if training:
                loss = result[0] if isinstance(result, tuple) else result
                self.step_stats.append((task, n, toks, padded, started, float(loss.detach())))
            return result

    @dataclass
    class TaskLengthCollator(SentenceTransformerDataCollator):
        """Cuts each batch's texts at its task's length (batches hold one task each)."""

        task_lengths: dict = field(default_factory=dict)

        def __call__(self, features):
            if self.task_lengths and features and "dataset_name" in features[0]:
                self.max_length = self.task_lengths.get(features[0]["dataset_name"])
            return super().__call__(features)

    CountingTrainer.data_collator_class = TaskLengthCollator

    class LearningCurve(TrainerCallback):
        """Evaluates the dev sample at the given steps; ``points`` records each with the training time
        so far (evaluation excluded), so the curve can be read against steps and wall time."""

        def __init__(self, steps, evaluate):
            self.steps, self.evaluate = set(steps), evaluate
            self.points: list[dict] = []
            self.t0, self.eval_seconds = None, 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()
            if 0 in self.steps and state.global_step == 0:
                self._point(0)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in self.steps and state.is_world_process_zero:
                self._point(state.global_step)

        def _point(self, step: int) -> None:
            t = time.perf_counter()
            dev = self.evaluate()
            took = time.perf_counter() - t
            self.points.append({"step": step, "train_seconds": round(t - self.t0 - self.eval_seconds, 1),
                                "eval_seconds": round(took, 1), "dev": dev})
            self.eval_seconds += took

    class QuietProgress(ProgressCallback):
        """tqdm bar, but the loss dict is printed only every ``every`` logs (we log every step)."""

        def __init__(self, every: int = 10):
            super().__init__()
            self.every = max(1, every)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.global_step % self.every == 0 or state.global_step == state.max_steps or \
                    any(k.startswith("eval") for k in (logs or {})):
                super().on_log(args, state, control, logs=logs, **kwargs)

    class StopAtStep(TrainerCallback):
        """Raise :class:`SimulatedKill` at the end of step ``step``: simulates a kill (for tests)."""

        def __init__(self, step: int):
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= self.step:
                raise SimulatedKill(f"stopped at step {state.global_step}")

    class SaveStepStats(TrainerCallback):
        """Writes every step's task, counts and loss so far into each checkpoint, so a resumed run can
        report the whole run, not only the steps after the resume."""

        def __init__(self, trainer, prior: list | None):
            self.trainer, self.prior = trainer, prior

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                atomic_write_json(folder / STEP_STATS_FILE, {
                    "complete": self.prior is not None,
                    "steps": (self.prior or []) + [_step_record(s) for s in self.trainer.step_stats]})

    return CountingTrainer, QuietProgress, StopAtStep, SaveStepStats, LearningCurve


STEP_STATS_FILE = "helpers_step_stats.json"


def _step_record(stat: tuple) -> list:
    """``[task, pairs, tokens, padded tokens, loss]`` of one step (the timestamp is this process's only)."""
    return [stat[0], stat[1], stat[2], stat[3], stat[5]]


def _load_step_stats(checkpoint: str | os.PathLike) -> list | None:
    """The steps up to ``checkpoint`` as :func:`_step_record` lists; None when the checkpoint predates them."""
    path = Path(checkpoint) / STEP_STATS_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved["steps"] if isinstance(saved, dict) and saved.get("complete") else None


def _drop_if_empty(out: Path, ckpt_dir: Path, created_out: bool) -> None:
    """After a failed run, remove the folders it created that hold nothing (no checkpoint was saved)."""
    with contextlib.suppress(OSError):
        if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
            ckpt_dir.rmdir()
    if created_out and out.is_dir() and {p.name for p in out.iterdir()} <= {OUTPUT_MARKER}:
        shutil.rmtree(out, ignore_errors=True)


class SimulatedKill(RuntimeError):
    """Raised by :func:`stop_at_step_callback` to interrupt a run the way a kill would."""


def stop_at_step_callback(step: int):
    """A Trainer callback that interrupts training after ``step`` steps (a simulated kill)."""
    return _trainer_classes()[2](step)


def _world() -> tuple[int, int]:
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def _latest_checkpoint(ckpt_dir: Path) -> str | None:
    if not ckpt_dir.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(ckpt_dir))


def _model_card(cfg: TrainConfig, prof: Profile, prompts: dict, log: dict) -> str:
    import yaml

    lines = [f"# {cfg.name}: multi-task retriever fine-tuned from `{cfg.base_model}`", ""]
    if cfg.description:
        lines += [cfg.description.strip(), ""]
    lines += ["Fine-tuned with `helpers.train` (sentence-transformers `SentenceTransformerTrainer`, "
              f"MultipleNegativesRankingLoss, scale {cfg.loss_scale}, homogeneous per-task batches, "
              f"`{cfg.mixing}` mixing) under the `{prof.name}` profile.", "",
              "## Prompts", "", "Use the per-task prompt names when encoding:", "",
              "| name | text |", "|---|---|"]
    for k in sorted(prompts):
        lines.append(f"| `{k}` | `{prompts[k]}` |")
    lines += ["", "```python", "from sentence_transformers import SentenceTransformer",
              "model = SentenceTransformer('PATH')",
              "q = model.encode(['notify the manager when a P1 incident opens'], prompt_name='step_query')",
              "d = model.encode(['Send Email (action): ...'], prompt_name='step_document')", "```", "",
              "## Training data", "", "| task | pairs before cap | objects | after cap | used | steps |",
              "|---|---|---|---|---|---|"]
    data = log.get("data", {})
    for t in cfg.tasks:
        ds = data.get("downsampling", {}).get(t, {})
        lines.append(f"| {t} | {ds.get('before', {}).get('pairs', '?')} | {ds.get('before', {}).get('objects', '?')} "
                     f"| {ds.get('after', {}).get('pairs', '?')} | {data.get('used', {}).get(t, '?')} "
                     f"| {log.get('training', {}).get('steps_per_task', {}).get(t, '?')} |")
    tr = log.get("training", {})
    res = log.get("resolved", {})
    lines += ["", f"Steps: {tr.get('global_step')}, batch size {res.get('batch_size')}, "
              f"trained at max_seq_length {res.get('max_seq_length')} (fitted to the training texts), "
              f"saved with {res.get('inference_max_seq_length')} (the base model's) for inference, "
              f"{tr.get('pairs_per_second', 0):.1f} pairs/s on {platform.machine()} "
              f"({tr.get('world_size', 1)} process(es)).", ""]
    ev = log.get("eval", {})
    if ev.get("final"):
        lines += ["## Evaluation", "", _report_markdown({"fine-tuned": ev["final"],
                                                         **({"base": ev["base"]} if ev.get("base") else {})})]
    lines += ["## Config", "", "```yaml", yaml.safe_dump(cfg.as_dict(), sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------------

def train(config: dict | TrainConfig | str | os.PathLike, profile: str | Profile | None = None,
          out_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None, *,
          train_jsonl: Sequence[str | os.PathLike] | None = None, corpora: str | os.PathLike | None = None,
          resume: bool = False, seed: int | None = None, callbacks: list | None = None,
          show_progress: bool = True, evaluate: bool = True, overwrite: bool = False) -> TrainResult:
    """Fine-tune one retriever; returns :class:`TrainResult` (final model path, log dict).

    ``config``: a :class:`TrainConfig`, a dict of its fields or a YAML path. ``profile``: smoke / cpu / full
    (default ``$CASE_STUDY_PROFILE`` or cpu). ``data_dir`` (builder output) or ``train_jsonl`` (user files)
    override the config's data; ``corpora`` is a folder of BEIR folders per task for evaluation (default:
    ``data_dir/beir``). ``resume=True`` continues from the latest checkpoint in ``out_dir/checkpoints``.
    ``out_dir`` must be new, empty or a folder an earlier run created (marker file); any other folder is
    refused unless ``overwrite`` (then only this run's own entries are replaced).
    """
    t_start = time.perf_counter()
    cfg = _as_config(config)
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    if seed is not None:
        cfg.seed = seed
    if train_jsonl:
        cfg.train_jsonl, cfg.data_dir = [str(p) for p in train_jsonl], None
    elif data_dir is not None:
        cfg.data_dir, cfg.train_jsonl = str(data_dir), []
    if corpora is not None:
        cfg.corpora = str(corpora)
    cfg.validate()
    cfg.train_jsonl = [str(_resolve_path(p)) for p in cfg.train_jsonl]
    cfg.corpora = str(_resolve_path(cfg.corpora)) if cfg.corpora else None
    cfg.data_dir = str(_resolve_path(cfg.data_dir)) if cfg.data_dir else None
    out = Path(out_dir) if out_dir else REPO_ROOT / "runs" / f"{cfg.name}-{prof.name}"
    world_size, rank = _world()
    is_main = rank == 0
    # Bad paths fail here, before data or a model is loaded and before any folder is created.
    if is_main:
        check_output_dir(out, overwrite=overwrite)
    for f in cfg.train_jsonl:
        if not Path(f).is_file():
            raise DataError("training file not found", file=f)
    if cfg.corpora and not Path(cfg.corpora).is_dir():
        raise DataError("evaluation corpora folder not found", file=cfg.corpora)

    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers, MultiDatasetBatchSamplers
    from transformers import set_seed

    set_seed(cfg.seed)
    timings: dict[str, float] = {}

    # ---- data ------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    if cfg.train_jsonl:
        source: Any = cfg.train_jsonl
        eval_root = Path(cfg.corpora) if cfg.corpora else None
    else:
        ddir = Path(cfg.data_dir) if cfg.data_dir else default_data_dir(prof.name)
        if not ddir.is_dir():
            raise DataError("training data folder not found: build it with `python -m helpers.data build` "
                            "or pass --data DIR / --train-jsonl FILE", file=ddir)
        source = ddir
        eval_root = Path(cfg.corpora) if cfg.corpora else (ddir / "beir" if (ddir / "beir").is_dir() else None)
    raw = load_training_pairs(source, cfg.tasks)
    loaded = {t: len(d) for t, d in raw.items()}
    capped, ds_report = downsample(raw, cfg.cap_per_positive, cfg.seed, cfg.cap_per_task)
    budget = run_budget(cfg, prof, len(capped))
    used, used_counts = sample_budget(capped, budget, cfg.seed)
    batch_size = cfg.batch_size or prof.batch_size
    epochs = cfg.epochs if cfg.epochs is not None else prof.epochs
    n_pairs = sum(used_counts.values())
    pairs_for_steps = budget if budget is not None else n_pairs
    max_steps = cfg.max_steps or max(1, math.ceil(pairs_for_steps * epochs / batch_size))
    timings["data_seconds"] = time.perf_counter() - t0

    # ---- model -------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    cap_len = cfg.max_seq_length or prof.max_seq_length
    if prof.base_model and prof.base_model != cfg.base_model:
        logger.warning("profile %s replaces base model %s with %s", prof.name, cfg.base_model, prof.base_model)
        cfg.base_model = prof.base_model
    try:
        model = load_encoder(cfg.base_model)
    except (ValueError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(str(e), field="base_model") from None
    # The saved model gets this back: the fitted length below is a training setting only, and a
    # model saved with it would silently cut every longer document.
    inference_len = model.max_seq_length
    base_prompts = {k: v for k, v in (model.prompts or {}).items() if not re.search(r"_(query|document)$", k)}
    prompts = task_prompts(base_prompts, list(TASKS), query_side=cfg.query_instructions,
                           doc_side=cfg.doc_instructions)
    col_prompts = {t: {"anchor": prompts[f"{t}_query"], "positive": prompts[f"{t}_document"],
                       "negative": prompts[f"{t}_document"],
                       **{f"negative_{i + 1}": prompts[f"{t}_document"] for i in range(cfg.num_negatives)}}
                   for t in cfg.tasks}
    timings["load_model_seconds"] = time.perf_counter() - t0

    # ---- hard negatives ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    hn_report = {}
    if cfg.hard_negatives:
        model.max_seq_length = cap_len
        for t in list(used):
            if cfg.hard_negatives == "bm25":
                used[t], hn_report[t] = mine_bm25_negatives(used[t], cfg.num_negatives, cfg.hn_range_min,
                                                            cfg.hn_range_max, cfg.seed)
            else:
                used[t], hn_report[t] = mine_model_negatives(
                    used[t], model, col_prompts[t]["anchor"], col_prompts[t]["positive"], cfg.num_negatives,
                    cfg.hn_range_min, cfg.hn_range_max, cfg.hn_relative_margin)
    timings["mining_seconds"] = time.perf_counter() - t0

    # ---- sequence length, freezing -------------------------------------------------------------------------
    train_sets = {t: d.select_columns([c for c in d.column_names if c != "positive_id"]) for t, d in used.items()}
    if cfg.fit_seq_length:
        seq_len, seq_report = fit_max_seq_length(model, train_sets, col_prompts, cap_len,
                                                 cfg.seq_len_percentile, seed=cfg.seed)
    else:
        seq_len, seq_report = cap_len, {"fitted": cap_len, "cap": cap_len}
    # Batches hold one task each, so each task can be cut at its own length; the model's own length
    # (used outside the collator, e.g. by mining) is the longest of them.
    task_lens = dict(seq_report.get("per_task") or {}) if cfg.fit_seq_length and cfg.seq_len_per_task else {}
    if task_lens:
        seq_len = max(task_lens.values())
    model.max_seq_length = seq_len
    processing_kwargs = getattr(model[0], "processing_kwargs", None)
    if cfg.pad_to_max_length:
        model[0].processing_kwargs = {**processing_kwargs, "text": {"padding": "max_length"}}
    n_params = sum(p.numel() for p in model.parameters())
    n_frozen = (freeze_word_embeddings(model) if cfg.freeze_embeddings else 0) + freeze_unused_pooler(model)
    if cfg.train_top_layers is not None:
        n_frozen += freeze_lower_layers(model, cfg.train_top_layers)
    model.prompts = dict(prompts)

    # ---- trainer -------------------------------------------------------------------------------------------
    ckpt_dir = out / "checkpoints"
    resume_from = _latest_checkpoint(ckpt_dir) if resume else None
    if resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)
    prior_steps = _load_step_stats(resume_from) if resume_from else []
    created_out = not out.exists()
    if is_main and not resume and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)  # out is an earlier run's (marker) or --overwrite was given: checked above
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_output_marker(out, "helpers.train")
    save_steps = cfg.save_steps or prof.save_steps or max(25, max_steps // 4)
    eval_steps = prof.eval_steps if cfg.eval_steps is None else (cfg.eval_steps or None)
    max_q = cfg.max_eval_queries if cfg.max_eval_queries is not None else prof.max_eval_queries

    evaluator = None
    if evaluate and eval_steps and eval_root is not None and world_size == 1:
        evs = build_ir_evaluators(eval_root, cfg.tasks, cfg.dev_split, prompts, max_q)
        if evs:
            from sentence_transformers.evaluation import SequentialEvaluator
            evaluator = SequentialEvaluator(evs)

    if world_size > 1 or cfg.mixing == "temperature":
        mixing_sampler: Any = _MixingFactory(cfg.mixing, cfg.temperature, world_size)
    else:
        mixing_sampler = (MultiDatasetBatchSamplers.ROUND_ROBIN if cfg.mixing == "round_robin"
                          else MultiDatasetBatchSamplers.PROPORTIONAL)
    per_device_bs = max(1, batch_size // world_size)
    on_cpu = not torch.cuda.is_available()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        max_steps=max_steps,
        per_device_train_batch_size=per_device_bs,
        per_device_eval_batch_size=64,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=mixing_sampler,
        prompts=col_prompts,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if evaluator is not None else "no",
        eval_steps=eval_steps if evaluator is not None else None,
        report_to="none",
        disable_tqdm=not show_progress or not is_main,
        dataloader_num_workers=0,
        use_cpu=on_cpu,
        ddp_backend=("gloo" if on_cpu else "nccl") if world_size > 1 else None,
        ddp_find_unused_parameters=None,
        dataloader_drop_last=world_size > 1,
    )
    loss = MultipleNegativesRankingLoss(model, scale=cfg.loss_scale, gather_across_devices=world_size > 1)
    CountingTrainer, QuietProgress, _, SaveStepStats, LearningCurve = _trainer_classes()
    trainer = CountingTrainer(model=model, args=args, train_dataset=train_sets, loss=loss, evaluator=evaluator,
                              callbacks=list(callbacks or []))
    trainer.data_collator.task_lengths = task_lens
    curve = None
    if evaluate and cfg.curve_steps and eval_root is not None and is_main:
        def curve_eval() -> dict:
            model.max_seq_length = inference_len   # the curve measures the model as it will be used
            try:
                res = evaluate_model(model, eval_root, cfg.tasks, [cfg.dev_split], cfg.curve_queries)
            finally:
                model.max_seq_length = seq_len
            return {t: m[m["headline"]] for t, m in res.get(cfg.dev_split, {}).items()}

        curve = LearningCurve(cfg.curve_steps, curve_eval)
        trainer.add_callback(curve)
    trainer.step_stats = []
    trainer.add_callback(SaveStepStats(trainer, prior_steps))
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)   # would print every (per-step) log when tqdm is off
    if show_progress and is_main:
        trainer.add_callback(QuietProgress(every=max(1, max_steps // 20)))

    base_eval = {}
    if evaluate and cfg.compare_base and eval_root is not None and is_main and resume_from is None:
        t0 = time.perf_counter()
        model.max_seq_length = inference_len  # as the fine-tuned model will be evaluated and saved
        base_eval = evaluate_model(model, eval_root, _eval_tasks(cfg, eval_root), cfg.eval_splits, max_q)
        model.max_seq_length = seq_len
        timings["base_eval_seconds"] = time.perf_counter() - t0

    # ---- train ---------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except BaseException:
        if is_main:
            _drop_if_empty(out, ckpt_dir, created_out)
        raise
    train_seconds = time.perf_counter() - t0
    timings["train_seconds"] = train_seconds
    resumed_step = 0
    if resume_from:
        resumed_step = int(Path(resume_from).name.rsplit("-", 1)[-1])

    stats = trainer.step_stats
    # Counts and loss cover the whole run: the steps before a resume come from the checkpoint.
    whole = (prior_steps or []) + [_step_record(s) for s in stats]
    pairs_seen = sum(s[1] for s in whole) * world_size
    tokens_seen = sum(s[2] for s in whole) * world_size
    padded_seen = sum(s[3] for s in whole) * world_size
    steps_per_task = Counter(s[0] for s in whole)
    pairs_this_run = sum(s[1] for s in stats) * world_size
    tokens_this_run = sum(s[2] for s in stats) * world_size
    # steady state: from the start of the second step to the start of the last one (no warm-up, no final save)
    steady = None
    if len(stats) >= 3 and stats[-1][4] > stats[1][4]:
        span = stats[-1][4] - stats[1][4]
        steady = {"pairs_per_second": sum(s[1] for s in stats[1:-1]) * world_size / span,
                  "tokens_per_second": sum(s[2] for s in stats[1:-1]) * world_size / span,
                  "seconds_per_step": span / (len(stats) - 2)}
    hist = trainer.state.log_history
    loss_curve = [{"step": h["step"], "loss": round(float(h["loss"]), 5),
                   "learning_rate": float(h.get("learning_rate", 0.0))} for h in hist if "loss" in h]
    dev_curve = [{k: v for k, v in h.items() if k == "step" or "recall" in k or "ndcg" in k}
                 for h in hist if any(k.startswith("eval_") for k in h)]

    log: dict[str, Any] = {
        "name": cfg.name, "config": cfg.as_dict(), "profile": prof.as_dict(),
        "resolved": {"batch_size": batch_size, "per_device_batch_size": per_device_bs, "epochs": epochs,
                     "max_steps": max_steps, "budget_pairs": budget,
                     # max_seq_length: the training length (fitted); the saved model keeps its base's
                     "max_seq_length": seq_len, "inference_max_seq_length": inference_len,
                     "save_steps": save_steps, "eval_steps": eval_steps if evaluator else None,
                     "mixing_sampler": (f"TaskMixingBatchSampler({cfg.mixing}, T={cfg.temperature}, "
                                        f"group={world_size})" if isinstance(mixing_sampler, _MixingFactory)
                                        else f"sentence-transformers {cfg.mixing}"),
                     "prompts": prompts, "trained_prompts": col_prompts,
                     "params": n_params, "frozen_params": n_frozen,
                     "data_source": [str(s) for s in source] if isinstance(source, list) else str(source),
                     "eval_root": str(eval_root) if eval_root else None},
        "data": {"loaded": loaded, "downsampling": ds_report, "used": used_counts,
                 "after_mining": {t: len(d) for t, d in used.items()}, "hard_negatives": hn_report,
                 "seq_len": seq_report},
        "training": {"global_step": trainer.state.global_step, "resumed_from_step": resumed_step,
                     "resumed_from": resume_from, "steps_this_run": len(stats),
                     # False only when resuming from a checkpoint written before step counts were kept
                     "counts_cover_whole_run": prior_steps is not None,
                     "steps_per_task": dict(steps_per_task), "pairs_seen": pairs_seen,
                     "tokens_seen": tokens_seen, "padded_tokens": padded_seen,
                     "padding_efficiency": round(tokens_seen / padded_seen, 4) if padded_seen else None,
                     "pairs_seen_this_run": pairs_this_run,
                     # this trainer.train() call: includes checkpoint saves and dev evaluation during training
                     "pairs_per_second": pairs_this_run / train_seconds if train_seconds else 0.0,
                     "tokens_per_second": tokens_this_run / train_seconds if train_seconds else 0.0,
                     "steady": steady,
                     "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                     # mean loss over every step of the run (the Trainer's own covers this call only)
                     "train_loss": float(np.mean([s[4] for s in whole])) if whole else float("nan"),
                     "world_size": world_size,
                     "loss_curve": loss_curve, "task_per_step": [s[0] for s in whole],
                     "dev_curve": dev_curve,
                     "learning_curve": curve.points if curve else [],
                     "curve_seconds": round(curve.eval_seconds, 1) if curve else 0.0},
        "timings": timings,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "sentence_transformers": _version("sentence_transformers"),
                        "transformers": _version("transformers"), "threads": torch.get_num_threads(),
                        "machine": platform.machine()},
    }

    if not is_main:
        # what this process trained on, so homogeneity across processes can be checked
        atomic_write_json(out / f"train_log.rank{rank}.json",
                          {"rank": rank, "task_per_step": log["training"]["task_per_step"],
                           "pairs_seen": sum(s[1] for s in stats[:]) })
        return TrainResult(None, out, log)

    # ---- final evaluation and save -------------------------------------------------------------------------
    model.max_seq_length = inference_len
    if processing_kwargs is not None:
        model[0].processing_kwargs = processing_kwargs  # no fixed padding outside the benchmark's training
    final_eval = {}
    if evaluate and eval_root is not None:
        t0 = time.perf_counter()
        final_eval = evaluate_model(model, eval_root, _eval_tasks(cfg, eval_root), cfg.eval_splits, max_q)
        timings["final_eval_seconds"] = time.perf_counter() - t0
    log["eval"] = {"final": final_eval, "base": base_eval}
    timings["total_seconds"] = time.perf_counter() - t_start

    model_dir = out / "model"
    model.prompts = dict(prompts)
    with atomic_dir(model_dir, overwrite=True) as tmp:  # inside out, checked above
        model.save(str(tmp), create_model_card=False)
        if getattr(model[0].auto_model, "pooler", None) is None:
            mark_without_pooler(tmp)
        atomic_write_text(tmp / "README.md", _model_card(cfg, prof, prompts, log))
        atomic_write_json(tmp / "train_summary.json",
                          {"name": cfg.name, "config": cfg.as_dict(), "prompts": prompts,
                           "data": log["data"]["used"], "eval": log["eval"], "profile": prof.name,
                           "global_step": trainer.state.global_step})
    if final_eval or base_eval:
        report = {"fine-tuned": final_eval, **({"base": base_eval} if base_eval else {})}
        atomic_write_json(out / "eval_report.json", report)
        atomic_write_text(out / "eval_report.md", _report_markdown(report))
    log["model_path"] = str(model_dir)
    atomic_write_json(out / "train_log.json", _jsonable(log))
    return TrainResult(model_dir, out, log)


def _resolve_path(p: str | os.PathLike) -> Path:
    """A relative path as given if it exists from the working directory, else relative to the repository."""
    p = Path(p)
    if p.is_absolute() or p.exists() or not (REPO_ROOT / p).exists():
        return p
    return REPO_ROOT / p


def _eval_tasks(cfg: TrainConfig, root: Path) -> list[str]:
    if cfg.eval_tasks is not None:
        return cfg.eval_tasks
    extra = [t for t in TASKS if t not in cfg.tasks and not TASKS[t].trainable and _splits_of(root, t)]
    return list(cfg.tasks) + extra


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except Exception:
        return "?"


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    return str(o)


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.split("\n\n")[0],
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
    p.add_argument("--model", default=None, help="override the base encoder (registered name or path)")
    p.add_argument("--tasks", default=None, help="override the tasks, comma-separated")
    p.add_argument("--max-steps", type=int, default=None, help="override the number of optimizer steps")
    p.add_argument("--save-steps", type=int, default=None)
    p.add_argument("--eval-splits", nargs="+", default=None, help="splits for the final report ('all' = every one)")
    p.add_argument("--compare-base", action="store_true", help="also evaluate the base model")
    p.add_argument("--no-eval", action="store_true", help="skip all evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
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
        cfg = TrainConfig.from_yaml(args.config)
        if args.model:
            cfg.base_model = args.model
        if args.tasks:
            cfg.tasks = args.tasks
        if args.max_steps is not None:
            cfg.max_steps = args.max_steps
        if args.save_steps is not None:
            cfg.save_steps = args.save_steps
        if args.eval_splits:
            cfg.eval_splits = args.eval_splits
        if args.compare_base:
            cfg.compare_base = True
        cfg.validate(args.config)
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
        print(_report_markdown({"fine-tuned": ev["final"], **({"base": ev["base"]} if ev.get("base") else {})}),
              end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
