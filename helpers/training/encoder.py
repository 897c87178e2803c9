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


def fit_max_seq_length(model, datasets: dict, prompts_by_task: dict[str, dict[str, str]], cap: int,
                       percentile: float = 98.0, sample: int = 2000, seed: int = 0) -> tuple[int, dict]:
    """Token length at ``percentile`` over prompted texts of every column, rounded up to 8, capped."""
    tok = model.tokenizer
    lengths: list[int] = []
    per_col: dict[str, float] = {}
    for task, ds in datasets.items():
        n = len(ds)
        idx = np.sort(task_rng(seed, task, "seqlen").choice(n, size=min(n, sample), replace=False)).tolist()
        for col in ds.column_names:
            if col not in prompts_by_task[task]:
                continue
            texts = [prompts_by_task[task][col] + t for t in ds.select(idx)[col]]
            ls = [len(x) for x in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]]
            per_col[f"{task}.{col}"] = float(np.percentile(ls, percentile))
            lengths.extend(ls)
    raw = float(np.percentile(lengths, percentile)) if lengths else cap
    fitted = int(min(cap, max(16, 8 * math.ceil(raw / 8))))
    return fitted, {"percentile": percentile, "raw": raw, "cap": cap, "fitted": fitted,
                    "max": int(max(lengths)) if lengths else 0, "per_column": per_col,
                    "truncated_share": float(np.mean(np.asarray(lengths) > fitted)) if lengths else 0.0}
