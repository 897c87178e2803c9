"""Multi-task instruction fine-tuning of a retriever on ``SentenceTransformerTrainer``, stage by stage.

- :mod:`~helpers.training.config`: :class:`TrainConfig`, one experiment, and its YAML parsing.
- :mod:`~helpers.training.pairs`: training pairs: load, frequency cap, budget, hard-negative mining.
- :mod:`~helpers.training.sampling`: one task per batch, tasks mixed by a rule.
- :mod:`~helpers.training.encoder`: fitted sequence length, frozen parameters.
- :mod:`~helpers.training.callbacks`: the step-counting Trainer and its callbacks.
- :mod:`~helpers.training.card`: sentence-transformers' model card plus this study's section.
- :mod:`~helpers.training.trainer`: :func:`train`, the run in stages.
- :mod:`~helpers.training.catalog_recipe`, :mod:`~helpers.training.catalog_stage`: the catalog recipe (cached
  lower layers, query groups against their task's whole catalog) and its place in :func:`train`.
- :mod:`~helpers.training.cli`: ``python -m helpers.train``.

Evaluation during and after training goes through :mod:`helpers.evaluation`, like every other.
"""

#: Revision of what a run trains for a given config and data. ``helpers.experiments.trained_model`` keys
#: its cached runs on it, so bump it when a code change alters the batches, loss or schedule of a run.
#: 2: every batch full (``FullBatchNoDuplicatesSampler``), not the short end-of-pass batches.
#: 3: the config key ``recipe`` (``catalog``: :mod:`helpers.training.catalog_stage`) and its keys.
#: 4: under a frequency cap, the catalog recipe leaves a query's dropped gold objects out of its loss.
#: 5: the catalog recipe's top layers run in chunks of similar length (other dropout draws, same model).
TRAINER_REVISION = 5
