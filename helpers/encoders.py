"""Dense encoders: a SentenceTransformer set up to turn queries and documents into vectors, with a cache.

:class:`DenseEncoder` owns everything between a text and its vector: loading the model, the prompt of
each side, the encoding length, the precision (fp32, bf16 autocast, int8 ONNX), the fingerprint of
the weights and the per-text embedding cache. :class:`helpers.retrieval.DenseRetriever` indexes and
searches over one, as BEIR keeps its models apart from its exact search.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from helpers.embeddings import EmbeddingCache, encoder_signature, weights_fingerprint
from helpers.precision import check_precision, precision_context


def prompt_names_for(model, task: str | None) -> tuple[str | None, str | None]:
    """The ``(query, document)`` prompt names to use for ``task`` with ``model``.

    Fine-tuned models store one prompt pair per task under ``"<task>_query"`` / ``"<task>_document"``;
    those win when present. Otherwise the generic ``"query"`` / ``"document"`` prompts if the model
    has them, else None (the model's own defaults, usually no prompt).
    """
    prompts = getattr(model, "prompts", None) or {}
    out = []
    for kind in ("query", "document"):
        name = None
        if task and f"{task}_{kind}" in prompts:
            name = f"{task}_{kind}"
        elif kind in prompts:
            name = kind
        out.append(name)
    return out[0], out[1]


def _model_label(model) -> str:
    # helpers.models.load_encoder stamps the registry name on the model; otherwise the folder it
    # was loaded from is the next best label.
    meta = getattr(model, "_helpers_encoder", None)
    if isinstance(meta, dict) and meta.get("name"):
        return str(meta["name"])
    try:
        return str(model[0].auto_model.config._name_or_path) or type(model).__name__
    except Exception:
        return type(model).__name__


class DenseEncoder:
    """A SentenceTransformer that encodes queries and documents with fixed prompts, length and precision.

    Documents go through ``model.encode_document`` and queries through ``model.encode_query`` so
    task routing and the model's own prompts apply. The prompt actually used is resolved here (an
    explicit ``*_prompt`` string, else the ``*_prompt_name`` entry of ``model.prompts``, else what
    sentence-transformers would pick: ``"query"``; ``"document"``/``"passage"``/``"corpus"``; the
    default prompt) and passed explicitly, so what ``identity()`` records is what was encoded.

    ``precision="int8"`` encodes with :func:`helpers.int8.int8_model`: the same tokenizer, prompts
    and pooling, the transformer as an int8 ONNX graph (exported once, cached next to the model).
    ``precision="bf16"`` encodes the same PyTorch model under bfloat16 autocast
    (:func:`helpers.precision.precision_context`). Vectors are fp32 and normalised either way.

    ``max_seq_length`` is this encoder's length (default: the model's own). It is applied only while
    this encoder encodes, so encoders sharing one model never see each other's length.

    Embeddings of documents and queries are cached per text in ``cache_dir`` (``None``: no cache;
    the study's is :func:`helpers.workspace.embedding_cache_dir`; see :class:`EmbeddingCache`), keyed
    by the encoder's weights, tokenizer, ``max_seq_length`` and modules, the precision, the side and
    the prompt, so a changed model or prompt never reuses stale vectors while every unique text is
    encoded once per study whichever corpus it appears in. Query batches of fewer than
    ``min_query_shard`` new texts are cached in memory only, so single-query searches do not litter
    the folder. Within one call, repeated texts are encoded once.
    """

    min_query_shard = 16

    def __init__(self, model_or_name, query_prompt_name: str | None = None, doc_prompt_name: str | None = None,
                 query_prompt: str | None = None, doc_prompt: str | None = None, batch_size: int = 64,
                 cache_dir: str | os.PathLike | None = None, show_progress: bool = True, name: str | None = None,
                 precision: str = "fp32", max_seq_length: int | None = None):
        self.precision = check_precision(precision)
        if isinstance(model_or_name, (str, os.PathLike)):
            from helpers.models import load_encoder

            self.model = load_encoder(str(model_or_name))
            self.model_name = name or str(model_or_name)
        else:
            self.model = model_or_name
            self.model_name = name or _model_label(model_or_name)
        prompts = getattr(self.model, "prompts", None) or {}
        for label, pname in (("query_prompt_name", query_prompt_name), ("doc_prompt_name", doc_prompt_name)):
            if pname is not None and pname not in prompts:
                raise ValueError(f"{label}={pname!r} is not one of the model's prompts: {sorted(prompts)}")
        self.query_prompt_name, self.doc_prompt_name = query_prompt_name, doc_prompt_name
        self.query_prompt = self._resolve(query_prompt, query_prompt_name, ("query",))
        self.doc_prompt = self._resolve(doc_prompt, doc_prompt_name, ("document", "passage", "corpus"))
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.show_progress = show_progress
        self.last_encode: dict = {}
        self._signature: dict | None = None
        self._weights_fp: str | None = None
        self._int8 = None
        if self.precision == "int8":
            self.encoding_model  # export or load now: a broken export fails at construction, not mid-study

    @contextlib.contextmanager
    def _length(self):
        """The model at this encoder's ``max_seq_length`` while inside (the model may be shared)."""
        if self.max_seq_length is None:
            yield
            return
        own = self.model.max_seq_length
        self.model.max_seq_length = self.max_seq_length
        try:
            yield
        finally:
            self.model.max_seq_length = own

    def _resolve(self, prompt, prompt_name, defaults) -> str:
        prompts = getattr(self.model, "prompts", None) or {}
        if prompt is not None:
            return prompt
        if prompt_name is not None:
            return prompts[prompt_name]
        for name in defaults:
            if name in prompts:
                return prompts[name]
        default = getattr(self.model, "default_prompt_name", None)
        return prompts.get(default, "") if default else ""

    @property
    def encoding_model(self):
        """The model that encodes: ``self.model`` (fp32, bf16) or its int8 view, rebuilt if the weights changed."""
        if self.precision != "int8":
            return self.model
        from helpers.int8 import int8_model

        fp = self._weights()
        if self._int8 is None or self._int8[0] != fp:
            self._int8 = (fp, int8_model(self.model, fingerprint=fp))
        return self._int8[1]

    def _weights(self) -> str:
        # Fingerprinted once per refresh() (0.2-1 s for me5-small), not per call: a retriever's queries
        # are encoded with the model as it was when its corpus was indexed.
        if self._weights_fp is None:
            self._weights_fp = weights_fingerprint(self.model)
        return self._weights_fp

    def refresh(self) -> None:
        """Forget the weights' fingerprint and the cache signature: the weights or the length may have changed."""
        self._signature = self._weights_fp = None

    def model_identity(self) -> dict:
        """Name, encoder_identity (when helpers.models provides it), max_seq_length."""
        ident = {"name_or_path": self.model_name,
                 "max_seq_length": self.max_seq_length or getattr(self.model, "max_seq_length", None)}
        try:
            from helpers.models import encoder_identity

            ident["encoder"] = encoder_identity(self.model)
        except ImportError:
            pass
        return ident

    def identity(self) -> dict:
        """What decides the vectors, for result files: model, prompts, precision (and the int8 scheme)."""
        ident = {"model": self.model_identity(), "query_prompt_name": self.query_prompt_name,
                 "doc_prompt_name": self.doc_prompt_name, "query_prompt": self.query_prompt,
                 "doc_prompt": self.doc_prompt, "precision": self.precision}
        if self.precision == "int8":
            from helpers.quantize import SCHEME

            ident["int8"] = dict(SCHEME)
        return ident

    def space(self, side: str, prompt: str) -> tuple[str, dict]:
        """``(key, description)`` of the cache space for one side and prompt with the current model."""
        from helpers.quantize import SCHEME_VERSION

        if self._signature is None:
            with self._length():
                self._signature = encoder_signature(self.model, self._weights())
        description = {"encoder": self._signature, "precision": self.precision, "side": side, "prompt": prompt,
                       "normalized": True, "label": None}
        if self.precision == "int8":
            description["int8_scheme"] = SCHEME_VERSION
        key = EmbeddingCache.space_key(description)
        # The label is for people reading the folder; it is not part of the key.
        return key, dict(description, label=self.model_name)

    def _lookup(self, unique: list[str], side: str, prompt: str):
        """``(found, cache, space, description, keys)``: the cached vectors of ``unique``, and where to add."""
        if self.cache_dir is None:
            return {}, None, None, None, {}
        cache = EmbeddingCache(self.cache_dir)
        space, description = self.space(side, prompt)
        keys = {t: EmbeddingCache.text_key(t) for t in unique}
        hits = cache.get(space, list(keys.values()))
        return {t: hits[keys[t]] for t in unique if keys[t] in hits}, cache, space, description, keys

    def embed(self, texts: list[str], side: str) -> tuple[np.ndarray, int]:
        """Normalised embeddings of ``texts`` (rows in order) and how many of them were encoded now."""
        prompt = self.doc_prompt if side == "document" else self.query_prompt
        unique = list(dict.fromkeys(texts))
        found, cache, space, description, keys = self._lookup(unique, side, prompt)
        missing = [t for t in unique if t not in found]
        seconds = 0.0
        if missing:
            model = self.encoding_model
            encode = model.encode_document if side == "document" else model.encode_query
            show = self.show_progress and (side == "document" or len(missing) > self.batch_size)
            t0 = time.perf_counter()
            with self._length(), precision_context(self.precision, model):
                emb = np.ascontiguousarray(encode(missing, prompt=prompt, batch_size=self.batch_size,
                                                  show_progress_bar=show, normalize_embeddings=True,
                                                  convert_to_numpy=True), dtype=np.float32)
            seconds = time.perf_counter() - t0
            found.update(zip(missing, emb))
            if cache is not None:
                cache.put(space, [keys[t] for t in missing], emb, description,
                          persist=side == "document" or len(missing) >= self.min_query_shard)
        # Model time only (no cache I/O): what helpers.bench divides by.
        self.last_encode = {"side": side, "n_texts": len(texts), "n_encoded": len(missing), "seconds": seconds}
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), 0
        return np.ascontiguousarray(np.stack([found[t] for t in texts]), dtype=np.float32), len(missing)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Normalised query embeddings (rows in order), through the cache like the corpus."""
        return self.embed(list(texts), "query")[0]

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Normalised document embeddings (rows in order): cache warm-up, benchmarks."""
        return self.embed(list(texts), "document")[0]
