"""The encoder as training uses it: frozen parts and a sequence length fitted to the data.

The word-embedding matrix is frozen by default (``freeze_embeddings``): for multilingual-e5-small it
is 250k x 384 = 96M of the 118M parameters, so freezing removes most of the optimizer state and its
update time, and rows of tokens never seen in this domain stay intact. ``max_seq_length`` is fitted
to the data: the ``seq_len_percentile`` (98th) percentile of token lengths of prompted queries and
documents, rounded up to a multiple of 8, capped by the profile.
"""

from __future__ import annotations

import math

import numpy as np

from helpers.training.pairs import task_rng


def freeze_unused_pooler(model) -> int:
    """Freeze the backbone's pooler (BERT's CLS dense layer), which mean pooling never uses.

    Its parameters get no gradient, which DDP would otherwise report as unused parameters.
    """
    pooler = getattr(model[0].auto_model, "pooler", None)
    if pooler is None:
        return 0
    n = 0
    for p in pooler.parameters():
        p.requires_grad_(False)
        n += p.numel()
    return n


def freeze_word_embeddings(model) -> int:
    """Freeze the first module's word-embedding matrix; returns the number of frozen parameters."""
    emb = model[0].auto_model.get_input_embeddings()
    emb.weight.requires_grad_(False)
    return int(emb.weight.numel())


def freeze_lower_layers(model, top: int) -> int:
    """Train only the top ``top`` transformer layers: freeze the embeddings and every layer below.

    A cheaper step: no gradient flows below the first trainable layer, so the backward pass stops
    there. Returns the number of newly frozen parameters.
    """
    from helpers.io import DataError
    from helpers.training.split_encoder import check_top_layers

    backbone = model[0].auto_model
    layers = list(getattr(getattr(backbone, "encoder", None), "layer", []) or [])
    if not layers:
        raise DataError("train_top_layers needs a BERT-style encoder (encoder.layer); this model has none",
                        field="train_top_layers")
    check_top_layers(top, len(layers))   # more layers than the model has would silently train them all
    frozen = [backbone.embeddings] + layers[:max(0, len(layers) - top)]
    n = 0
    for module in frozen:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                n += p.numel()
    return n


def _round_len(raw: float, cap: int) -> int:
    return int(min(cap, max(16, 8 * math.ceil(raw / 8))))


def fit_max_seq_length(model, datasets: dict, prompts_by_task: dict[str, dict[str, str]], cap: int,
                       percentile: float = 98.0, sample: int = 2000, seed: int = 0) -> tuple[int, dict]:
    """Token length at ``percentile`` over prompted texts of every column, rounded up to 8, capped.

    The report's ``per_task`` is the same rule per task, taken over the column that needs most (a
    query and its short document are padded separately, so the long column sets the length).
    """
    tok = model.tokenizer
    per_col: dict[str, float] = {}
    per_task: dict[str, int] = {}
    by_task: dict[str, list[int]] = {}
    for task, ds in datasets.items():
        n = len(ds)
        idx = np.sort(task_rng(seed, task, "seqlen").choice(n, size=min(n, sample), replace=False)).tolist()
        col_lens: list[float] = []
        for col in ds.column_names:
            if col not in prompts_by_task[task]:
                continue
            texts = [prompts_by_task[task][col] + t for t in ds.select(idx)[col]]
            ls = [len(x) for x in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]]
            per_col[f"{task}.{col}"] = float(np.percentile(ls, percentile))
            col_lens.append(per_col[f"{task}.{col}"])
            by_task.setdefault(task, []).extend(ls)
        per_task[task] = _round_len(max(col_lens), cap) if col_lens else cap
    lengths = [n for ls in by_task.values() for n in ls]
    raw = float(np.percentile(lengths, percentile)) if lengths else cap
    fitted = _round_len(raw, cap)
    cut = {t: float(np.mean(np.asarray(ls) > per_task[t])) for t, ls in by_task.items()}
    return fitted, {"percentile": percentile, "raw": raw, "cap": cap, "fitted": fitted,
                    "per_task": per_task, "per_task_truncated_share": cut,
                    "max": int(max(lengths)) if lengths else 0, "per_column": per_col,
                    "truncated_share": float(np.mean(np.asarray(lengths) > fitted)) if lengths else 0.0}
