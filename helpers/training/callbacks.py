"""The Trainer as a run uses it: a step-counting subclass, progress and checkpoint callbacks.

:class:`CountingTrainer` records each step's task, pairs, tokens (real and padded) and loss, which the
run log turns into pairs/s, padding efficiency and the task-per-step plan; ``SaveStepStats`` writes
those records into every checkpoint so a resumed run reports the whole run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from helpers.io import OUTPUT_MARKER, atomic_write_json


def trainer_classes():
    """``(CountingTrainer, QuietProgress, StopAtStep, SaveStepStats)``, built on first use (imports are slow)."""
    return (_counting_trainer_class(), *_callback_classes())


def _counting_trainer_class():
    from sentence_transformers import SentenceTransformerTrainer

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

    CountingTrainer.data_collator_class = task_length_collator_class()
    return CountingTrainer


def _callback_classes():
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

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
                    "steps": (self.prior or []) + [step_record(s) for s in self.trainer.step_stats]})

    return QuietProgress, StopAtStep, SaveStepStats


def task_length_collator_class():
    """sentence-transformers' data collator, cutting each batch's texts at its task's length.

    Batches hold one task each (homogeneous batches), so ``task_lengths`` (task -> tokens, set on the
    instance) can give every task a length fitted to its own texts.
    """
    from dataclasses import dataclass, field

    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator

    @dataclass
    class TaskLengthCollator(SentenceTransformerDataCollator):
        task_lengths: dict = field(default_factory=dict)

        def __call__(self, features):
            if self.task_lengths and features and "dataset_name" in features[0]:
                self.max_length = self.task_lengths.get(features[0]["dataset_name"])
            return super().__call__(features)

    return TaskLengthCollator


def learning_curve_callback(steps, evaluate):
    """A Trainer callback that runs ``evaluate()`` (-> ``{task: value}``) at the given steps (0: before
    the first step) and at the last step, so a curve always ends at the model that is saved. Its
    ``points`` record each with the training time so far, evaluation excluded, so the curve can be
    read against steps and wall time."""
    from transformers import TrainerCallback

    class LearningCurve(TrainerCallback):
        def __init__(self):
            self.steps, self.points = set(steps), []
            self.t0, self.eval_seconds = None, 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()
            if 0 in self.steps and state.global_step == 0:
                self._point(0)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in self.steps and state.is_world_process_zero:
                self._point(state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            done = {p["step"] for p in self.points}
            if self.steps and state.global_step not in done and state.is_world_process_zero:
                self._point(state.global_step)

        def _point(self, step: int) -> None:
            t = time.perf_counter()
            dev = evaluate()
            took = time.perf_counter() - t
            self.points.append({"step": step, "train_seconds": round(t - self.t0 - self.eval_seconds, 1),
                                "eval_seconds": round(took, 1), "dev": dev})
            self.eval_seconds += took
            # a long run shows its curve as it goes, not only in the log written at the end
            from tqdm.auto import tqdm
            tqdm.write(f"[curve] step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in dev.items())
                       + f" ({self.points[-1]['train_seconds']:.0f} s training)", file=sys.stderr)

    return LearningCurve()


STEP_STATS_FILE = "helpers_step_stats.json"


def step_record(stat: tuple) -> list:
    """``[task, pairs, tokens, padded tokens, loss]`` of one step (the timestamp is this process's only)."""
    return [stat[0], stat[1], stat[2], stat[3], stat[5]]


def load_step_stats(checkpoint: str | os.PathLike) -> list | None:
    """The steps up to ``checkpoint`` as :func:`step_record` lists; None when the checkpoint predates them."""
    path = Path(checkpoint) / STEP_STATS_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved["steps"] if isinstance(saved, dict) and saved.get("complete") else None


def drop_if_empty(out: Path, ckpt_dir: Path, created_out: bool) -> None:
    """After a failed run, remove the folders it created that hold nothing (no checkpoint was saved)."""
    with contextlib.suppress(OSError):
        if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
            ckpt_dir.rmdir()
    if created_out and out.is_dir() and {p.name for p in out.iterdir()} <= {OUTPUT_MARKER}:
        shutil.rmtree(out, ignore_errors=True)


def clear_checkpoints(ckpt_dir: Path) -> None:
    """Remove the ``checkpoint-<step>`` folders the Trainer wrote in ``ckpt_dir`` and the catalog recipe's
    ``checkpoint-<step>.pt`` files (a fresh run must not resume from them); any other file there is kept."""
    for ckpt in ckpt_dir.glob("checkpoint-*"):
        if ckpt.is_symlink():
            continue
        if ckpt.is_dir() and ckpt.name.removeprefix("checkpoint-").isdigit():
            shutil.rmtree(ckpt)
        elif ckpt.is_file() and ckpt.suffix == ".pt" and ckpt.stem.removeprefix("checkpoint-").isdigit():
            ckpt.unlink()
    with contextlib.suppress(OSError):
        ckpt_dir.rmdir()   # only if empty


class SimulatedKill(RuntimeError):
    """Raised by :func:`stop_at_step_callback` to interrupt a run the way a kill would."""


def stop_at_step_callback(step: int):
    """A Trainer callback that interrupts training after ``step`` steps (a simulated kill)."""
    return trainer_classes()[2](step)


def world() -> tuple[int, int]:
    """``(world size, rank)`` of this process (1, 0 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def latest_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` folder in ``ckpt_dir``, or None."""
    if not ckpt_dir.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(ckpt_dir))
