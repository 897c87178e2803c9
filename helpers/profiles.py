"""The three run profiles, in one place.

``smoke``  seconds to a couple of minutes per notebook; what CI runs.
``cpu``    the default: the real case study on a 2-core CPU; 82 minutes from scratch in bf16 on a CPU that
           computes bf16 natively (53 of them training; ``python -m helpers.reproduce --timings`` shows
           where the time went), about 173 in fp32, which it falls back to elsewhere (precision "auto").
``full``   paper scale, for users with a GPU.

Notebooks take a ``profile`` parameter and call :func:`get_profile`; CLIs take ``--profile``.
Values are read by the modules that need them (dataset size, training budget, evaluation size).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

from helpers.splits import OOD_SPLITS


@dataclass(frozen=True)
class Profile:
    name: str
    # dataset (helpers.data): number of generated flows per split
    train_flows: int
    dev_flows: int
    ood_flows: int
    # evaluation: cap on queries per task and split (None = all)
    max_eval_queries: int | None
    # training (helpers.train)
    train_pairs: int | None  # pairs sampled per run and task (x tasks with budget_per_task; None = all)
    batch_size: int
    epochs: float
    max_seq_length: int
    eval_steps: int | None
    # ablations (configs with `train_pairs: ablation`): a smaller, documented budget (None: train_pairs)
    ablation_pairs: int | None = None
    # training checkpoints (helpers.train): save every N steps (None: every max(25, steps // 4))
    save_steps: int | None = None
    # smoke only: replace every config's base encoder (a pipeline check, not a result)
    base_model: str | None = None
    # smoke only: cap on the steps of a catalog-recipe run (a config's max_steps wins); None: every pair
    catalog_max_steps: int | None = None
    # smoke only: cap on a catalog-recipe step's query groups (the config's batch_size otherwise): the
    # headline config's 128 groups made each smoke run 8x the work of the pipeline check it is
    catalog_max_batch: int | None = None
    # notebook 03: the caps K of the downsampling ablation
    ablation_caps: tuple[int, ...] = (5, 20, 50)
    # notebook 06: the merge weights swept on dev (None: helpers.merge.DEFAULT_WEIGHTS, six of them); smoke
    # sweeps three, the sweep being most of the notebook's time there
    merge_weights: tuple[float, ...] | None = None
    # notebooks 04 and 06: the OOD splits evaluated (each costs a full encoding of its corpora)
    ood_splits: tuple[str, ...] = OOD_SPLITS
    # numerics: dense encoding in the notebooks ("fp32", "bf16", "int8"; helpers.precision) and the
    # training's matrix products ("fp32" or "bf16" autocast; weights and optimiser stay fp32). "auto":
    # bf16 where the CPU has it natively, else fp32 (emulated bf16 encodes 4x and trains 3x slower
    # than fp32), resolved by get_profile, so a run's key and log name the precision it really used.
    precision: str = "fp32"
    train_precision: str = "fp32"

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_flows=300, dev_flows=40, ood_flows=15, max_eval_queries=40,
                     train_pairs=64, batch_size=16, epochs=1, max_seq_length=64, eval_steps=None,
                     base_model="minilm-l6", ablation_caps=(20,), ood_splits=("ood01", "ood07"),
                     catalog_max_steps=8, catalog_max_batch=16,
                     merge_weights=(0.0, 0.5, 1.0)),
    # Measured here (quiet machine, full batches, native bf16): a 60-step me5-small run of 1,920 pairs takes
    # 1.5-5 minutes by task (fields are short, steps long), a 180-step multi-task run about 11; the
    # case study trains 12 models, 53 minutes of training in all (fp32: about 100).
    "cpu": Profile("cpu", train_flows=8500, dev_flows=300, ood_flows=100, max_eval_queries=None,
                   train_pairs=1920, ablation_pairs=640, batch_size=32, epochs=1, max_seq_length=256,
                   eval_steps=None, precision="auto", train_precision="auto"),
    "full": Profile("full", train_flows=8500, dev_flows=300, ood_flows=100, max_eval_queries=None,
                    train_pairs=None, batch_size=64, epochs=1, max_seq_length=256, eval_steps=500),
}

DEFAULT_PROFILE = "cpu"


def get_profile(name: str | None = None, **overrides) -> Profile:
    """Return the named profile (default: ``$CASE_STUDY_PROFILE`` or ``cpu``), with overrides, its
    ``"auto"`` precisions resolved for this machine (:func:`helpers.precision.resolve_precision`)."""
    from_env = not name and bool(os.environ.get("CASE_STUDY_PROFILE"))
    name = name or os.environ.get("CASE_STUDY_PROFILE") or DEFAULT_PROFILE
    if name not in PROFILES:
        where = " (from $CASE_STUDY_PROFILE)" if from_env else ""
        raise ValueError(f"unknown profile {name!r}{where}; choose one of: {', '.join(PROFILES)}")
    prof = replace(PROFILES[name], **overrides) if overrides else PROFILES[name]
    from helpers.precision import resolve_precision

    return replace(prof, precision=resolve_precision(prof.precision),
                   train_precision=resolve_precision(prof.train_precision))
