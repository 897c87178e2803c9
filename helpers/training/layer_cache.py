"""The frozen lower layers' output per distinct text, computed once: :class:`LayerCache`.

A step of the catalog recipe (:mod:`helpers.training.catalog_recipe`) runs only the trainable top
layers; their input, the layer-``L`` hidden states of ``prompt + text`` tokenized at the training length,
comes from here. Each text is run through the bottom once (:meth:`SplitEncoder.bottom
<helpers.training.split_encoder.SplitEncoder.bottom>`) and its real tokens' states are kept, bf16 by
default (half the memory; cosine > 0.999 to the full model's embedding), in memory and, with a folder,
on disk (:func:`layer_cache_dir`: ``$CASE_STUDY_CACHE/layers``).

Keys, like :class:`helpers.embeddings.EmbeddingCache`'s: a *space* is everything the states depend on
except the text -- the bottom's weights (:func:`helpers.embeddings.weights_fingerprint` over the embeddings
and layers ``[0, L)`` only, so runs that train different tops of one base, e.g. three seeds, share the
cache), the tokenizer, the backbone class and attention implementation, ``L``, the max length, the prompt
and the storage dtype -- hashed to a key; each text is keyed by its sha256.

On disk, each batch of newly computed texts is one shard ``<space>-<shard>.safetensors`` (states of all
its tokens, per-text lengths and text keys), written atomically, with the space description and a sha256
of its tensors in the header. A shard that cannot be read, whose description is not the space's (stale),
whose shapes disagree or whose checksum fails (corrupt) is never used: it is reported, deleted (cache
shards are this module's own files) and its texts are computed again.

Texts are run through the bottom in batches of equal token length, so no batch is padded and a text's
states do not depend on which other texts were computed with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from helpers.embeddings import tokenizer_fingerprint, weights_fingerprint
from helpers.io import DataError, atomic_write_bytes, check_writable
from helpers.training.split_encoder import SplitEncoder

logger = logging.getLogger(__name__)

DTYPES = ("bf16", "fp32")
#: The config key a cache folder comes from (helpers.training.config); named in errors about it.
FIELD = "layer_cache_dir"


def layer_cache_dir() -> Path:
    """Where cached layer states live on disk: ``<helpers.workspace.cache_root()>/layers``."""
    from helpers.workspace import cache_root

    return cache_root() / "layers"


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _checksum(states, lengths, keys) -> str:
    import torch

    h = hashlib.sha256()
    for t in (states, lengths, keys):
        t = t.contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class LayerCache:
    """Layer-``L`` states of ``prompt + text`` for one :class:`SplitEncoder` and max length.

    :meth:`ensure` computes (or reads from disk) whatever is missing; :meth:`states` then returns one
    ``(tokens, hidden)`` tensor per text. ``stats`` counts texts computed, texts read from disk and shards
    rejected (stale or corrupt), so nothing is skipped unreported.
    """

    FORMAT = 1

    def __init__(self, split: SplitEncoder, max_length: int, folder: str | os.PathLike | None = None,
                 dtype: str = "bf16", batch_size: int = 64, shard_size: int = 4096, progress: bool = False):
        if dtype not in DTYPES:
            raise DataError(f"storage dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", field="dtype")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise DataError(f"must be a whole number of tokens >= 2, got {max_length!r}", field="max_seq_length")
        self.split, self.max_length, self.dtype = split, max_length, dtype
        self.batch_size, self.shard_size, self.progress = batch_size, shard_size, progress
        self.folder = None if folder is None else Path(folder).expanduser()
        if self.folder is not None:
            if self.folder.exists() and not self.folder.is_dir():
                raise DataError("the layer cache folder is a file; remove it or choose another folder",
                                file=self.folder, field=FIELD)
            check_writable(self.folder, flag=FIELD)
        self._bottom_fp = weights_fingerprint(_Modules(split.bottom_modules()))
        self._spaces: dict[str, dict] = {}
        self.stats = {"computed": 0, "read_from_disk": 0, "rejected_shards": 0}

    # ------------------------------------------------------------------------------------ keys
    def description(self, prompt: str) -> dict:
        backbone = self.split.backbone
        return {"format": self.FORMAT, "bottom_weights": self._bottom_fp,
                "tokenizer": tokenizer_fingerprint(self.split.model), "backbone": type(backbone).__name__,
                "attention": getattr(backbone.config, "_attn_implementation", None), "cut": self.split.cut,
                "max_length": self.max_length, "prompt": prompt, "dtype": self.dtype}

    def _space(self, prompt: str) -> dict:
        if prompt not in self._spaces:
            desc = self.description(prompt)
            payload = json.dumps(desc, sort_keys=True)
            self._spaces[prompt] = {"key": hashlib.sha256(payload.encode()).hexdigest()[:32], "payload": payload,
                                    "rows": {}, "prompt_length": self._prompt_length(prompt)}
            self._read_disk(self._spaces[prompt])
        return self._spaces[prompt]

    def _prompt_length(self, prompt: str) -> int | None:
        if not prompt:
            return None
        return self.split.tokenize(["x"], prompt, self.max_length).get("prompt_length")

    def prompt_length(self, prompt: str) -> int | None:
        """Tokens of ``prompt`` (for pooling that leaves the prompt out), or None without a prompt."""
        return self._space(prompt)["prompt_length"]

    # ------------------------------------------------------------------------------------ use
    def ensure(self, texts: Sequence[str], prompt: str = "") -> int:
        """Make every text's states available; returns how many were computed now."""
        space = self._space(prompt)
        missing = list(dict.fromkeys(t for t in texts if text_key(t) not in space["rows"]))
        if not missing:
            return 0
        computed = self._compute(missing, prompt)
        keys = [text_key(t) for t in missing]
        for k, s in zip(keys, computed):
            space["rows"][k] = s
        self.stats["computed"] += len(missing)
        if self.folder is not None:
            for i in range(0, len(keys), self.shard_size):
                self._write_shard(space, keys[i:i + self.shard_size], computed[i:i + self.shard_size])
        return len(missing)

    def states(self, texts: Sequence[str], prompt: str = "") -> list:
        """One ``(tokens, hidden)`` tensor per text (in the storage dtype); :meth:`ensure` them first."""
        rows = self._space(prompt)["rows"]
        try:
            return [rows[text_key(t)] for t in texts]
        except KeyError:
            raise KeyError("a text was never cached: call LayerCache.ensure(texts, prompt) first") from None

    # ------------------------------------------------------------------------------------ compute
    def _compute(self, texts: list[str], prompt: str) -> list:
        """Bottom states of ``texts`` (in order), batched by equal token length (no padding)."""
        import torch
        from tqdm.auto import tqdm

        store = torch.bfloat16 if self.dtype == "bf16" else torch.float32
        per_text: list[dict] = []
        for i in range(0, len(texts), 1024):
            feats = self.split.tokenize(texts[i:i + 1024], prompt, self.max_length)
            keep = feats["attention_mask"].bool()
            names = [n for n in ("input_ids", "token_type_ids", "attention_mask") if n in feats]
            per_text += [{n: feats[n][j][keep[j]] for n in names} for j in range(keep.shape[0])]
        by_len: dict[int, list[int]] = defaultdict(list)
        for j, f in enumerate(per_text):
            by_len[int(f["input_ids"].shape[0])].append(j)
        batches = [idx[k:k + self.batch_size] for n in sorted(by_len) for idx in [by_len[n]]
                   for k in range(0, len(idx), self.batch_size)]
        out: list = [None] * len(texts)
        for idx in tqdm(batches, desc="cache lower layers", unit="batch", disable=not self.progress):
            feats = {n: torch.stack([per_text[j][n] for j in idx]) for n in per_text[idx[0]]}
            for j, s in zip(idx, self.split.bottom(feats)):
                out[j] = s.to(store)
        return out

    # ------------------------------------------------------------------------------------ disk
    def _shard_paths(self, space: dict) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"{space['key']}-*.safetensors"))

    def _write_shard(self, space: dict, keys: list[bytes], states: list) -> None:
        import torch
        from safetensors.torch import save

        flat = torch.cat(states).contiguous()
        lengths = torch.tensor([s.shape[0] for s in states], dtype=torch.int64)
        key_t = torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8).reshape(len(keys), 32)
        meta = {"space": space["payload"], "checksum": _checksum(flat, lengths, key_t), "n": str(len(keys))}
        name = hashlib.sha256(b"".join(sorted(keys))).hexdigest()[:16]
        data = save({"states": flat, "lengths": lengths, "keys": key_t}, metadata=meta)
        atomic_write_bytes(self.folder / f"{space['key']}-{name}.safetensors", data)

    def _read_disk(self, space: dict) -> None:
        from safetensors import SafetensorError

        for path in self._shard_paths(space):
            try:
                keys, states = self._read_shard(path, space)
            except (SafetensorError, OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
                self.stats["rejected_shards"] += 1
                logger.warning("layer cache: rejecting %s (%s); its texts are computed again", path, e)
                path.unlink(missing_ok=True)
                continue
            for k, s in zip(keys, states):
                space["rows"].setdefault(k, s)
            self.stats["read_from_disk"] += len(keys)

    def _read_shard(self, path: Path, space: dict) -> tuple[list[bytes], list]:
        """A shard's keys and per-text states, or ValueError saying why it is stale or corrupt."""
        import torch
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {n: f.get_tensor(n) for n in ("states", "lengths", "keys")}
        if meta.get("space") != space["payload"]:
            raise ValueError("stale: its key does not describe this model, cut, length and prompt")
        flat, lengths, keys = tensors["states"], tensors["lengths"], tensors["keys"]
        want = torch.bfloat16 if self.dtype == "bf16" else torch.float32
        n = int(meta.get("n", -1))
        if flat.dtype != want or flat.ndim != 2 or flat.shape[1] != self.split.hidden_size \
                or lengths.shape != (n,) or keys.shape != (n, 32) or n < 1 \
                or int(lengths.min()) < 1 or int(lengths.max()) > self.max_length \
                or int(lengths.sum()) != flat.shape[0]:
            raise ValueError(f"corrupt: shapes {tuple(flat.shape)} {tuple(lengths.shape)} {tuple(keys.shape)} "
                             f"{flat.dtype} do not fit {n} texts")
        if _checksum(flat, lengths, keys) != meta.get("checksum"):
            raise ValueError("corrupt: checksum mismatch")
        return [bytes(k.tolist()) for k in keys], list(torch.split(flat, lengths.tolist()))


class _Modules:
    """A list of modules seen as one ``state_dict`` (what :func:`weights_fingerprint` hashes)."""

    def __init__(self, modules):
        self.modules = modules

    def state_dict(self) -> dict:
        return {f"{i}.{k}": v for i, m in enumerate(self.modules) for k, v in m.state_dict().items()}
