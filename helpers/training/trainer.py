"""One fine-tuning run on ``SentenceTransformerTrainer``: :func:`train`, in stages.

Stages, each a function below: **paths** (config resolved, every input and the output folder checked
before any work), **data** (:mod:`helpers.training.pairs`: load, cap, budget), **model** (base encoder
and the per-task prompts), **mining** (optional hard negatives), **encoder** (fitted length, frozen
parts: :mod:`helpers.training.encoder`), **trainer** (arguments, loss, batch sampler, callbacks),
**run**, **log** and **save** (model with its card, ``train_log.json``, evaluation report).

Instructions: per-task instructions (:mod:`helpers.tasks`) go on the query side (and, with
``doc_instructions: true``, on the document side) through the trainer's ``prompts`` argument
``{task: {"anchor": ..., "positive": ..., "negative": ...}}``. The same strings are stored in the saved
model's ``prompts`` under ``"<task>_query"`` / ``"<task>_document"`` so evaluation applies exactly the
text training saw. Prompts are stored for every task in the registry (``workflow`` included).

Loss: ``MultipleNegativesRankingLoss(scale=20)`` (= temperature 0.05), ``gather_across_devices`` when
several processes train; batches as :mod:`helpers.training.sampling` builds them.

Bookkeeping: checkpoints every ``save_steps`` in ``OUT/checkpoints`` (``--resume`` continues from the
latest), ``OUT/train_log.json`` (config, counts, loss per step, task per step, timings, pairs/s),
optional dev evaluation during training (:func:`helpers.evaluation.dev_evaluator`), and the final
model in ``OUT/model`` written atomically (built under a temporary name, renamed when complete) with a
model card (``README.md``) and an evaluation report (``OUT/eval_report.json``) on the dev BEIR folders
or the user's ``--corpora``.

Multi-GPU / multi-process: ``torchrun --nproc_per_node=N -m helpers.train ...`` runs DDP through the
Trainer. The global batch stays ``batch_size`` (``batch_size / N`` per process) and the loss gathers
embeddings across processes. On CPU the backend is gloo.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from helpers.evaluation import dev_evaluator, evaluate_model, report_markdown, task_splits
from helpers.io import DataError, atomic_dir, atomic_write_json, atomic_write_text, check_output_dir, write_output_marker
from helpers.models import load_encoder, mark_without_pooler
from helpers.profiles import Profile, get_profile
from helpers.tasks import TASKS, task_prompts
from helpers.training.callbacks import (clear_checkpoints, drop_if_empty, latest_checkpoint, learning_curve_callback,
                                        load_step_stats, step_record, trainer_classes, world)
from helpers.training.card import save_with_card
from helpers.training.config import TrainConfig, TrainResult, as_config
from helpers.training.encoder import (fit_max_seq_length, freeze_lower_layers, freeze_unused_pooler,
                                      freeze_word_embeddings)
from helpers.training.pairs import (default_data_dir, downsample, load_training_pairs, mine_bm25_negatives,
                                    mine_model_negatives, run_budget, sample_budget)
from helpers.training.sampling import FullBatchNoDuplicatesSampler, _MixingFactory
from helpers.workspace import run_dir

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class _Run:
    """What the stages of one run hand to each other."""

    cfg: TrainConfig
    prof: Profile
    out: Path
    world_size: int
    rank: int
    t_start: float
    timings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    model: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


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
    refused unless ``overwrite`` (then only this run's own entries are replaced). ``evaluate=False``
    skips the dev evaluation during training and the final report (the notebooks evaluate models
    themselves); a configured learning curve (``curve_steps``) is still recorded.
    """
    run = _stage_paths(config, profile, out_dir, data_dir, train_jsonl, corpora, seed, overwrite)
    from transformers import set_seed

    set_seed(run.cfg.seed)
    _stage_data(run)
    _stage_model(run)
    _stage_mining(run)
    _stage_encoder(run)
    trainer = _stage_trainer(run, resume, evaluate, callbacks, show_progress)
    base_eval = _base_evaluation(run, evaluate)
    _stage_run(run, trainer)
    log = _stage_log(run, trainer)
    if not run.is_main:
        # what this process trained on, so homogeneity across processes can be checked
        stats = trainer.step_stats
        atomic_write_json(run.out / f"train_log.rank{run.rank}.json",
                          {"rank": run.rank, "task_per_step": log["training"]["task_per_step"],
                           "pairs_seen": sum(s[1] for s in stats)})
        return TrainResult(None, run.out, log)
    return _stage_save(run, trainer, log, base_eval, evaluate)


def _resolve_path(p: str | os.PathLike) -> Path:
    """A relative path as given if it exists from the working directory, else relative to the repository."""
    p = Path(p)
    if p.is_absolute() or p.exists() or not (REPO_ROOT / p).exists():
        return p
    return REPO_ROOT / p


def _stage_paths(config, profile, out_dir, data_dir, train_jsonl, corpora, seed, overwrite) -> _Run:
    """The resolved config, profile and output folder; bad paths fail here, before anything is loaded."""
    t_start = time.perf_counter()
    cfg = as_config(config)
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
    out = Path(out_dir) if out_dir else run_dir(cfg.name, prof.name)
    world_size, rank = world()
    # Bad paths fail here, before data or a model is loaded and before any folder is created.
    if rank == 0:
        check_output_dir(out, overwrite=overwrite)
    for f in cfg.train_jsonl:
        if not Path(f).is_file():
            raise DataError("training file not found", file=f)
    if cfg.corpora and not Path(cfg.corpora).is_dir():
        raise DataError("evaluation corpora folder not found", file=cfg.corpora)
    return _Run(cfg, prof, out, world_size, rank, t_start)


def _stage_data(run: _Run) -> None:
    """Pairs loaded, capped and drawn to the budget; the number of optimizer steps."""
    cfg, prof = run.cfg, run.prof
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
    capped, ds_report = downsample(raw, cfg.cap_per_positive, cfg.seed, cfg.cap_per_task)
    budget = run_budget(cfg, prof, len(capped))
    mix_sizes = {t: len(d) for t, d in raw.items()} if cfg.task_mix == "uncapped" else None
    used, used_counts = sample_budget(capped, budget, cfg.seed, mix_sizes)
    batch_size = cfg.batch_size or prof.batch_size
    epochs = cfg.epochs if cfg.epochs is not None else prof.epochs
    pairs_for_steps = budget if budget is not None else sum(used_counts.values())
    run.data = {"source": source, "eval_root": eval_root, "loaded": {t: len(d) for t, d in raw.items()},
                "ds_report": ds_report, "budget": budget, "used": used, "used_counts": used_counts,
                "batch_size": batch_size, "epochs": epochs,
                "max_steps": cfg.max_steps or max(1, math.ceil(pairs_for_steps * epochs / batch_size))}
    run.timings["data_seconds"] = time.perf_counter() - t0


def _stage_model(run: _Run) -> None:
    """The base encoder and the prompt tables (saved model's, and the trainer's per column)."""
    cfg, prof = run.cfg, run.prof
    t0 = time.perf_counter()
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
    run.extra["inference_len"] = model.max_seq_length
    run.extra["cap_len"] = cfg.max_seq_length or prof.max_seq_length
    base_prompts = {k: v for k, v in (model.prompts or {}).items() if not re.search(r"_(query|document)$", k)}
    prompts = task_prompts(base_prompts, list(TASKS), query_side=cfg.query_instructions,
                           doc_side=cfg.doc_instructions)
    run.extra["prompts"] = prompts
    run.extra["col_prompts"] = {
        t: {"anchor": prompts[f"{t}_query"], "positive": prompts[f"{t}_document"],
            "negative": prompts[f"{t}_document"],
            **{f"negative_{i + 1}": prompts[f"{t}_document"] for i in range(cfg.num_negatives)}}
        for t in cfg.tasks}
    run.model = model
    run.timings["load_model_seconds"] = time.perf_counter() - t0


def _stage_mining(run: _Run) -> None:
    """Optional hard negatives per task (``hard_negatives: bm25 | model``)."""
    cfg, used, col_prompts = run.cfg, run.data["used"], run.extra["col_prompts"]
    t0 = time.perf_counter()
    hn_report = {}
    if cfg.hard_negatives:
        run.model.max_seq_length = run.extra["cap_len"]
        for t in list(used):
            if cfg.hard_negatives == "bm25":
                used[t], hn_report[t] = mine_bm25_negatives(used[t], cfg.num_negatives, cfg.hn_range_min,
                                                            cfg.hn_range_max, cfg.seed)
            else:
                used[t], hn_report[t] = mine_model_negatives(
                    used[t], run.model, col_prompts[t]["anchor"], col_prompts[t]["positive"], cfg.num_negatives,
                    cfg.hn_range_min, cfg.hn_range_max, cfg.hn_relative_margin)
    run.data["hn_report"] = hn_report
    run.timings["mining_seconds"] = time.perf_counter() - t0


def _stage_encoder(run: _Run) -> None:
    """Training sets without ids, the fitted training length, frozen parameters, the prompts set."""
    cfg, model, cap_len = run.cfg, run.model, run.extra["cap_len"]
    train_sets = {t: d.select_columns([c for c in d.column_names if c != "positive_id"])
                  for t, d in run.data["used"].items()}
    if cfg.fit_seq_length:
        seq_len, seq_report = fit_max_seq_length(model, train_sets, run.extra["col_prompts"], cap_len,
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
    run.extra.update(seq_len=seq_len, task_lens=task_lens, processing_kwargs=processing_kwargs,
                     n_params=sum(p.numel() for p in model.parameters()),
                     n_frozen=(freeze_word_embeddings(model) if cfg.freeze_embeddings else 0)
                     + freeze_unused_pooler(model)
                     + (freeze_lower_layers(model, cfg.train_top_layers) if cfg.train_top_layers else 0))
    run.data.update(train_sets=train_sets, seq_report=seq_report)
    model.prompts = dict(run.extra["prompts"])


def _prepare_out(run: _Run, resume: bool) -> None:
    """The checkpoint to resume from (and its step records); a fresh run clears old checkpoints."""
    out = run.out
    ckpt_dir = out / "checkpoints"
    resume_from = latest_checkpoint(ckpt_dir) if resume else None
    if resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)
    run.extra.update(ckpt_dir=ckpt_dir, resume_from=resume_from, created_out=not out.exists(),
                     prior_steps=load_step_stats(resume_from) if resume_from else [])
    if run.is_main and not resume and ckpt_dir.exists():
        clear_checkpoints(ckpt_dir)  # out is an earlier run's (marker) or --overwrite was given: checked before
    if run.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_output_marker(out, "helpers.train")


def _training_args(run: _Run, evaluator, eval_steps: int | None, show_progress: bool):
    """``SentenceTransformerTrainingArguments`` of the run (and the batch-mixing sampler it uses)."""
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import MultiDatasetBatchSamplers

    cfg, prof, world_size = run.cfg, run.prof, run.world_size
    if world_size > 1 or cfg.mixing == "temperature":
        mixing_sampler: Any = _MixingFactory(cfg.mixing, cfg.temperature, world_size)
    else:
        mixing_sampler = (MultiDatasetBatchSamplers.ROUND_ROBIN if cfg.mixing == "round_robin"
                          else MultiDatasetBatchSamplers.PROPORTIONAL)
    on_cpu = not torch.cuda.is_available()
    max_steps = run.data["max_steps"]
    from helpers.quantize import resolve_precision, warn_if_bf16_is_emulated

    precision = run.extra["precision"] = resolve_precision(cfg.precision or prof.train_precision,
                                                           "cpu" if on_cpu else "cuda")
    if precision == "bf16" and on_cpu:
        warn_if_bf16_is_emulated()
    run.extra.update(mixing_sampler=mixing_sampler, per_device_bs=max(1, run.data["batch_size"] // world_size),
                     save_steps=cfg.save_steps or prof.save_steps or max(25, max_steps // 4))
    return SentenceTransformerTrainingArguments(
        output_dir=str(run.extra["ckpt_dir"]), max_steps=max_steps,
        per_device_train_batch_size=run.extra["per_device_bs"], per_device_eval_batch_size=64,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear", batch_sampler=FullBatchNoDuplicatesSampler,
        multi_dataset_batch_sampler=mixing_sampler, prompts=run.extra["col_prompts"], seed=cfg.seed,
        data_seed=cfg.seed, logging_steps=1, save_strategy="steps", save_steps=run.extra["save_steps"],
        save_total_limit=cfg.save_total_limit, eval_strategy="steps" if evaluator is not None else "no",
        eval_steps=eval_steps if evaluator is not None else None, report_to="none",
        disable_tqdm=not show_progress or not run.is_main, dataloader_num_workers=0, use_cpu=on_cpu,
        ddp_backend=("gloo" if on_cpu else "nccl") if world_size > 1 else None,
        ddp_find_unused_parameters=None, dataloader_drop_last=world_size > 1, bf16=precision == "bf16")


def _stage_trainer(run: _Run, resume: bool, evaluate: bool, callbacks: list | None, show_progress: bool):
    """The trainer: arguments, loss, dev evaluator, step counting and progress callbacks."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    cfg, prof = run.cfg, run.prof
    _prepare_out(run, resume)
    eval_steps = prof.eval_steps if cfg.eval_steps is None else (cfg.eval_steps or None)
    run.extra["max_q"] = cfg.max_eval_queries if cfg.max_eval_queries is not None else prof.max_eval_queries
    evaluator = None
    eval_root = run.data["eval_root"]
    if evaluate and eval_steps and eval_root is not None and run.world_size == 1:
        evaluator = dev_evaluator(eval_root, cfg.tasks, cfg.dev_split, run.extra["max_q"], cfg.seed, prof.precision)
    run.extra.update(eval_steps=eval_steps, has_evaluator=evaluator is not None)
    args = _training_args(run, evaluator, eval_steps, show_progress)
    loss = MultipleNegativesRankingLoss(run.model, scale=cfg.loss_scale, gather_across_devices=run.world_size > 1)
    CountingTrainer, QuietProgress, _, SaveStepStats = trainer_classes()
    trainer = CountingTrainer(model=run.model, args=args, train_dataset=run.data["train_sets"], loss=loss,
                              evaluator=evaluator, callbacks=list(callbacks or []))
    trainer.step_stats = []
    trainer.data_collator.task_lengths = run.extra["task_lens"]
    trainer.add_callback(SaveStepStats(trainer, run.extra["prior_steps"]))
    # the curve is asked for by the config, so it runs even when the caller evaluates the model itself
    run.extra["curve"] = _curve_callback(run)
    if run.extra["curve"] is not None:
        trainer.add_callback(run.extra["curve"])
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)   # would print every (per-step) log when tqdm is off
    if show_progress and run.is_main:
        trainer.add_callback(QuietProgress(every=max(1, run.data["max_steps"] // 20)))
    return trainer


def _curve_callback(run: _Run):
    """The learning curve (``curve_steps``): the dev sample at the inference length, or None."""
    cfg, model, eval_root = run.cfg, run.model, run.data["eval_root"]
    if not cfg.curve_steps or eval_root is None or not run.is_main:
        return None

    def dev_sample() -> dict:
        res = evaluate_model(model, eval_root, cfg.tasks, [cfg.dev_split], cfg.curve_queries, cfg.seed,
                             max_seq_length=run.extra["inference_len"], precision=run.prof.precision)
        return {t: m[m["headline"]] for t, m in res.get(cfg.dev_split, {}).items()}

    return learning_curve_callback(cfg.curve_steps, dev_sample)


def _eval_tasks(cfg: TrainConfig, root: Path) -> list[str]:
    if cfg.eval_tasks is not None:
        return cfg.eval_tasks
    extra = [t for t in TASKS if t not in cfg.tasks and not TASKS[t].trainable and task_splits(root, t)]
    return list(cfg.tasks) + extra


def _base_evaluation(run: _Run, evaluate: bool) -> dict:
    """The base model on the final report's folders (``compare_base``), before any training step."""
    cfg, eval_root = run.cfg, run.data["eval_root"]
    if not (evaluate and cfg.compare_base and eval_root is not None and run.is_main
            and run.extra["resume_from"] is None):
        return {}
    t0 = time.perf_counter()
    # at the length the fine-tuned model will be evaluated and saved with
    base_eval = evaluate_model(run.model, eval_root, _eval_tasks(cfg, eval_root), cfg.eval_splits,
                               run.extra["max_q"], cfg.seed, max_seq_length=run.extra["inference_len"],
                               precision=run.prof.precision)
    run.timings["base_eval_seconds"] = time.perf_counter() - t0
    return base_eval


def _stage_run(run: _Run, trainer) -> None:
    """``trainer.train()``; a failed run leaves no empty folders behind."""
    t0 = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=run.extra["resume_from"])
    except BaseException:
        if run.is_main:
            drop_if_empty(run.out, run.extra["ckpt_dir"], run.extra["created_out"])
        raise
    run.timings["train_seconds"] = time.perf_counter() - t0


def _training_record(run: _Run, trainer) -> dict:
    """The log's ``training`` part: counts and loss over the whole run, speed of this call."""
    stats, world_size, train_seconds = trainer.step_stats, run.world_size, run.timings["train_seconds"]
    prior = run.extra["prior_steps"]
    resume_from, curve = run.extra["resume_from"], run.extra.get("curve")
    # Counts and loss cover the whole run: the steps before a resume come from the checkpoint.
    whole = (prior or []) + [step_record(s) for s in stats]
    tokens_seen = sum(s[2] for s in whole) * world_size
    padded_seen = sum(s[3] for s in whole) * world_size
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
    return {
        "global_step": trainer.state.global_step,
        "resumed_from_step": int(Path(resume_from).name.rsplit("-", 1)[-1]) if resume_from else 0,
        "resumed_from": resume_from, "steps_this_run": len(stats),
        # False only when resuming from a checkpoint written before step counts were kept
        "counts_cover_whole_run": prior is not None,
        "steps_per_task": dict(Counter(s[0] for s in whole)), "pairs_seen": sum(s[1] for s in whole) * world_size,
        "tokens_seen": tokens_seen, "padded_tokens": padded_seen,
        "padding_efficiency": round(tokens_seen / padded_seen, 4) if padded_seen else None,
        "pairs_seen_this_run": pairs_this_run,
        # this trainer.train() call: includes checkpoint saves and dev evaluation during training
        "pairs_per_second": pairs_this_run / train_seconds if train_seconds else 0.0,
        "tokens_per_second": tokens_this_run / train_seconds if train_seconds else 0.0,
        "steady": steady,
        "trainable_params": sum(p.numel() for p in run.model.parameters() if p.requires_grad),
        # mean loss over every step of the run (the Trainer's own covers this call only)
        "train_loss": float(np.mean([s[4] for s in whole])) if whole else float("nan"),
        "world_size": world_size,
        "loss_curve": [{"step": h["step"], "loss": round(float(h["loss"]), 5),
                        "learning_rate": float(h.get("learning_rate", 0.0))} for h in hist if "loss" in h],
        "task_per_step": [s[0] for s in whole],
        "dev_curve": [{k: v for k, v in h.items() if k == "step" or "recall" in k or "ndcg" in k}
                      for h in hist if any(k.startswith("eval_") for k in h)],
        "learning_curve": curve.points if curve else [],
        "curve_seconds": round(curve.eval_seconds, 1) if curve else 0.0}


def _stage_log(run: _Run, trainer) -> dict:
    """The run log (``train_log.json``) as far as training goes; evaluation is added on save."""
    import torch

    cfg, d, x = run.cfg, run.data, run.extra
    source = d["source"]
    mixing = (f"TaskMixingBatchSampler({cfg.mixing}, T={cfg.temperature}, group={run.world_size})"
              if isinstance(x["mixing_sampler"], _MixingFactory) else f"sentence-transformers {cfg.mixing}")
    return {
        "name": cfg.name, "config": cfg.as_dict(), "profile": run.prof.as_dict(),
        "resolved": {"batch_size": d["batch_size"], "per_device_batch_size": x["per_device_bs"],
                     "epochs": d["epochs"], "max_steps": d["max_steps"], "budget_pairs": d["budget"],
                     # max_seq_length: the training length (fitted); the saved model keeps its base's
                     "max_seq_length": x["seq_len"], "inference_max_seq_length": x["inference_len"],
                     "save_steps": x["save_steps"], "eval_steps": x["eval_steps"] if x["has_evaluator"] else None,
                     "precision": x["precision"],
                     "mixing_sampler": mixing, "prompts": x["prompts"], "trained_prompts": x["col_prompts"],
                     "params": x["n_params"], "frozen_params": x["n_frozen"],
                     "data_source": [str(s) for s in source] if isinstance(source, list) else str(source),
                     "eval_root": str(d["eval_root"]) if d["eval_root"] else None},
        "data": {"loaded": d["loaded"], "downsampling": d["ds_report"], "used": d["used_counts"],
                 "after_mining": {t: len(ds) for t, ds in d["used"].items()}, "hard_negatives": d["hn_report"],
                 "seq_len": d["seq_report"]},
        "training": _training_record(run, trainer),
        "timings": run.timings,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "sentence_transformers": _version("sentence_transformers"),
                        "transformers": _version("transformers"), "threads": torch.get_num_threads(),
                        "machine": platform.machine()},
    }


def _stage_save(run: _Run, trainer, log: dict, base_eval: dict, evaluate: bool) -> TrainResult:
    """Final evaluation, the model (with its card and summary), the report and the log."""
    cfg, model, x, out = run.cfg, run.model, run.extra, run.out
    model.max_seq_length = x["inference_len"]
    if x["processing_kwargs"] is not None:
        model[0].processing_kwargs = x["processing_kwargs"]  # no fixed padding outside the benchmark's training
    final_eval = {}
    eval_root = run.data["eval_root"]
    if evaluate and eval_root is not None:
        t0 = time.perf_counter()
        final_eval = evaluate_model(model, eval_root, _eval_tasks(cfg, eval_root), cfg.eval_splits, x["max_q"],
                                    cfg.seed, precision=run.prof.precision)
        run.timings["final_eval_seconds"] = time.perf_counter() - t0
    log["eval"] = {"final": final_eval, "base": base_eval}
    run.timings["total_seconds"] = time.perf_counter() - run.t_start

    model_dir = out / "model"
    model.prompts = dict(x["prompts"])
    with atomic_dir(model_dir, overwrite=True) as tmp:  # inside out, checked before
        save_with_card(model, tmp, cfg, run.prof, x["prompts"], log)
        if getattr(model[0].auto_model, "pooler", None) is None:
            mark_without_pooler(tmp)
        atomic_write_json(tmp / "train_summary.json",
                          {"name": cfg.name, "config": cfg.as_dict(), "prompts": x["prompts"],
                           "data": log["data"]["used"], "eval": log["eval"], "profile": run.prof.name,
                           "global_step": trainer.state.global_step})
    if final_eval or base_eval:
        report = {"fine-tuned": final_eval, **({"base": base_eval} if base_eval else {})}
        atomic_write_json(out / "eval_report.json", report)
        atomic_write_text(out / "eval_report.md", report_markdown(report))
    log["model_path"] = str(model_dir)
    atomic_write_json(out / "train_log.json", _jsonable(log))
    return TrainResult(model_dir, out, log)


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
