"""A run's settings: the config and the profile resolved once into one frozen object.

A config field left ``None`` takes the profile's value; that rule lives here and nowhere else, so every
stage of :mod:`helpers.training.trainer` reads one :class:`Settings` instead of merging the two again
(``0`` is a value, never "unset": ``eval_steps: 0`` turns the dev evaluation off).
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers.profiles import Profile
from helpers.training.config import TrainConfig


def pick(config_value, profile_value):
    """The config's value unless it is ``None`` (then the profile's)."""
    return profile_value if config_value is None else config_value


@dataclass(frozen=True)
class Settings:
    """What a run uses where a config and a profile both have a say (resolved by :func:`resolve_settings`)."""

    base_model: str
    batch_size: int
    epochs: float
    max_seq_length: int              # cap on the fitted training length
    eval_steps: int | None           # dev evaluation during training every N steps (None: off)
    max_eval_queries: int | None
    save_steps: int | None           # None: every max(25, steps // 4), known once the steps are
    train_precision: str             # "fp32" or "bf16" (resolved for the device)
    eval_precision: str              # encoding precision of every evaluation in the run

    def save_every(self, max_steps: int) -> int:
        """Checkpoint interval for a run of ``max_steps`` optimizer steps."""
        return self.save_steps or max(25, max_steps // 4)


def resolve_settings(cfg: TrainConfig, prof: Profile, device: str = "cpu") -> Settings:
    """The config over the profile, once. The smoke profile's ``base_model`` (a pipeline check on a
    small model) replaces the config's; ``device`` decides what ``precision: auto`` means."""
    from helpers.precision import resolve_precision

    return Settings(
        base_model=prof.base_model or cfg.base_model,
        batch_size=pick(cfg.batch_size, prof.batch_size),
        epochs=pick(cfg.epochs, prof.epochs),
        max_seq_length=pick(cfg.max_seq_length, prof.max_seq_length),
        eval_steps=pick(cfg.eval_steps, prof.eval_steps) or None,
        max_eval_queries=pick(cfg.max_eval_queries, prof.max_eval_queries),
        save_steps=pick(cfg.save_steps, prof.save_steps),
        train_precision=resolve_precision(pick(cfg.precision, prof.train_precision), device),
        eval_precision=prof.precision)
