"""Multi-positive InfoNCE of queries against a whole catalog: :func:`multi_positive_loss`.

sentence-transformers 6.2 has no loss for several positives per anchor (``MultipleNegativesRankingLoss``
and its cached/GIST variants take one positive per row and use the batch's other documents as negatives),
so this is the one loss written here. Scores are ``scale * cos(query, object)`` (``scale`` 20, temperature
0.05, as our MNRL), for each query of a batch against every object of its task's catalog (or a sample of
it), with ``G`` the query's gold objects and ``N`` the others:

``"each"`` (default)  mean over ``p in G`` of ``-log( e^{s_p} / (e^{s_p} + sum_{n in N} e^{s_n}) )``:
                     every gold object against the non-gold ones only.
``"sum"``            ``-log( sum_{p in G} e^{s_p} / sum_{d in G and N} e^{s_d} )``: the gold set against the
                     catalog.

Why ``"each"`` is the default: our metric is recall@k over *all* gold objects of a query (a step query
has 4.4 gold steps on average, and Step@15 counts each). ``"sum"`` is satisfied as soon as one gold
object scores high: its gradient on gold ``p`` is weighted by ``p``'s share of the gold mass, so the
best-ranked gold takes most of it and a gold object ranked low gets little push up, which is the object
recall misses. ``"each"`` gives every gold object its own term, and leaves the other golds out of its
denominator, so gold objects never compete with each other. With one gold object the two are the same
(InfoNCE over the catalog). The mean over gold objects is taken per query, then over queries, so each
query weighs the same, as in a per-query recall average.
"""

from __future__ import annotations

FORMS = ("each", "sum")
#: A finite stand-in for -inf: a row with no negative (every object gold) gives zero loss, not NaN.
_MASKED = -1e9


def catalog_scores(queries, objects, scale: float = 20.0):
    """``scale * cos`` of every query with every object, in fp32 (the loss is computed in fp32 under autocast)."""
    import torch

    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    d = torch.nn.functional.normalize(objects.float(), dim=-1)
    return scale * q @ d.T


def multi_positive_loss(scores, gold, form: str = "each", ignore=None):
    """Mean loss over the queries (rows) of ``scores`` ``[B, C]`` given ``gold`` (bool ``[B, C]``, a gold
    object in every row); ``form`` as the module docstring defines it. ``ignore`` (bool ``[B, C]``, never
    True where ``gold`` is): columns left out of a row altogether, neither gold nor negative (a query's gold
    objects whose pairs a frequency cap removed)."""
    import torch

    if form not in FORMS:
        raise ValueError(f"loss form must be one of {', '.join(FORMS)}, got {form!r}")
    if scores.shape != gold.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and gold {tuple(gold.shape)} differ in shape")
    n_gold = gold.sum(dim=1)
    if int(n_gold.min()) < 1:
        raise ValueError("every query needs a gold object among the scored columns")
    scores = scores.float()
    if ignore is not None:
        if ignore.shape != gold.shape or bool((ignore & gold).any()):
            raise ValueError("ignore must have the shape of gold and no gold column")
        scores = scores.masked_fill(ignore, _MASKED)   # e^-1e9 = 0: the column weighs nothing in any sum
    if form == "sum":
        positive = scores.masked_fill(~gold, _MASKED).logsumexp(dim=1)
        return (scores.logsumexp(dim=1) - positive).mean()
    negatives = scores.masked_fill(gold, _MASKED).logsumexp(dim=1, keepdim=True)
    per_object = torch.logaddexp(scores, negatives) - scores          # -log p(object beats the negatives)
    per_query = (per_object * gold).sum(dim=1) / n_gold
    return per_query.mean()
