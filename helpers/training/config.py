"""The training config: :class:`TrainConfig` (one experiment) and its YAML parsing and validation.

A config file is a mapping of :class:`TrainConfig` fields; numbers are accepted in any YAML spelling
(``5e-5`` reads as a string in YAML 1.1) and a bad value raises :class:`~helpers.io.DataError` naming
the file, line and field.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from helpers.io import DataError
from helpers.precision import AUTO
from helpers.tasks import TRAIN_TASKS, UnknownTaskError, get_task, validate_tasks

MIXINGS = ("proportional", "round_robin", "temperature")
RECIPES = ("paper", "catalog")        # helpers.training.trainer (paper) or helpers.training.catalog_stage
CACHE_PLACES = ("memory", "disk")
#: Keys only the catalog recipe reads (``null``: its default); set with ``recipe: paper`` they are refused.
CATALOG_ONLY = ("cache_lower_layers", "layer_cache_dir", "cache_dtype", "catalog_sample", "catalog_loss",
                "anchor_weight", "anchor_batch")
#: Keys only the paper recipe reads, and why the catalog recipe has no use for them; a value other than the
#: default with ``recipe: catalog`` is refused (``train_pairs: all`` and ``eval_steps: 0`` say what it does).
PAPER_ONLY = {
    "train_pairs": "trains on every pair for `epochs` epochs or `max_steps` steps",
    "budget_per_task": "trains on every pair for `epochs` epochs or `max_steps` steps",
    "task_mix": "trains on every pair for `epochs` epochs or `max_steps` steps",
    "mixing": "shuffles the batches of all tasks together, in proportion to their query groups",
    "temperature": "shuffles the batches of all tasks together, in proportion to their query groups",
    "hard_negatives": "scores every query against its task's whole catalog: every other object is a negative",
    "num_negatives": "scores every query against its task's whole catalog: every other object is a negative",
    "hn_range_min": "scores every query against its task's whole catalog: every other object is a negative",
    "hn_range_max": "scores every query against its task's whole catalog: every other object is a negative",
    "hn_relative_margin": "scores every query against its task's whole catalog: every other object is a negative",
    "freeze_embeddings": "always freezes everything below its trained top layers, the embeddings included",
    "pad_to_max_length": "runs its top layers on cached states, never padded to a fixed length",
    "eval_steps": "evaluates during training through its learning curve (curve_steps) only",
}
_CATALOG_DEFAULTS = {"train_pairs": (None, "all"), "eval_steps": (None, 0)}
TASK_MIXES = ("capped", "uncapped")   # per-task quotas of the budget: from the capped or the uncapped pools
HARD_NEGATIVES = (None, "model", "bm25")


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
    if not d:   # else every key silently takes its default (learning_rate 5e-5, not the study's 1e-4)
        raise DataError("the config is empty: set its keys, or start from the study's with `extends: multitask`",
                        file=path)
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
    precision: str | None = None             # "fp32", "bf16" mixed precision or "auto" (bf16 if native; None: the profile's)
    train_top_layers: int | None = None      # train only the top N transformer layers (None: all; catalog: 2)
    # the recipe: "paper" (in-batch MNRL over pairs, SentenceTransformerTrainer) or "catalog" (query groups
    # against their task's whole catalog, top layers from cached lower layers: helpers.training.catalog_stage)
    recipe: str = "paper"
    cache_lower_layers: str | None = None    # catalog: "disk" (null) or "memory"
    layer_cache_dir: str | None = None       # catalog, on disk: the folder (null: $CASE_STUDY_CACHE/layers)
    cache_dtype: str | None = None           # catalog: cached states stored "bf16" (null) or "fp32"
    catalog_sample: int | None = None        # catalog: objects scored per step (null: the whole catalog)
    catalog_loss: str | None = None          # catalog: "each" (null) or "sum" (helpers.training.catalog_loss)
    anchor_weight: float | None = None       # catalog: the workflow anchor term's weight (null: 0, off)
    anchor_batch: int | None = None          # catalog: anchor texts per step (null: 32)
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
    budget_per_task: bool = False            # budget x number of tasks (helpers.training.pairs, "Budget")
    task_mix: str = "capped"                 # quotas per task from the capped pools, or the uncapped ("Budget")
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
    seed: int = 0   # the study's seed, so `helpers.train` without --seed trains the notebooks' model

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
    def from_yaml(cls, path: str | os.PathLike, overrides: dict[str, tuple[object, str]] | None = None) -> "TrainConfig":
        """A config file; ``extends: <name>`` starts from ``<name>.yaml`` in the same folder (an
        ablation is its base plus the keys it changes). ``name`` defaults to the file's stem.
        ``overrides``: ``{key: (value, where)}`` set over the file (``where`` names the flag in errors)."""
        path = Path(path)
        d, lines = _read_config_yaml(path, ())
        d.setdefault("name", path.stem)
        for key, (value, where) in (overrides or {}).items():
            d[key], lines[key] = value, (where, None)
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

        self._check_numbers(bad)
        self._check_strings(bad)
        self._check_tasks(bad)
        self._check_ranges(bad)
        self._check_flags_and_lists(bad)
        self._check_recipe(bad)

    def _check_numbers(self, bad) -> None:
        for name, (kind, nullable) in number_fields().items():
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

    def _check_strings(self, bad) -> None:
        for name in ("name", "description", "base_model", "mixing", "dev_split", "task_mix"):
            if not isinstance(getattr(self, name), str):
                bad(f"{name} must be a string, got {getattr(self, name)!r}", name)
        for name in ("data_dir", "corpora", "hard_negatives", "layer_cache_dir"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                bad(f"{name} must be a string or null, got {getattr(self, name)!r}", name)

    def _check_tasks(self, bad) -> None:
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

    def _check_ranges(self, bad) -> None:
        if self.mixing not in MIXINGS:
            bad(f"mixing must be one of {', '.join(MIXINGS)}, got {self.mixing!r}", "mixing")
        if self.task_mix not in TASK_MIXES:
            bad(f"task_mix must be one of {', '.join(TASK_MIXES)}, got {self.task_mix!r}", "task_mix")
        if self.precision not in (None, "fp32", "bf16", AUTO):
            bad(f"precision must be null, 'fp32', 'bf16' or 'auto', got {self.precision!r}", "precision")
        if self.hard_negatives not in HARD_NEGATIVES:
            bad(f"hard_negatives must be null, 'model' or 'bm25', got {self.hard_negatives!r}", "hard_negatives")
        for name in ("cap_per_positive", "batch_size", "max_steps", "max_seq_length", "save_steps",
                     "max_eval_queries", "num_negatives", "save_total_limit", "train_pairs", "train_top_layers",
                     "curve_queries", "catalog_sample", "anchor_batch"):
            v = getattr(self, name)
            if isinstance(v, int) and v < 1:
                bad(f"{name} must be a positive integer{' or null' if number_fields()[name][1] else ''}, "
                    f"got {v!r}", name)
        for name in ("temperature", "loss_scale", "learning_rate", "epochs"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                bad(f"{name} must be > 0, got {v!r}", name)
        for name in ("weight_decay", "hn_range_min", "eval_steps", "anchor_weight"):
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

    def _check_flags_and_lists(self, bad) -> None:
        for f in fields(self):
            if f.type == "bool" and not isinstance(getattr(self, f.name), bool):
                bad(f"{f.name} must be true or false, got {getattr(self, f.name)!r}", f.name)
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

    def _check_recipe(self, bad) -> None:
        """The recipe's choices, and no key the other recipe would silently ignore."""
        from helpers.training.catalog_loss import FORMS
        from helpers.training.layer_cache import DTYPES

        for name, allowed in (("recipe", RECIPES), ("cache_lower_layers", (None,) + CACHE_PLACES),
                              ("cache_dtype", (None,) + DTYPES), ("catalog_loss", (None,) + FORMS)):
            if getattr(self, name) not in allowed:
                choices = ", ".join("null" if a is None else repr(a) for a in allowed)
                bad(f"{name} must be one of {choices}, got {getattr(self, name)!r}", name)
        if self.recipe == "paper":
            for name in CATALOG_ONLY:
                if getattr(self, name) is not None:
                    bad(f"{name} applies to the catalog recipe only; set recipe: catalog or remove it", name)
            return
        defaults = {f.name: f.default for f in fields(self)}
        for name, why in PAPER_ONLY.items():
            if getattr(self, name) not in _CATALOG_DEFAULTS.get(name, (defaults[name],)):
                bad(f"{name} applies to the paper recipe only (the catalog recipe {why}); remove it or set "
                    f"{name}: {json.dumps(defaults[name])}", name)

    def as_dict(self) -> dict:
        return asdict(self)


def number_fields() -> dict[str, tuple[type, bool]]:
    """``{field: (int or float, may be null)}`` for every numeric field, read from the annotations.

    Derived rather than restated, so a new numeric field is validated without a second list to keep
    in step (``train_pairs: int | str | None`` counts as an int: its one string is ``"all"``).
    """
    out = {}
    for f in fields(TrainConfig):
        parts = {p.strip() for p in str(f.type).split("|")}
        kind = int if "int" in parts else float if "float" in parts else None
        if kind is not None:
            out[f.name] = (kind, "None" in parts)
    return out


@dataclass
class TrainResult:
    """What :func:`helpers.training.trainer.train` returns: the saved model, the run folder and its log."""

    model_path: Path | None          # None on non-zero ranks of a multi-process run
    out_dir: Path
    log: dict

    @property
    def dev_metrics(self) -> dict:
        return self.log.get("eval", {}).get("final", {})


def as_config(config: dict | TrainConfig | str | os.PathLike) -> TrainConfig:
    """A fresh :class:`TrainConfig` from a config, a dict of its fields or a YAML path."""
    if isinstance(config, TrainConfig):
        return replace(config)
    if isinstance(config, dict):
        return TrainConfig.from_dict(dict(config))
    return TrainConfig.from_yaml(config)

