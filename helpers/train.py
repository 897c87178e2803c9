"""``python -m helpers.train``, and the names earlier code imports from ``helpers.train``.

The implementation lives in :mod:`helpers.training` (config, pairs, sampling, encoder, callbacks, card,
trainer, cli); see there. ``_MixingFactory`` stays importable here because checkpoints pickle it by
module path.
"""

from __future__ import annotations

import sys

from helpers.training.callbacks import SimulatedKill, stop_at_step_callback
from helpers.training.cli import main
from helpers.training.config import TrainConfig, TrainResult
from helpers.training.encoder import fit_max_seq_length, freeze_unused_pooler, freeze_word_embeddings
from helpers.training.pairs import (cap_indices, default_data_dir, downsample, frequency_summary,
                                    load_training_pairs, mine_bm25_negatives, mine_model_negatives, run_budget,
                                    sample_budget)
from helpers.training.sampling import TaskMixingBatchSampler, _MixingFactory, temperature_weights
from helpers.training.trainer import train

__all__ = ["SimulatedKill", "TaskMixingBatchSampler", "TrainConfig", "TrainResult", "_MixingFactory", "cap_indices",
           "default_data_dir", "downsample", "fit_max_seq_length", "freeze_unused_pooler", "freeze_word_embeddings",
           "frequency_summary", "load_training_pairs", "main", "mine_bm25_negatives", "mine_model_negatives",
           "run_budget", "sample_budget", "stop_at_step_callback", "temperature_weights", "train"]

if __name__ == "__main__":
    sys.exit(main())
