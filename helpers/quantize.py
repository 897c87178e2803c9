"""The int8 ONNX export of a SentenceTransformer's transformer: trace, calibration, quantization, manifest.

The precision policy (``fp32``, ``bf16``, ``int8``, ``auto``; where bf16 pays) is :mod:`helpers.precision`;
this module is what ``precision="int8"`` runs. It missed the issue #13 bar (>= 2.5x, recall within
0.005) and is kept as an option.

:func:`export_int8` writes the int8 graph of a model's transformer; :func:`load_int8_session` reuses a
valid export; :func:`helpers.int8.int8_model` encodes with it.

Why this route and not sentence-transformers' own ``backend="onnx"`` / ``"openvino"`` with
``export_dynamic_quantized_onnx_model`` / ``export_static_quantized_openvino_model``: those go through
Optimum, and no Optimum release installs next to our pins (optimum-onnx 0.1.0 requires
transformers<4.58, optimum-intel 2.2.0 transformers<5.6; we pin 5.23). So the same recipe is done here
with the two packages that do install: the transformer is traced to ONNX with torch's TorchScript
exporter (opset 17, dynamic batch and sequence axes), then ``onnxruntime.quantization.quantize_dynamic``
quantizes the MatMul weights (int8, symmetric, per output channel, as Optimum's ``avx512_vnni``
preset) and the embedding tables (Gather), with activations quantized at run time.

Three choices, each measured on me5-small and the dev split of the cpu dataset (``python -m
helpers.bench --precision fp32 int8``, see README):

* per-channel weights: mean cosine to fp32 0.997 on 400 field documents, against 0.988 per tensor
  and 0.975 for torch's ``quantize_dynamic`` on the Linear layers (issue #13). Quantizing the embedding tables changes cosines by
  < 1e-4 and makes the file 4x smaller (118 MB instead of 407 MB; the 250k-token vocabulary is 82%
  of me5-small's weights).
* Linear layers whose input has extreme outliers stay fp32 (:data:`OUTLIER_RATIO`, decided per
  model from its own activations at export): mean cosine to fp32 over all dev documents 0.9989
  instead of 0.9969.
* one text per ONNX Runtime call (:mod:`helpers.int8`): activation scales are per tensor, so in a
  padded batch a text's embedding depends on its batch partners.

Where the export lives: ``<model folder>/onnx/model_qint8.onnx`` with ``model_qint8.json`` beside it
when the model was loaded from a writable folder (a fine-tuned run, the converted me5-small in the
cache), else ``$CASE_STUDY_CACHE/onnx/<label>-<weights sha256[:16]>/`` (e.g. minilm-l6, whose folder
is inside an installed package). The manifest records the sha256 of the weights it was exported from
and of the ONNX file: other weights (a retrained model in the same folder) re-export; a file whose
bytes do not match its manifest is corrupt and raises :class:`helpers.io.DataError` naming it. Both
files are written through temporary files and renamed, manifest last, so a crash never leaves a
half-written model that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from helpers.io import DataError, atomic_write_json

logger = logging.getLogger(__name__)

# Bump when the export or quantization recipe changes: manifests with another version re-export.
SCHEME_VERSION = 2
# A Linear layer stays fp32 when its input's range is this many standard deviations wide (median
# over the calibration texts): activations are quantized per tensor to 256 levels, so the step is
# then > 0.4 std and most values fall on a handful of levels. In me5-small three FFN output
# projections cross it (layers 0, 4, 5: 138, 138, 112 on the calibration texts below), the next is
# at 86 and the other 68 Linear layers are under 75; minilm-l6 peaks at 90, so it is quantized
# whole. Keeping those three in fp32 takes me5-small's 1 - cosine to fp32 (mean over the dev texts)
# from 0.0031 to 0.0011 for 12% of the int8 speed; all twelve FFN output projections in fp32 cost 25%
# and gained no recall on the German dev split.
OUTLIER_RATIO = 100.0
SCHEME = {
    "format": "onnx",
    "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
    "opset": 17,
    "quantization": "onnxruntime.quantization.quantize_dynamic",
    "weights": "int8 symmetric per-channel",
    "activations": "uint8 dynamic, per tensor, one text per run",
    "op_types": ["MatMul", "Gather"],
    "fp32_layers": f"Linear layers whose input max|x|/std > {OUTLIER_RATIO:g} (median over calibration texts)",
    "version": SCHEME_VERSION,
}
ONNX_NAME, MANIFEST_NAME = "model_qint8.onnx", "model_qint8.json"

# Calibration for the outlier rule: every text is run alone (no padding), as at inference.
_CALIBRATION_TEXTS = [
    "query: How do I reset my password?",
    "passage: Create a record in incident when the urgent server outage changes; set assigned_to from the "
    "trigger record and route it to the assignment group owner.",
    "query: Given a request for an enterprise workflow, retrieve the database tables it uses: when a new hire "
    "starts, order a laptop and notify their manager",
    "passage: sys_user.manager (Reference to sys_user): the user's manager, who approves their requests.",
    "query: Wie setze ich mein Passwort zurück?",
    "passage: La facture a été approuvée par l'équipe financière vendredi.",
    "query: 請求書は金曜日に経理チームによって承認されました。",
    "passage: Look up records in cmdb_ci_server; for each, ask for approval on the change request.",
]

# The export's own check (fp32 graph vs torch, int8 cosine): varied lengths so that the traced
# attention mask sees padding.
_CHECK_TEXTS = ["query: How do I reset my password?",
                "passage: Update the record in sn_hr_core_case when the approved onboarding request changes; "
                "set u_cost_center from the trigger record and route it to the assignment group owner.",
                "a"]


def _ort():
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - requirements.txt pins it
        raise ImportError("the int8 path needs onnxruntime and onnx (pip install -r requirements.txt)") from e
    return onnxruntime


# ---------------------------------------------------------------------------------------- where


def _model_folder(model) -> Path | None:
    meta = getattr(model, "_helpers_encoder", None)
    if isinstance(meta, dict) and meta.get("path"):
        path = Path(meta["path"])
        if path.is_dir():
            return path
    return None


def _inside_installed_package(path: Path) -> bool:
    resolved = path.resolve()
    for key in ("purelib", "platlib"):
        root = Path(sysconfig.get_paths()[key]).resolve()
        if resolved == root or root in resolved.parents:
            return True
    return False


def model_label(model) -> str:
    """A short file-name-safe label for ``model``: its registry name or folder name, else its class."""
    meta = getattr(model, "_helpers_encoder", None)
    name = str(meta.get("name")) if isinstance(meta, dict) and meta.get("name") else type(model).__name__
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name)[:48] or "model"


def export_dir(model, fingerprint: str | None = None) -> Path:
    """Where ``model``'s int8 export lives (see the module doc)."""
    folder = _model_folder(model)
    if folder is not None and os.access(folder, os.W_OK) and not _inside_installed_package(folder):
        return folder / "onnx"
    from helpers.embeddings import weights_fingerprint
    from helpers.workspace import cache_root

    fingerprint = fingerprint or weights_fingerprint(model)
    return cache_root() / "onnx" / f"{model_label(model)}-{fingerprint[:16]}"


# ----------------------------------------------------------------------------------------- export


def text_transformer(model):
    """The sentence-transformers ``Transformer`` module whose forward the int8 graph replaces."""
    from sentence_transformers.base.modules.transformer import Transformer

    first = model[0]
    modality = (getattr(first, "modality_config", None) or {}).get("text", {})
    if (not isinstance(first, Transformer) or modality.get("method") != "forward"
            or modality.get("method_output_name") != "last_hidden_state"):
        raise ValueError("the int8 path supports SentenceTransformers whose first module is a text Transformer "
                         f"returning last_hidden_state; got {type(first).__name__} {modality or ''}")
    return first


def _input_names(model) -> list[str]:
    """The tokenizer outputs the transformer's forward takes, in a fixed order."""
    import inspect

    tr = text_transformer(model)
    features = model.preprocess(_CHECK_TEXTS[:2])
    accepted = set(inspect.signature(tr.auto_model.forward).parameters)
    return [n for n in ("input_ids", "attention_mask", "token_type_ids", "position_ids")
            if n in features and n in accepted]


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_features(model, names: list[str]) -> dict[str, Any]:
    features = model.preprocess(_CHECK_TEXTS)
    # The trace must see padding: a batch without it could bake the "no mask needed" branch of the
    # attention-mask code into the graph.
    if not bool((features["attention_mask"] == 0).any()):
        raise RuntimeError("the export's check batch tokenized without padding; cannot trace the mask path")
    return {n: features[n] for n in names}


def _export_fp32(model, names: list[str], path: Path) -> None:
    import torch

    hf = text_transformer(model).auto_model

    class _Forward(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(names, args)), return_dict=True).last_hidden_state

    features = _check_features(model, names)
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic["last_hidden_state"] = {0: "batch", 1: "sequence"}
    was_training = hf.training
    hf.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter warns that it is deprecated and about traced Python branches;
            # the numerical check after export is what guards the result.
            warnings.simplefilter("ignore")
            torch.onnx.export(_Forward(hf), tuple(features[n] for n in names), str(path), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=dynamic,
                              opset_version=SCHEME["opset"], dynamo=False, do_constant_folding=True)
    finally:
        hf.train(was_training)


def outlier_ratios(model) -> dict[str, float]:
    """``{linear module name: median over calibration texts of max|input| / std(input)}``."""
    import torch

    hf = text_transformer(model).auto_model
    names = _input_names(model)
    seen: dict[str, list[float]] = {}
    hooks = []

    def hook(name):
        def record(module, args, output):
            x = args[0].detach().float()
            seen.setdefault(name, []).append(float(x.abs().max() / x.std().clamp_min(1e-12)))
        return record

    for name, module in hf.named_modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = hf.training
    hf.eval()
    try:
        with torch.no_grad():
            for text in _CALIBRATION_TEXTS:
                features = model.preprocess([text])
                hf(**{n: features[n] for n in names}, return_dict=True)
    finally:
        hf.train(was_training)
        for h in hooks:
            h.remove()
    return {name: float(np.median(v)) for name, v in seen.items()}


def _onnx_matmul(fp32_path: Path, linear_names: list[str]) -> dict[str, str]:
    """The ONNX MatMul node of each torch Linear that is in the graph.

    The TorchScript exporter names a node after its module path. A Linear whose output does not
    reach ``last_hidden_state`` (BERT's pooler) is pruned from the graph and has no node.
    """
    import onnx

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    # "/inner/encoder/layer.0/output/dense/MatMul" is module "encoder.layer.0.output.dense".
    by_module = {n.name[len("/inner/"):-len("/MatMul")].replace("/", "."): n.name for n in graph.node
                 if n.op_type == "MatMul" and n.name.startswith("/inner/") and n.name.endswith("/MatMul")}
    out = {name: by_module[name] for name in linear_names if name in by_module}
    if linear_names and not out:
        # Naming scheme not understood: quantizing everything would silently ignore the outlier rule.
        raise RuntimeError(f"no ONNX MatMul node matches any Linear layer of the model (e.g. {linear_names[0]!r}) "
                           f"in {fp32_path.name}; cannot tell which layers to keep fp32")
    return out


def _session(data: bytes | Path, source: Path):
    ort = _ort()
    import torch

    opts = ort.SessionOptions()
    # Follow torch's thread setting so fp32 and int8 share the same CPU budget when compared.
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(data if isinstance(data, bytes) else str(data), opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        raise DataError(f"corrupt or unreadable exported model ({type(e).__name__}: {str(e)[:300]}); "
                        "delete it (and its manifest) to re-export", file=source) from e


def _run_session(session, names: list[str], features: dict) -> np.ndarray:
    feeds = {n: np.ascontiguousarray(to_numpy(features[n]), dtype=np.int64) for n in names}
    return session.run(["last_hidden_state"], feeds)[0]


def to_numpy(x) -> np.ndarray:
    """A torch tensor or array-like as a numpy array (ONNX Runtime feeds)."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _torch_hidden(model, names: list[str], features: dict) -> np.ndarray:
    """The torch transformer's ``last_hidden_state`` for ``features``: the reference the export must match."""
    import torch

    hf = text_transformer(model).auto_model
    was_training = hf.training
    hf.eval()
    try:
        with torch.no_grad():
            return hf(**{n: features[n] for n in names}, return_dict=True).last_hidden_state.numpy()
    finally:
        hf.train(was_training)


def _quantize(fp32_path: Path, int8_path: Path, keep_fp32_nodes: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _PreprocessingHint()
    # quantize_dynamic logs "Please consider to run pre-processing before quantization" through
    # the root logger on every call; that advice is for static quantization.
    logging.getLogger().addFilter(hint)
    try:
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=False, op_types_to_quantize=list(SCHEME["op_types"]),
                         nodes_to_exclude=keep_fp32_nodes)
    finally:
        logging.getLogger().removeFilter(hint)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def export_int8(model, out_dir: str | os.PathLike | None = None, fingerprint: str | None = None) -> Path:
    """Export ``model``'s transformer to int8 ONNX in ``out_dir`` (default :func:`export_dir`).

    Always exports (use :func:`load_int8_session` to reuse a valid export). Returns the ONNX path.
    Before quantizing, the fp32 graph is run on a small padded batch and compared with torch, so a
    bad trace fails here instead of degrading every embedding.
    """
    from helpers.embeddings import weights_fingerprint

    fingerprint = fingerprint or weights_fingerprint(model)
    out_dir = Path(out_dir) if out_dir is not None else export_dir(model, fingerprint)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _input_names(model)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir) as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _export_fp32(model, names, fp32_path)
        features = _check_features(model, names)
        ref = _torch_hidden(model, names, features)
        mask = to_numpy(features["attention_mask"]).astype(bool)
        got = _run_session(_session(fp32_path, fp32_path), names, features)
        diff = float(np.abs(got - ref)[mask].max())
        if not diff < 1e-3:
            raise RuntimeError(f"ONNX export of {model_label(model)} does not reproduce the torch model "
                               f"(max abs difference {diff:.2e} on the check batch); not quantizing it")
        ratios = outlier_ratios(model)
        nodes = _onnx_matmul(fp32_path, sorted(ratios))
        ratios = {n: r for n, r in ratios.items() if n in nodes}
        keep_fp32 = {n: nodes[n] for n in sorted(ratios) if ratios[n] > OUTLIER_RATIO}
        _quantize(fp32_path, int8_path, list(keep_fp32.values()))
        data = int8_path.read_bytes()
        cos = _pooled_cosine(_run_session(_session(data, int8_path), names, features), ref, mask)
        onnx_path, manifest_path = out_dir / ONNX_NAME, out_dir / MANIFEST_NAME
        os.replace(int8_path, onnx_path)
    atomic_write_json(manifest_path, {
        "scheme": SCHEME, "weights_sha256": fingerprint, "inputs": names, "source": model_label(model),
        "onnx_file": ONNX_NAME, "onnx_sha256": _sha256_bytes(data), "onnx_bytes": len(data),
        "fp32_layers": {n: round(ratios[n], 1) for n in keep_fp32}, "fp32_nodes": sorted(keep_fp32.values()),
        "outlier_ratios": {n: round(r, 1) for n, r in ratios.items()},
        "check": {"fp32_graph_max_abs_diff": diff, "int8_mean_pooled_cosine": cos, "n_texts": len(_CHECK_TEXTS)},
        "versions": _versions(), "export_seconds": round(time.perf_counter() - t0, 1),
    })
    print(f"[helpers.quantize] int8 export of {model_label(model)} -> {onnx_path} ({len(data) / 2**20:.0f} MiB, "
          f"{time.perf_counter() - t0:.0f}s, {len(keep_fp32)} outlier Linear layers kept fp32, check cosine "
          f"{cos:.4f})", file=sys.stderr)
    return onnx_path


class _PreprocessingHint(logging.Filter):
    def filter(self, record):
        return "pre-processing before quantization" not in record.getMessage()


def _pooled_cosine(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    m = mask[..., None].astype(np.float32)
    pa, pb = (a * m).sum(1) / m.sum(1), (b * m).sum(1) / m.sum(1)
    pa /= np.linalg.norm(pa, axis=1, keepdims=True)
    pb /= np.linalg.norm(pb, axis=1, keepdims=True)
    return float((pa * pb).sum(1).mean())


def _read_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        logger.warning("ignoring unreadable int8 manifest %s (%s); re-exporting", path, e)
        return None
    return info if isinstance(info, dict) else None


def load_int8_session(model, out_dir: str | os.PathLike | None = None, fingerprint: str | None = None):
    """``(session, input_names, onnx_path)`` for ``model``: reuses a valid export, else exports.

    The bytes handed to ONNX Runtime are the bytes whose sha256 was checked against the manifest, so
    another process replacing the file meanwhile can never feed this one other weights.
    """
    from helpers.embeddings import weights_fingerprint

    fingerprint = fingerprint or weights_fingerprint(model)
    out_dir = Path(out_dir) if out_dir is not None else export_dir(model, fingerprint)
    onnx_path, manifest_path = out_dir / ONNX_NAME, out_dir / MANIFEST_NAME
    names = _input_names(model)
    for attempt in range(2):
        info = _read_manifest(manifest_path)
        current = (info is not None and info.get("scheme", {}).get("version") == SCHEME_VERSION
                   and info.get("weights_sha256") == fingerprint and info.get("inputs") == names)
        if not current:
            if info is not None:
                logger.info("int8 export in %s is for other weights or an older scheme; re-exporting", out_dir)
            export_int8(model, out_dir, fingerprint)
            info = _read_manifest(manifest_path)
        if not onnx_path.is_file():
            raise DataError(f"exported model missing next to its manifest {manifest_path.name}; delete the "
                            "manifest to re-export", file=onnx_path)
        data = onnx_path.read_bytes()
        if _sha256_bytes(data) == info.get("onnx_sha256"):
            return _session(data, onnx_path), names, onnx_path
        if _read_manifest(manifest_path) != info and attempt == 0:
            continue  # another process re-exported between our two reads: read again
        raise DataError(f"corrupt exported model: its sha256 does not match {manifest_path.name} "
                        f"({len(data)} bytes, expected {info.get('onnx_bytes')}); delete both files to "
                        "re-export", file=onnx_path)
    raise AssertionError("unreachable")
