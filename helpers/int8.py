"""int8 encoding: a SentenceTransformer whose transformer runs the int8 ONNX export in ONNX Runtime.

``int8_model(model)`` returns a ``SentenceTransformer`` that encodes like ``model`` (same tokenizer,
prompts, truncation, pooling, normalisation: those modules are shared, not copied) but whose
transformer runs as the int8 ONNX graph :mod:`helpers.quantize` exports. Only the transformer's
forward pass changes, and it runs one text per ONNX Runtime call (see ``OnnxInt8Transformer.forward``).
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np

from helpers.quantize import SCHEME, load_int8_session, model_label, text_transformer, to_numpy


def _ort_module(session, names: list[str], config):
    import torch

    class OnnxInt8Transformer(torch.nn.Module):
        """Stands in for the Hugging Face model inside sentence-transformers' ``Transformer``.

        sentence-transformers' own ONNX backend puts an Optimum ``ORTModel`` in the same place.
        """

        def __init__(self):
            super().__init__()
            self.session, self.input_names, self.config = session, list(names), config
            self.device = torch.device("cpu")

        def forward(self, **features):
            shape = tuple(features["input_ids"].shape)
            feeds = {}
            for n in self.input_names:
                value = features.get(n)
                # token_type_ids is optional in BERT's forward: absent means all zeros.
                feeds[n] = (np.zeros(shape, dtype=np.int64) if value is None
                            else np.ascontiguousarray(to_numpy(value), dtype=np.int64))
            mask = feeds["attention_mask"] if "attention_mask" in feeds else np.ones(shape, dtype=np.int64)
            out = None
            # One text per run, without its padding. Dynamic quantization scales activations per
            # tensor, so in a padded batch every text's int8 rounding depends on its batch partners
            # (and their padding): measured on me5-small, the same text encoded in two different
            # batches of 64 came out at cosine 0.9963, and dev recall moved by up to 0.02 with batch
            # composition alone. Row by row, a text's embedding is a function of the text only, so
            # the per-text cache is exact and results do not depend on corpus order. It costs
            # little: the batch's padding is not computed either (200 vs 230 docs/s, me5-small).
            for i in range(shape[0]):
                n = int(mask[i].sum())
                right_padded = bool(mask[i, :n].all())
                row = {k: v[i:i + 1, :n] if right_padded else v[i:i + 1] for k, v in feeds.items()}
                hidden = self.session.run(["last_hidden_state"], row)[0]
                if out is None:
                    out = np.zeros(shape + (hidden.shape[-1],), dtype=np.float32)
                out[i, :hidden.shape[1]] = hidden[0]
            return {"last_hidden_state": torch.from_numpy(out)}

    return OnnxInt8Transformer()


# One int8 view per (fp32 model, weights): building one costs an ONNX Runtime session (~1 s) and
# retrievers for every task share one loaded model.
_VIEWS: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


def int8_model(model, fingerprint: str | None = None, out_dir: str | os.PathLike | None = None):
    """A ``SentenceTransformer`` encoding like ``model`` with its transformer in int8 ONNX Runtime.

    Shares ``model``'s tokenizer (so ``max_seq_length`` set on either applies to both), prompts,
    pooling and normalisation modules. Exports on first use (see :func:`helpers.quantize.load_int8_session`).
    """
    import copy

    from sentence_transformers import SentenceTransformer

    from helpers.embeddings import weights_fingerprint

    fingerprint = fingerprint or weights_fingerprint(model)
    views = _VIEWS.setdefault(model, {})
    key = f"{fingerprint}|{out_dir}"
    if key in views:
        return views[key]
    session, names, onnx_path = load_int8_session(model, out_dir, fingerprint)
    tr = text_transformer(model)
    # A shallow copy of the Transformer module with its own child table: the fp32 model keeps its
    # torch weights, the copy gets the ONNX session; tokenizer and settings are the same objects.
    int8_tr = copy.copy(tr)
    int8_tr._modules = dict(tr._modules)
    int8_tr._modules["model"] = _ort_module(session, names, tr.auto_model.config)
    modules = [int8_tr] + [model[i] for i in range(1, len(model))]
    view = SentenceTransformer(modules=modules, device="cpu", prompts=dict(model.prompts or {}),
                               default_prompt_name=getattr(model, "default_prompt_name", None),
                               similarity_fn_name=getattr(model, "similarity_fn_name", None),
                               truncate_dim=getattr(model, "truncate_dim", None))
    meta = dict(getattr(model, "_helpers_encoder", None) or {"name": model_label(model), "source": "unknown"})
    meta.update({"precision": "int8", "int8_onnx": str(onnx_path)})
    view._helpers_encoder = meta
    view._helpers_int8 = {"onnx": str(onnx_path), "weights_sha256": fingerprint, "scheme": SCHEME}
    # Only the current weights' view is kept: a model evaluated at every checkpoint of a training run
    # would otherwise hold one ONNX Runtime session per checkpoint.
    views.clear()
    views[key] = view
    return view
