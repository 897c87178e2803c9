"""``recipe: catalog`` in :func:`helpers.training.trainer.train`: :func:`run_catalog`.

A catalog run goes through the same stages as a paper run up to the encoder (paths, data, model, mining --
none: it is refused under this recipe --, encoder: the fitted length per task) and ends with the same save
(the model with its card and ``train_summary.json``, the report, ``train_log.json`` with the same top-level
structure); in between, :func:`~helpers.training.catalog_recipe.train_catalog` replaces the
``SentenceTransformerTrainer``. The saved model is an ordinary ``SentenceTransformer`` with the base's
inference length and the per-task prompts.

Config keys (:class:`~helpers.training.config.TrainConfig`; ``null`` takes the default in brackets):

``train_top_layers`` [2]          layers trained; the ones below are run once per text and cached
``cache_lower_layers`` [disk]     ``disk`` (``layer_cache_dir``, [``$CASE_STUDY_CACHE/layers``]) or ``memory``
``cache_dtype`` [bf16]            storage of the cached states (``bf16`` or ``fp32``)
``catalog_sample`` [whole]        objects scored per step (the batch's gold ones always in)
``catalog_loss`` [each]           ``each`` or ``sum`` (:mod:`helpers.training.catalog_loss`)
``anchor_weight`` [0: off]        weight of the anchor term holding the training flows' workflow texts near
                                  the base's embeddings (:mod:`helpers.training.anchor`; needs ``--data``)
``anchor_batch`` [32]             anchor texts per step, half requirements, half YAML

The anchor texts are cut at their own fitted length (the rule the tasks' lengths follow, over the workflow
prompts' requirements and YAML, capped by the profile's ``max_seq_length``), so the term holds the texts
as far as the run's length allows evaluation's view of them: YAML flows are long, and a cut at a trained
task's length would hold only their first lines.

``batch_size`` is query groups per step, ``loss_scale``, ``learning_rate``, ``warmup_ratio``,
``weight_decay``, ``precision``, ``save_steps``, ``curve_steps`` mean what they mean for the paper recipe.
Keys only the paper recipe reads are refused (:data:`~helpers.training.config.PAPER_ONLY`).

Budget: every training pair (after any ``cap_per_positive``), ``epochs`` times: an epoch is every query group
once, in batches of ``batch_size`` groups, so a run takes ``ceil(batches per epoch x epochs)`` steps
(``max_steps`` overrides; the smoke profile's ``catalog_max_steps`` caps it, and its ``catalog_max_batch``
the groups per step: a pipeline check).
``train_pairs`` is refused: a slice of the data is what this recipe is for avoiding.

Why the cache is on disk by default: its key holds the frozen bottom's weights, cut, length, prompt and
dtype, not the top or the seed, so every run on one base and cut (seeds, learning rates, the sweep, a
resumed run) computes the lower layers once; in memory every run pays for them again. The states are in
memory during a run either way; on disk they take about as much room again.

One process: each step scores its queries against their task's catalog encoded in that step with
gradients through it; split across processes, the catalog's embeddings and their gradients would have to be
gathered, which the recipe does not do (and a 2-core CPU gains nothing from a second process), so
``torchrun`` with this recipe is refused.

The log's ``training`` block has the paper run's keys that apply (no token counts: batches are not padded
pairs) plus ``catalog`` (groups, catalog sizes, cut layer, cache counts and seconds, groups/s, seconds per
epoch). ``timings.train_seconds`` is the whole :func:`train_catalog` call (cache build, steps, checkpoints,
curve), ``timings.cache_seconds`` the lower-layer cache's part of it; ``pairs_per_second`` counts the steps'
seconds only. Checkpoints are ``OUT/checkpoints/checkpoint-<step>.pt``; ``resume`` continues from the latest
and gives the weights of an uninterrupted run. ``callbacks`` are functions called with each step's record.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from helpers.io import DataError
from helpers.training.anchor import TASK as ANCHOR_TASK
from helpers.training.anchor import AnchorTexts, load_anchor_texts
from helpers.training.catalog_data import query_groups
from helpers.training.catalog_recipe import CatalogSettings, latest_checkpoint_file, run_steps, train_catalog
from helpers.training.layer_cache import FIELD as CACHE_FIELD
from helpers.training.layer_cache import layer_cache_dir
from helpers.training.runlog import assemble_log, resolved
from helpers.training.stages import OutStage, base_evaluation, dev_sample_fn, prepare_out, stage_save

#: How the log names this recipe's batches (the paper run's ``mixing_sampler``).
MIXING = "catalog: one task's query groups per batch, all tasks' batches shuffled together each epoch"
#: What the card and the log's ``catalog`` block take from train_catalog's log.
_CATALOG_KEYS = ("total_steps", "batches_per_epoch", "groups", "pairs", "catalog", "cut_layer", "cache",
                 "cache_seconds", "train_seconds", "curve_seconds", "groups_per_second", "seconds_per_epoch",
                 "pairs_per_epoch", "anchor")


@dataclass(frozen=True)
class CatalogStage:
    """Stage **catalog run** (the paper run's :class:`~helpers.training.stages.TrainerStage`): what ran and
    its log; the attribute names :func:`helpers.training.runlog.resolved` reads are the same."""

    settings: CatalogSettings
    out: OutStage
    log: dict                        # train_catalog's
    seconds: float                   # the whole train_catalog call
    per_device_bs: int
    save_steps: int
    eval_steps: None = None          # no evaluator during training: the learning curve only
    mixing: str = MIXING


def cache_folder(cfg) -> Path | None:
    """Where the lower layers' states are kept: None in memory, else ``layer_cache_dir`` or the default."""
    if cfg.cache_lower_layers == "memory":
        return None
    return Path(cfg.layer_cache_dir).expanduser() if cfg.layer_cache_dir else layer_cache_dir()


def prepare_catalog_config(cfg, world_size: int) -> None:
    """Before any work: one process, a cache folder that is not a file, ``train_top_layers`` resolved (the
    log and the card then name the layers really trained)."""
    if world_size > 1:
        raise DataError("recipe catalog trains in one process: each step scores its queries against the "
                        "task's whole catalog encoded in that step, whose embeddings and gradients it does not "
                        "gather across processes; run it without torchrun", field="recipe")
    folder = cache_folder(cfg)
    if folder is not None and folder.exists() and not folder.is_dir():
        raise DataError("the layer cache folder is a file; remove it or choose another folder", file=folder,
                        field=CACHE_FIELD)
    if cfg.train_top_layers is None:
        cfg.train_top_layers = CatalogSettings.top_layers


def _base_settings(spec) -> CatalogSettings:
    s, cap = spec.settings, spec.prof.catalog_max_batch
    return CatalogSettings(top_layers=spec.cfg.train_top_layers, epochs=s.epochs,
                           batch_groups=min(s.batch_size, cap) if cap else s.batch_size,
                           max_steps=spec.cfg.max_steps or spec.prof.catalog_max_steps, seed=spec.cfg.seed)


def catalog_steps(spec, used: dict) -> int:
    """Optimizer steps of a run on the pairs ``used`` (``{task: Dataset}``): see the module's Budget."""
    return run_steps(query_groups(used), _base_settings(spec))[1]


def catalog_settings(spec, max_steps: int, enc, anchor_length: int | None = None) -> CatalogSettings:
    """The config, profile and fitted lengths as :class:`CatalogSettings` (defaults for the ``null`` keys)."""
    cfg, s = spec.cfg, spec.settings
    return replace(_base_settings(spec), max_steps=max_steps, learning_rate=cfg.learning_rate,
                   warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay, scale=cfg.loss_scale,
                   loss_form=cfg.catalog_loss or CatalogSettings.loss_form, catalog_sample=cfg.catalog_sample,
                   max_seq_length=enc.seq_len, task_lengths=dict(enc.task_lens), precision=s.train_precision,
                   cache_dtype=cfg.cache_dtype or CatalogSettings.cache_dtype, save_steps=s.save_every(max_steps),
                   save_total_limit=cfg.save_total_limit, anchor_weight=cfg.anchor_weight or 0.0,
                   anchor_batch=cfg.anchor_batch or CatalogSettings.anchor_batch, anchor_length=anchor_length).check()


def anchor_texts(spec, data, base) -> AnchorTexts | None:
    """The anchor term's texts (None when it is off): the dataset folder's training flows only."""
    if not spec.cfg.anchor_weight:
        return None
    if not isinstance(data.source, Path):
        raise DataError("needs a dataset folder (--data) with flows/train.jsonl; --train-jsonl has no flows",
                        field="anchor_weight")
    return load_anchor_texts(data.source, base.prompts)


def anchor_length(spec, base, anchors: AnchorTexts | None) -> int | None:
    """The anchor texts' training length: the tasks' rule (:func:`~helpers.training.encoder.fit_max_seq_length`)
    over the prompted requirements and YAML, or the profile's cap without ``fit_seq_length``."""
    if anchors is None:
        return None
    cap = spec.settings.max_seq_length
    if not spec.cfg.fit_seq_length:
        return cap
    from datasets import Dataset

    from helpers.training.encoder import fit_max_seq_length

    texts = {ANCHOR_TASK: Dataset.from_dict({"anchor": anchors.requirements, "positive": anchors.documents})}
    prompts = {ANCHOR_TASK: {"anchor": anchors.query_prompt, "positive": anchors.document_prompt}}
    report = fit_max_seq_length(base.model, texts, prompts, cap, spec.cfg.seq_len_percentile, seed=spec.cfg.seed)[1]
    return report["per_task"][ANCHOR_TASK]


def _on_step(callbacks):
    """One ``on_step`` from the caller's callbacks (functions of a step's record), or None."""
    if not callbacks:
        return None
    if not all(callable(cb) for cb in callbacks):
        raise TypeError("recipe catalog: callbacks are functions called with each step's record (a dict), "
                        "not Trainer callbacks")

    def on_step(record: dict) -> None:
        for cb in callbacks:
            cb(record)

    return on_step


def run_catalog(spec, data, base, mined, enc, resume: bool, evaluate: bool, callbacks, show_progress: bool):
    """The catalog recipe's stages after the encoder: checkpoints, base evaluation, the run, log and save.
    Returns :class:`~helpers.training.config.TrainResult`, as the paper run does."""
    from helpers.training.callbacks import drop_if_empty

    on_step = _on_step(callbacks)
    anchors = anchor_texts(spec, data, base)
    settings = catalog_settings(spec, data.max_steps, enc, anchor_length(spec, base, anchors))
    out = prepare_out(spec, resume, latest=latest_checkpoint_file)
    base_eval, base_eval_seconds = base_evaluation(spec, data, base, out, evaluate)
    t0 = time.perf_counter()
    try:
        known = data.raw if spec.cfg.cap_per_positive else None   # a cap's dropped golds are not negatives
        result = train_catalog(base.model, mined.used, base.col_prompts, settings, cache_dir=cache_folder(spec.cfg),
                               known=known, anchors=anchors,
                               checkpoint_dir=out.ckpt_dir, resume=out.resume_from is not None,
                               curve_steps=spec.cfg.curve_steps, curve=dev_sample_fn(spec, data, base),
                               on_step=on_step, show_progress=show_progress)
    except BaseException:
        drop_if_empty(spec.out, out.ckpt_dir, out.created_out)
        raise
    cs = CatalogStage(settings, out, result.log, time.perf_counter() - t0, settings.batch_groups,
                      settings.save_steps)
    timings = {"data_seconds": data.seconds, "load_model_seconds": base.seconds, "mining_seconds": mined.seconds,
               **({"base_eval_seconds": base_eval_seconds} if base_eval else {}), "train_seconds": cs.seconds,
               "cache_seconds": cs.log["cache_seconds"]}
    log = assemble_log(spec, data, mined, enc, catalog_resolved(spec, data, base, enc, cs), training_record(cs),
                       timings)
    return stage_save(spec, data, base, enc, log, base_eval, evaluate)


def catalog_resolved(spec, data, base, enc, cs: CatalogStage):
    """The log's ``resolved`` block: the paper run's fields, and the recipe's keys as they ran."""
    folder = cache_folder(spec.cfg)
    s = cs.settings
    return replace(resolved(spec, data, base, enc, cs), recipe="catalog", train_top_layers=s.top_layers,
                   cache_lower_layers="memory" if folder is None else "disk",
                   layer_cache_dir=None if folder is None else str(folder), cache_dtype=s.cache_dtype,
                   catalog_sample=s.catalog_sample, catalog_loss=s.loss_form)


def training_record(cs: CatalogStage) -> dict:
    """The log's ``training`` block, with the paper run's keys where they apply (see the module docstring)."""
    clog = cs.log
    records, start = clog["records"], clog["resumed_from_step"]
    this_run, steps = records[start:], clog["steps_this_run"]
    return {
        "global_step": records[-1]["step"] if records else 0, "resumed_from_step": start,
        "resumed_from": cs.out.resume_from, "steps_this_run": steps, "counts_cover_whole_run": True,
        "steps_per_task": dict(Counter(r["task"] for r in records)),
        "pairs_seen": sum(r["pairs"] for r in records), "groups_seen": sum(r["groups"] for r in records),
        "pairs_seen_this_run": sum(r["pairs"] for r in this_run),
        "pairs_per_second": clog["pairs_per_second"],
        "steady": {"pairs_per_second": clog["pairs_per_second"], "groups_per_second": clog["groups_per_second"],
                   "seconds_per_step": clog["train_seconds"] / steps} if steps else None,
        "trainable_params": clog["trainable_params"], "train_loss": clog["train_loss"], "world_size": 1,
        "loss_curve": [{k: r[k] for k in ("step", "loss", "anchor_loss", "learning_rate") if k in r} for r in records],
        "task_per_step": [r["task"] for r in records], "dev_curve": [],
        "learning_curve": clog["learning_curve"], "curve_seconds": clog["curve_seconds"],
        "catalog": {k: clog[k] for k in _CATALOG_KEYS}}
