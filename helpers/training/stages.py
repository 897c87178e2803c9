"""What the stages of a training run hand each other, and the stages both recipes share.

Each stage of :func:`helpers.training.trainer.train` returns a small frozen dataclass (after FlagEmbedding's
``AbsEmbedderRunner``), so what one stage hands the next is named and typed. The stages here run in both
recipes, the paper's (:mod:`helpers.training.trainer`) and the catalog recipe
(:mod:`helpers.training.catalog_stage`): the checkpoint folder (:func:`prepare_out`), the learning curve's
dev sample (:func:`dev_sample_fn`), the base model's evaluation (:func:`base_evaluation`) and the final
evaluation and save (:func:`stage_save`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.evaluation import evaluate_model, report_markdown, task_splits
from helpers.io import atomic_dir, atomic_write_json, atomic_write_text, write_output_marker
from helpers.models import mark_without_pooler
from helpers.profiles import Profile
from helpers.tasks import TASKS
from helpers.training.callbacks import clear_checkpoints, latest_checkpoint, load_step_stats
from helpers.training.card import save_with_card
from helpers.training.config import TrainConfig, TrainResult
from helpers.training.runlog import jsonable
from helpers.training.settings import Settings

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- what stages return

@dataclass(frozen=True)
class RunSpec:
    """Stage **paths**: what the run is (config, profile, settings) and where it writes."""

    cfg: TrainConfig
    prof: Profile
    settings: Settings
    out: Path
    world_size: int
    rank: int
    t_start: float

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class DataStage:
    """Stage **data**: the pairs a run trains on, and how they were drawn."""

    source: Any                      # a dataset folder, or the user's JSONL files
    eval_root: Path | None           # BEIR folders per task for evaluation
    raw: dict                        # task -> datasets.Dataset as loaded, before the cap
    ds_report: dict                  # the frequency cap's report
    budget: int | None               # pairs drawn in all (None: all)
    used: dict                       # task -> datasets.Dataset drawn to the budget
    used_counts: dict
    max_steps: int
    seconds: float

    @property
    def loaded(self) -> dict:
        """Pairs per task as loaded."""
        return {t: len(d) for t, d in self.raw.items()}


@dataclass(frozen=True)
class ModelStage:
    """Stage **model**: the base encoder and its prompt tables."""

    model: Any
    inference_len: int               # the base's max_seq_length: the saved model gets it back
    prompts: dict                    # "<task>_query" / "<task>_document" -> text, as saved in the model
    col_prompts: dict                # task -> {column: prompt}, as the trainer applies them
    seconds: float


@dataclass(frozen=True)
class MiningStage:
    """Stage **mining**: the drawn pairs with their hard negatives (unchanged without mining)."""

    used: dict
    report: dict
    seconds: float


@dataclass(frozen=True)
class EncoderStage:
    """Stage **encoder**: the training sets, the fitted lengths and the frozen parameters."""

    train_sets: dict
    seq_len: int                     # the model's training length (the longest task's with per-task lengths)
    task_lens: dict                  # task -> its own length when fitted per task
    seq_report: dict
    processing_kwargs: dict | None   # the model's own, restored before saving
    n_params: int
    n_frozen: int


@dataclass(frozen=True)
class OutStage:
    """Where checkpoints go and what a resumed run starts from."""

    ckpt_dir: Path
    resume_from: str | None
    created_out: bool
    prior_steps: list | None         # step records up to the checkpoint (None: it predates them)


@dataclass(frozen=True)
class TrainerStage:
    """Stage **trainer**: the configured trainer and the settings it derived."""

    trainer: Any
    out: OutStage
    eval_steps: int | None           # None when no evaluator runs during training
    per_device_bs: int
    save_steps: int
    mixing: str                      # the batch sampler, as the log names it
    curve: Any                       # the learning-curve callback, or None


# ---------------------------------------------------------------------------------------------- shared stages

def prepare_out(spec: RunSpec, resume: bool, latest=latest_checkpoint) -> OutStage:
    """The checkpoint to resume from (``latest(folder)``) and its step records; a fresh run clears old ones."""
    out = spec.out
    ckpt_dir = out / "checkpoints"
    resume_from = latest(ckpt_dir) if resume else None
    if resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)
    stage = OutStage(ckpt_dir, resume_from, not out.exists(), load_step_stats(resume_from) if resume_from else [])
    if spec.is_main and not resume and ckpt_dir.exists():
        clear_checkpoints(ckpt_dir)  # out is an earlier run's (marker) or --overwrite was given: checked before
    if spec.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_output_marker(out, "helpers.train")
    return stage


def dev_sample_fn(spec: RunSpec, data: DataStage, base: ModelStage):
    """The learning curve's evaluation (``curve_steps``; -> ``{task: value}``) at the inference length, or None."""
    cfg, model, eval_root = spec.cfg, base.model, data.eval_root
    if not cfg.curve_steps or eval_root is None or not spec.is_main:
        return None

    def dev_sample() -> dict:
        res = evaluate_model(model, eval_root, cfg.tasks, [cfg.dev_split], cfg.curve_queries, cfg.seed,
                             max_seq_length=base.inference_len, precision=spec.settings.eval_precision)
        return {t: m[m["headline"]] for t, m in res.get(cfg.dev_split, {}).items()}

    return dev_sample


def eval_tasks(cfg: TrainConfig, root: Path) -> list[str]:
    """The final report's tasks: the config's, else the trained ones and every evaluation-only one with data."""
    extra = [t for t in TASKS if t not in cfg.tasks and not TASKS[t].trainable and task_splits(root, t)]
    return cfg.eval_tasks if cfg.eval_tasks is not None else list(cfg.tasks) + extra


def base_evaluation(spec: RunSpec, data: DataStage, base: ModelStage, out: OutStage,
                     evaluate: bool) -> tuple[dict, float]:
    """The base model on the final report's folders (``compare_base``), before any training step."""
    cfg, eval_root = spec.cfg, data.eval_root
    if not (evaluate and cfg.compare_base and eval_root is not None and spec.is_main and out.resume_from is None):
        return {}, 0.0
    t0 = time.perf_counter()
    # at the length the fine-tuned model will be evaluated and saved with
    base_eval = evaluate_model(base.model, eval_root, eval_tasks(cfg, eval_root), cfg.eval_splits,
                               spec.settings.max_eval_queries, cfg.seed, max_seq_length=base.inference_len,
                               precision=spec.settings.eval_precision)
    return base_eval, time.perf_counter() - t0


def stage_save(spec: RunSpec, data: DataStage, base: ModelStage, enc: EncoderStage, log: dict, base_eval: dict,
                evaluate: bool) -> TrainResult:
    """Final evaluation, the model (with its card and summary), the report and the log."""
    cfg, model, out, timings = spec.cfg, base.model, spec.out, log["timings"]
    model.max_seq_length = base.inference_len
    if enc.processing_kwargs is not None:
        model[0].processing_kwargs = enc.processing_kwargs  # no fixed padding outside the benchmark's training
    final_eval = {}
    if evaluate and data.eval_root is not None:
        t0 = time.perf_counter()
        final_eval = evaluate_model(model, data.eval_root, eval_tasks(cfg, data.eval_root), cfg.eval_splits,
                                    spec.settings.max_eval_queries, cfg.seed, precision=spec.settings.eval_precision)
        timings["final_eval_seconds"] = time.perf_counter() - t0
    log["eval"] = {"final": final_eval, "base": base_eval}
    timings["total_seconds"] = time.perf_counter() - spec.t_start

    model_dir = out / "model"
    model.prompts = dict(base.prompts)
    with atomic_dir(model_dir, overwrite=True) as tmp:  # inside out, checked before
        save_with_card(model, tmp, cfg, spec.prof, base.prompts, log)
        if getattr(model[0].auto_model, "pooler", None) is None:
            mark_without_pooler(tmp)
        atomic_write_json(tmp / "train_summary.json",
                          {"name": cfg.name, "config": cfg.as_dict(), "prompts": base.prompts,
                           "data": log["data"]["used"], "eval": log["eval"], "profile": spec.prof.name,
                           "global_step": log["training"]["global_step"]})
    if final_eval or base_eval:
        report = {"fine-tuned": final_eval, **({"base": base_eval} if base_eval else {})}
        atomic_write_json(out / "eval_report.json", report)
        atomic_write_text(out / "eval_report.md", report_markdown(report))
    log["model_path"] = str(model_dir)
    atomic_write_json(out / "train_log.json", jsonable(log))
    return TrainResult(model_dir, out, log)
