"""A run's log (``train_log.json``) from the typed stages of :mod:`helpers.training.trainer`.

The log's ``resolved`` block is ``asdict`` of :class:`Resolved`: every setting the run really used,
whether it came from the config, the profile, the data or the model.
"""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from helpers.training.callbacks import step_record


@dataclass(frozen=True)
class Resolved:
    """The settings a run used (the log's ``resolved`` block)."""

    batch_size: int
    per_device_batch_size: int
    epochs: float
    max_steps: int
    budget_pairs: int | None
    max_seq_length: int               # the training length (fitted); the saved model keeps its base's
    inference_max_seq_length: int
    save_steps: int
    eval_steps: int | None
    precision: str
    mixing_sampler: str
    prompts: dict
    trained_prompts: dict
    params: int
    frozen_params: int
    data_source: str | list
    eval_root: str | None
    # the recipe and its keys (helpers.training.config; the catalog ones None under the paper recipe)
    recipe: str = "paper"
    train_top_layers: int | None = None   # None: every layer trained
    cache_lower_layers: str | None = None
    layer_cache_dir: str | None = None
    cache_dtype: str | None = None
    catalog_sample: int | None = None     # None: the whole catalog
    catalog_loss: str | None = None


def resolved(spec, data, base, enc, ts) -> Resolved:
    """The :class:`Resolved` settings of a run, from its stages."""
    source = data.source
    return Resolved(
        batch_size=spec.settings.batch_size, per_device_batch_size=ts.per_device_bs, epochs=spec.settings.epochs,
        max_steps=data.max_steps, budget_pairs=data.budget, max_seq_length=enc.seq_len,
        inference_max_seq_length=base.inference_len, save_steps=ts.save_steps, eval_steps=ts.eval_steps,
        precision=spec.settings.train_precision, mixing_sampler=ts.mixing, prompts=base.prompts,
        trained_prompts=base.col_prompts, params=enc.n_params, frozen_params=enc.n_frozen,
        data_source=[str(s) for s in source] if isinstance(source, list) else str(source),
        eval_root=str(data.eval_root) if data.eval_root else None, train_top_layers=spec.cfg.train_top_layers)


def run_log(spec, data, base, mined, enc, ts, timings: dict) -> dict:
    """The run log as far as training goes; evaluation is added on save."""
    return assemble_log(spec, data, mined, enc, resolved(spec, data, base, enc, ts),
                        training_record(ts.trainer, ts.out, ts.curve, spec.world_size, timings["train_seconds"]),
                        timings)


def assemble_log(spec, data, mined, enc, res: Resolved, training: dict, timings: dict) -> dict:
    """The log's top level, the same for every recipe: what ran (config, profile, ``resolved``), on what
    data, its ``training`` record and timings, and the environment."""
    import torch

    return {
        "name": spec.cfg.name, "config": spec.cfg.as_dict(), "profile": spec.prof.as_dict(),
        "resolved": asdict(res),
        "data": {"loaded": data.loaded, "downsampling": data.ds_report, "used": data.used_counts,
                 "after_mining": {t: len(ds) for t, ds in mined.used.items()}, "hard_negatives": mined.report,
                 "seq_len": enc.seq_report},
        "training": training,
        "timings": timings,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "sentence_transformers": _version("sentence_transformers"),
                        "transformers": _version("transformers"), "threads": torch.get_num_threads(),
                        "machine": platform.machine()},
    }


def _steady(stats: list, world_size: int) -> dict | None:
    """Speed from the start of the second step to the start of the last one (no warm-up, no final save)."""
    if len(stats) < 3 or stats[-1][4] <= stats[1][4]:
        return None
    span = stats[-1][4] - stats[1][4]
    return {"pairs_per_second": sum(s[1] for s in stats[1:-1]) * world_size / span,
            "tokens_per_second": sum(s[2] for s in stats[1:-1]) * world_size / span,
            "seconds_per_step": span / (len(stats) - 2)}


def training_record(trainer, out, curve, world_size: int, train_seconds: float) -> dict:
    """The log's ``training`` part: counts and loss over the whole run, speed of this call."""
    stats, prior = trainer.step_stats, out.prior_steps
    # Counts and loss cover the whole run: the steps before a resume come from the checkpoint.
    whole = (prior or []) + [step_record(s) for s in stats]
    tokens_seen = sum(s[2] for s in whole) * world_size
    padded_seen = sum(s[3] for s in whole) * world_size
    pairs_this_run = sum(s[1] for s in stats) * world_size
    tokens_this_run = sum(s[2] for s in stats) * world_size
    hist = trainer.state.log_history
    return {
        "global_step": trainer.state.global_step,
        "resumed_from_step": int(Path(out.resume_from).name.rsplit("-", 1)[-1]) if out.resume_from else 0,
        "resumed_from": out.resume_from, "steps_this_run": len(stats),
        # False only when resuming from a checkpoint written before step counts were kept
        "counts_cover_whole_run": prior is not None,
        "steps_per_task": dict(Counter(s[0] for s in whole)), "pairs_seen": sum(s[1] for s in whole) * world_size,
        "tokens_seen": tokens_seen, "padded_tokens": padded_seen,
        "padding_efficiency": round(tokens_seen / padded_seen, 4) if padded_seen else None,
        "pairs_seen_this_run": pairs_this_run,
        # this trainer.train() call: includes checkpoint saves and dev evaluation during training
        "pairs_per_second": pairs_this_run / train_seconds if train_seconds else 0.0,
        "tokens_per_second": tokens_this_run / train_seconds if train_seconds else 0.0,
        "steady": _steady(stats, world_size),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
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


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except Exception:
        return "?"


def jsonable(o):
    """``o`` with numpy scalars as Python numbers and anything else unknown as its string."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    return str(o)
