"""One fine-tuning run on ``SentenceTransformerTrainer``: :func:`train`, in typed stages. ``recipe: catalog``
runs :mod:`helpers.training.catalog_stage` in place of the trainer stages (the others are shared).

Stages, each a function returning a small frozen dataclass of :mod:`helpers.training.stages` (after
FlagEmbedding's ``AbsEmbedderRunner``; the stages both recipes share live there too), so what one stage
hands the next is named and typed: **paths** (:class:`RunSpec`: config and profile
resolved once into :class:`~helpers.training.settings.Settings`, every input and the output folder checked
before any work), **data** (:class:`DataStage`, :mod:`helpers.training.pairs`: load, cap, budget),
**model** (:class:`ModelStage`: base encoder, per-task prompts), **mining** (:class:`MiningStage`: optional
hard negatives), **encoder** (:class:`EncoderStage`: fitted length, frozen parts,
:mod:`helpers.training.encoder`), **trainer** (:class:`TrainerStage`: arguments, loss, batch sampler,
callbacks), **run**, **log** (:mod:`helpers.training.runlog`) and **save** (model, card, log, report).

Instructions (:mod:`helpers.tasks`) go on the query side (and the document side with ``doc_instructions``)
through the trainer's ``prompts`` ``{task: {"anchor": ..., "positive": ..., "negative": ...}}``; the saved
model keeps the same strings as ``"<task>_query"`` / ``"<task>_document"`` for every task in the registry
(``workflow`` included), so evaluation applies exactly the text training saw.

Bookkeeping: checkpoints every ``save_steps`` in ``OUT/checkpoints`` (``--resume`` continues from the
latest), ``OUT/train_log.json`` (config, resolved settings, counts, loss and task per step, timings, pairs/s),
optional dev evaluation during training (:func:`helpers.evaluation.dev_evaluator`), the final model in
``OUT/model`` written atomically with its card (``README.md``) and an evaluation report
(``OUT/eval_report.json``) on the dev BEIR folders or the user's ``--corpora``.

Loss: ``MultipleNegativesRankingLoss(scale=20)`` (= temperature 0.05) on batches from
:mod:`helpers.training.sampling`. ``torchrun --nproc_per_node=N -m helpers.train ...`` runs DDP through the
Trainer; the global batch stays ``batch_size``, the loss gathers embeddings across processes (gloo on CPU).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

from helpers.evaluation import dev_evaluator
from helpers.io import DataError, atomic_write_json, check_output_dir
from helpers.models import load_encoder
from helpers.profiles import Profile, get_profile
from helpers.tasks import TASKS, task_prompts
from helpers.training.callbacks import drop_if_empty, learning_curve_callback, trainer_classes, world
from helpers.training.catalog_stage import catalog_steps, prepare_catalog_config, run_catalog
from helpers.training.config import TrainConfig, TrainResult, as_config
from helpers.training.encoder import (fit_max_seq_length, freeze_lower_layers, freeze_unused_pooler,
                                      freeze_word_embeddings)
from helpers.training.pairs import (default_data_dir, downsample, load_training_pairs, mine_bm25_negatives,
                                    mine_model_negatives, run_budget, sample_budget)
from helpers.training.runlog import run_log
from helpers.training.sampling import FullBatchNoDuplicatesSampler, _MixingFactory
from helpers.training.settings import resolve_settings
from helpers.training.stages import (DataStage, EncoderStage, MiningStage, ModelStage, OutStage, RunSpec,
                                     TrainerStage, base_evaluation, dev_sample_fn, prepare_out, stage_save)
from helpers.workspace import REPO as REPO_ROOT, run_dir

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- the run

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
    skips the dev evaluation during training and the final report (the notebooks evaluate models themselves),
    not a configured learning curve (``curve_steps``). ``callbacks``: Trainer callbacks; with ``recipe:
    catalog``, functions called with each step's record (:mod:`helpers.training.catalog_stage`).
    """
    spec = _stage_paths(config, profile, out_dir, data_dir, train_jsonl, corpora, seed, overwrite)
    from transformers import set_seed

    set_seed(spec.cfg.seed)
    data = _stage_data(spec)
    base = _stage_model(spec)
    mined = _stage_mining(spec, data, base)
    enc = _stage_encoder(spec, mined, base)
    if spec.cfg.recipe == "catalog":
        return run_catalog(spec, data, base, mined, enc, resume, evaluate, callbacks, show_progress)
    ts = _stage_trainer(spec, data, base, enc, resume, evaluate, callbacks, show_progress)
    base_eval, base_eval_seconds = base_evaluation(spec, data, base, ts.out, evaluate)
    train_seconds = _stage_run(spec, ts)
    timings = {"data_seconds": data.seconds, "load_model_seconds": base.seconds, "mining_seconds": mined.seconds,
               **({"base_eval_seconds": base_eval_seconds} if base_eval else {}), "train_seconds": train_seconds}
    log = run_log(spec, data, base, mined, enc, ts, timings)
    if not spec.is_main:
        # what this process trained on, so homogeneity across processes can be checked
        atomic_write_json(spec.out / f"train_log.rank{spec.rank}.json",
                          {"rank": spec.rank, "task_per_step": log["training"]["task_per_step"],
                           "pairs_seen": sum(s[1] for s in ts.trainer.step_stats)})
        return TrainResult(None, spec.out, log)
    return stage_save(spec, data, base, enc, log, base_eval, evaluate)


def _resolve_path(p: str | os.PathLike) -> Path:
    """A relative path as given if it exists from the working directory, else relative to the repository."""
    p = Path(p)
    from_repo = not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists()
    return REPO_ROOT / p if from_repo else p


def _stage_paths(config, profile, out_dir, data_dir, train_jsonl, corpora, seed, overwrite) -> RunSpec:
    """The resolved config, profile and output folder; bad paths fail here, before anything is loaded."""
    import torch

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
    if cfg.recipe == "catalog":   # its top layers resolved, one process, the cache folder checked
        prepare_catalog_config(cfg, world_size)
    # Bad paths fail here, before data or a model is loaded and before any folder is created.
    if rank == 0:
        check_output_dir(out, overwrite=overwrite)
    for f in cfg.train_jsonl:
        if not Path(f).is_file():
            raise DataError("training file not found", file=f)
    if cfg.corpora and not Path(cfg.corpora).is_dir():
        raise DataError("evaluation corpora folder not found", file=cfg.corpora)
    settings = resolve_settings(cfg, prof, "cuda" if torch.cuda.is_available() else "cpu")
    if settings.base_model != cfg.base_model:
        logger.warning("profile %s replaces base model %s with %s", prof.name, cfg.base_model, settings.base_model)
        cfg.base_model = settings.base_model   # the log and the card name the model really trained
    return RunSpec(cfg, prof, settings, out, world_size, rank, t_start)


def _stage_data(spec: RunSpec) -> DataStage:
    """Pairs loaded, capped and drawn to the budget; the number of optimizer steps."""
    cfg, s = spec.cfg, spec.settings
    t0 = time.perf_counter()
    if cfg.train_jsonl:
        source: Any = cfg.train_jsonl
        eval_root = Path(cfg.corpora) if cfg.corpora else None
    else:
        ddir = Path(cfg.data_dir) if cfg.data_dir else default_data_dir(spec.prof.name)
        if not ddir.is_dir():
            raise DataError("training data folder not found: build it with `python -m helpers.data build` "
                            "or pass --data DIR / --train-jsonl FILE", file=ddir)
        source = ddir
        eval_root = Path(cfg.corpora) if cfg.corpora else (ddir / "beir" if (ddir / "beir").is_dir() else None)
    raw = load_training_pairs(source, cfg.tasks)
    capped, ds_report = downsample(raw, cfg.cap_per_positive, cfg.seed, cfg.cap_per_task)
    budget = run_budget(cfg, spec.prof, len(capped)) if cfg.recipe == "paper" else None   # catalog: every pair
    mix_sizes = {t: len(d) for t, d in raw.items()} if cfg.task_mix == "uncapped" else None
    used, used_counts = sample_budget(capped, budget, cfg.seed, mix_sizes)
    pairs_for_steps = budget if budget is not None else sum(used_counts.values())
    max_steps = catalog_steps(spec, used) if cfg.recipe == "catalog" else \
        cfg.max_steps or max(1, math.ceil(pairs_for_steps * s.epochs / s.batch_size))
    return DataStage(source, eval_root, raw, ds_report, budget, used, used_counts, max_steps,
                     time.perf_counter() - t0)


def _stage_model(spec: RunSpec) -> ModelStage:
    """The base encoder and the prompt tables (saved model's, and the trainer's per column)."""
    cfg = spec.cfg
    t0 = time.perf_counter()
    try:
        model = load_encoder(spec.settings.base_model)
    except (ValueError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(str(e), field="base_model") from None
    base_prompts = {k: v for k, v in (model.prompts or {}).items() if not re.search(r"_(query|document)$", k)}
    prompts = task_prompts(base_prompts, list(TASKS), query_side=cfg.query_instructions,
                           doc_side=cfg.doc_instructions)
    col_prompts = {
        t: {"anchor": prompts[f"{t}_query"], "positive": prompts[f"{t}_document"],
            "negative": prompts[f"{t}_document"],
            **{f"negative_{i + 1}": prompts[f"{t}_document"] for i in range(cfg.num_negatives)}}
        for t in cfg.tasks}
    # The saved model gets the base's length back: the fitted length is a training setting only, and a
    # model saved with it would silently cut every longer document.
    return ModelStage(model, model.max_seq_length, prompts, col_prompts, time.perf_counter() - t0)


def _stage_mining(spec: RunSpec, data: DataStage, base: ModelStage) -> MiningStage:
    """Optional hard negatives per task (``hard_negatives: bm25 | model``)."""
    cfg = spec.cfg
    t0 = time.perf_counter()
    used, report = dict(data.used), {}
    if cfg.hard_negatives:
        base.model.max_seq_length = spec.settings.max_seq_length
        for t in list(used):
            if cfg.hard_negatives == "bm25":
                used[t], report[t] = mine_bm25_negatives(used[t], cfg.num_negatives, cfg.hn_range_min,
                                                         cfg.hn_range_max, cfg.seed)
            else:
                used[t], report[t] = mine_model_negatives(
                    used[t], base.model, base.col_prompts[t]["anchor"], base.col_prompts[t]["positive"],
                    cfg.num_negatives, cfg.hn_range_min, cfg.hn_range_max, cfg.hn_relative_margin)
    return MiningStage(used, report, time.perf_counter() - t0)


def _stage_encoder(spec: RunSpec, mined: MiningStage, base: ModelStage) -> EncoderStage:
    """Training sets without ids, the fitted training length, frozen parameters, the prompts set."""
    cfg, model, cap_len = spec.cfg, base.model, spec.settings.max_seq_length
    train_sets = {t: d.select_columns([c for c in d.column_names if c != "positive_id"])
                  for t, d in mined.used.items()}
    if cfg.fit_seq_length:
        seq_len, seq_report = fit_max_seq_length(model, train_sets, base.col_prompts, cap_len,
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
    n_frozen = ((freeze_word_embeddings(model) if cfg.freeze_embeddings else 0) + freeze_unused_pooler(model)
                + (freeze_lower_layers(model, cfg.train_top_layers) if cfg.train_top_layers else 0))
    model.prompts = dict(base.prompts)
    return EncoderStage(train_sets, seq_len, task_lens, seq_report, processing_kwargs, n_params, n_frozen)


def _mixing(spec: RunSpec):
    """The batch sampler that mixes tasks, and how the log names it."""
    from sentence_transformers.sentence_transformer.training_args import MultiDatasetBatchSamplers

    cfg, world_size = spec.cfg, spec.world_size
    if world_size > 1 or cfg.mixing == "temperature":
        return (_MixingFactory(cfg.mixing, cfg.temperature, world_size),
                f"TaskMixingBatchSampler({cfg.mixing}, T={cfg.temperature}, group={world_size})")
    return (MultiDatasetBatchSamplers.ROUND_ROBIN if cfg.mixing == "round_robin"
            else MultiDatasetBatchSamplers.PROPORTIONAL), f"sentence-transformers {cfg.mixing}"


def _training_args(spec: RunSpec, data: DataStage, base: ModelStage, out: OutStage, mixing_sampler,
                   eval_steps: int | None, show_progress: bool):
    """``SentenceTransformerTrainingArguments`` of the run."""
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments

    cfg, s, world_size = spec.cfg, spec.settings, spec.world_size
    on_cpu = not torch.cuda.is_available()
    if s.train_precision == "bf16" and on_cpu:
        from helpers.precision import warn_if_bf16_is_emulated

        warn_if_bf16_is_emulated()
    return SentenceTransformerTrainingArguments(
        output_dir=str(out.ckpt_dir), max_steps=data.max_steps,
        per_device_train_batch_size=max(1, s.batch_size // world_size), per_device_eval_batch_size=64,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear", batch_sampler=FullBatchNoDuplicatesSampler,
        multi_dataset_batch_sampler=mixing_sampler, prompts=base.col_prompts, seed=cfg.seed,
        data_seed=cfg.seed, logging_steps=1, save_strategy="steps", save_steps=s.save_every(data.max_steps),
        save_total_limit=cfg.save_total_limit, eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps, report_to="none",
        disable_tqdm=not show_progress or not spec.is_main, dataloader_num_workers=0, use_cpu=on_cpu,
        ddp_backend=("gloo" if on_cpu else "nccl") if world_size > 1 else None,
        ddp_find_unused_parameters=None, dataloader_drop_last=world_size > 1, bf16=s.train_precision == "bf16")


def _stage_trainer(spec: RunSpec, data: DataStage, base: ModelStage, enc: EncoderStage, resume: bool,
                   evaluate: bool, callbacks: list | None, show_progress: bool) -> TrainerStage:
    """The trainer: arguments, loss, dev evaluator, step counting and progress callbacks."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    cfg, s = spec.cfg, spec.settings
    out = prepare_out(spec, resume)
    evaluator = None
    if evaluate and s.eval_steps and data.eval_root is not None and spec.world_size == 1:
        evaluator = dev_evaluator(data.eval_root, cfg.tasks, cfg.dev_split, s.max_eval_queries, cfg.seed,
                                  s.eval_precision)
    eval_steps = s.eval_steps if evaluator is not None else None
    mixing_sampler, mixing = _mixing(spec)
    args = _training_args(spec, data, base, out, mixing_sampler, eval_steps, show_progress)
    loss = MultipleNegativesRankingLoss(base.model, scale=cfg.loss_scale, gather_across_devices=spec.world_size > 1)
    CountingTrainer, QuietProgress, _, SaveStepStats = trainer_classes()
    trainer = CountingTrainer(model=base.model, args=args, train_dataset=enc.train_sets, loss=loss,
                              evaluator=evaluator, callbacks=list(callbacks or []))
    trainer.step_stats = []
    trainer.data_collator.task_lengths = enc.task_lens
    trainer.add_callback(SaveStepStats(trainer, out.prior_steps))
    # the curve is asked for by the config, so it runs even when the caller evaluates the model itself
    dev_sample = dev_sample_fn(spec, data, base)
    curve = learning_curve_callback(cfg.curve_steps, dev_sample) if dev_sample else None
    if curve is not None:
        trainer.add_callback(curve)
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)   # would print every (per-step) log when tqdm is off
    if show_progress and spec.is_main:
        trainer.add_callback(QuietProgress(every=max(1, data.max_steps // 20)))
    return TrainerStage(trainer, out, eval_steps, args.per_device_train_batch_size, args.save_steps, mixing, curve)


def _stage_run(spec: RunSpec, ts: TrainerStage) -> float:
    """``trainer.train()``; a failed run leaves no empty folders behind. Returns the seconds it took."""
    t0 = time.perf_counter()
    try:
        ts.trainer.train(resume_from_checkpoint=ts.out.resume_from)
    except BaseException:
        if spec.is_main:
            drop_if_empty(spec.out, ts.out.ckpt_dir, ts.out.created_out)
        raise
    return time.perf_counter() - t0
