"""Multi-task retriever fine-tuning for domain-specific RAG: the case study's toolkit.

Modules are named for what they hold:

- ``helpers.io``: errors that name file/line/field, atomic writes, JSONL reading.
- ``helpers.profiles``: the smoke / cpu / full profile table.
- ``helpers.models``: offline base encoders (``load_encoder``).
- ``helpers.data``: the open enterprise-workflow dataset (catalog, flow generator, builder, validator).
- ``helpers.beir``, ``helpers.metrics``, ``helpers.retrieval``, ``helpers.evaluate``: the harness.
- ``helpers.training``: multi-task instruction fine-tuning on ``SentenceTransformerTrainer`` (``python -m helpers.train``).
- ``helpers.plots``: figures used by the notebooks.
"""

__version__ = "0.1.0"
