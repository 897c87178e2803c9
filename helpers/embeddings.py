"""The per-text embedding cache and the fingerprints that key it.

An embedding depends on the encoder (weights, tokenizer, ``max_seq_length``, module pipeline), the
precision, the side (query or document), the prompt and the text. :func:`encoder_signature` captures
the encoder part; :class:`EmbeddingCache` stores vectors per ``(space, text)``. Where the cache lives:
:func:`helpers.workspace.embedding_cache_dir` (``$CASE_STUDY_CACHE/embeddings``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import logging
import os
import weakref
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from helpers.io import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)


def weights_fingerprint(model) -> str:
    """sha256 over the model's parameters and buffers (names, dtypes, shapes, bytes).

    Catches fine-tuned weights that were never saved, which a name or path cannot.
    """
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _module_config(module) -> dict:
    get = getattr(module, "get_config_dict", None)
    try:
        config = get() if callable(get) else {}
    except Exception:  # a custom module whose config cannot be read: its type still names it
        config = {}
    return {"type": type(module).__name__, "config": config}


# Memo of tokenizer fingerprints: serializing a 250k-piece vocabulary costs ~0.1 s and the same
# tokenizer object is fingerprinted for every index() call.
_TOKENIZER_FP: "weakref.WeakKeyDictionary[object, tuple[int, str]]" = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(model) -> str | None:
    """sha256 of the model's tokenizer (vocabulary, normalizer, pre-tokenizer, special tokens).

    Truncation and padding settings are left out: sentence-transformers sets them per call, and
    ``max_seq_length`` is part of the cache key on its own.
    """
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return None
    size = len(tok) if hasattr(tok, "__len__") else -1
    try:
        memo = _TOKENIZER_FP.get(tok)
    except TypeError:  # not weak-referenceable
        memo = None
    if memo is not None and memo[0] == size:
        return memo[1]
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        payload = json.dumps(state, sort_keys=True, ensure_ascii=False)
    else:
        payload = json.dumps({"class": type(tok).__name__, "size": size,
                              "vocab": sorted(tok.get_vocab().items()) if hasattr(tok, "get_vocab") else None})
    fp = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    with contextlib.suppress(TypeError):
        _TOKENIZER_FP[tok] = (size, fp)
    return fp


def encoder_signature(model, weights: str | None = None) -> dict:
    """What determines a text's embedding besides the prompt and the precision.

    Weights (sha256), tokenizer, ``max_seq_length`` and the module pipeline (pooling, normalisation,
    ...). Not the model's name: the same weights under two labels share one cache. ``weights`` is
    :func:`weights_fingerprint` when the caller already has it.
    """
    try:
        modules = [_module_config(m) for m in model]
    except TypeError:
        modules = [{"type": type(model).__name__}]
    return {"weights": weights or weights_fingerprint(model), "tokenizer": tokenizer_fingerprint(model),
            "max_seq_length": getattr(model, "max_seq_length", None), "modules": modules}


class EmbeddingCache:
    """A folder of embeddings keyed by ``(space, text)``: each text is encoded once per space.

    A *space* is everything an embedding depends on except the text: the encoder
    (:func:`encoder_signature`), the precision, the side (query or document) and the prompt. Its key
    is a sha256 prefix of those. Each batch of newly encoded texts is one shard, two files named
    ``<space>-<shard>.npy`` (the vectors) and ``.json`` (the texts' sha256 in row order, and what the
    space is), written atomically, the ``.json`` last: a shard without its ``.json`` does not exist.
    Shards are never rewritten, so readers need no lock; two processes encoding the same texts at
    once write equal shards under the same name.

    Shards are read once per process and kept in memory (``_spaces``), so a translated split whose
    corpus is the English one, or an OOD split that shares tables with another, is served from the
    vectors already read. Unreadable shards are reported and ignored (their texts are re-encoded).
    """

    FORMAT = 2
    _spaces: dict[tuple[str, str], dict] = {}

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @staticmethod
    def text_key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    @staticmethod
    def space_key(description: Mapping) -> str:
        payload = json.dumps({"format": EmbeddingCache.FORMAT, **description}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def _space(self, space: str) -> dict:
        state = self._spaces.setdefault((str(self.folder.resolve()), space), {"shards": set(), "rows": {}})
        if not self.folder.is_dir():
            return state
        for meta_path in sorted(self.folder.glob(f"{space}-*.json")):
            if meta_path.name in state["shards"]:
                continue
            state["shards"].add(meta_path.name)
            npy = meta_path.with_suffix(".npy")
            try:
                info = json.loads(meta_path.read_text("utf-8"))
                vectors = np.load(npy, allow_pickle=False)
                keys = [bytes.fromhex(h) for h in info["text_sha256"]]
            except (OSError, ValueError, KeyError, TypeError) as e:
                logger.warning("ignoring unreadable embedding cache shard %s: %s", npy, e)
                continue
            if vectors.ndim != 2 or vectors.shape[0] != len(keys) or vectors.dtype != np.float32:
                logger.warning("ignoring embedding cache shard %s: %s %s array for %d texts", npy, vectors.dtype,
                               vectors.shape, len(keys))
                continue
            for i, k in enumerate(keys):
                state["rows"].setdefault(k, vectors[i])  # first shard in name order wins: deterministic
        return state

    def get(self, space: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        rows = self._space(space)["rows"]
        return {k: rows[k] for k in keys if k in rows}

    def put(self, space: str, keys: Sequence[bytes], vectors: np.ndarray, description: Mapping,
            persist: bool = True) -> None:
        """Add vectors; ``persist=False`` keeps them in this process only (tiny query batches)."""
        state = self._space(space)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for k, v in zip(keys, vectors):
            state["rows"].setdefault(k, v)
        if not persist or not len(keys):
            return
        shard = hashlib.sha256(b"".join(sorted(keys))).hexdigest()[:16]
        base = self.folder / f"{space}-{shard}"
        buf = _io.BytesIO()
        np.save(buf, vectors)
        atomic_write_bytes(base.with_suffix(".npy"), buf.getvalue())
        atomic_write_json(base.with_suffix(".json"), {
            "format": self.FORMAT, "space": dict(description), "n": len(keys), "dim": int(vectors.shape[1]),
            "text_sha256": [k.hex() for k in keys]}, indent=None)
        state["shards"].add(base.with_suffix(".json").name)
