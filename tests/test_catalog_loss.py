"""helpers.training.catalog_loss: the two multi-positive forms against a plain reference, edge cases."""

import math

import pytest
import torch

from helpers.training.catalog_loss import catalog_scores, multi_positive_loss


def _reference(scores, gold, form):
    """The forms written out with Python loops and math.exp."""
    total = 0.0
    for row, g in zip(scores.tolist(), gold.tolist()):
        pos = [s for s, is_gold in zip(row, g) if is_gold]
        neg = [s for s, is_gold in zip(row, g) if not is_gold]
        if form == "sum":
            total += -math.log(sum(math.exp(s) for s in pos) / sum(math.exp(s) for s in row))
        else:
            total += sum(-math.log(math.exp(p) / (math.exp(p) + sum(math.exp(n) for n in neg))) for p in pos) / len(pos)
    return total / len(scores)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(5, 9, generator=g) * 4
    gold = torch.zeros(5, 9, dtype=torch.bool)
    for r, cols in enumerate([[0], [1, 2], [3, 4, 5, 6], [8], [0, 8]]):
        gold[r, cols] = True
    return scores, gold


@pytest.mark.parametrize("form", ["each", "sum"])
def test_forms_match_the_written_out_definition(batch, form):
    scores, gold = batch
    assert multi_positive_loss(scores, gold, form).item() == pytest.approx(_reference(scores, gold, form), rel=1e-5)


def test_one_gold_per_query_is_infonce_in_both_forms(batch):
    scores, _ = batch
    target = torch.tensor([0, 2, 4, 8, 1])
    gold = torch.nn.functional.one_hot(target, 9).bool()
    ce = torch.nn.functional.cross_entropy(scores, target)
    for form in ("each", "sum"):
        torch.testing.assert_close(multi_positive_loss(scores, gold, form), ce)


def test_sum_is_lower_than_each_and_golds_do_not_compete_in_each(batch):
    scores, gold = batch
    assert multi_positive_loss(scores, gold, "sum") < multi_positive_loss(scores, gold, "each")
    # raising one gold's score leaves another gold's "each" term unchanged (the golds are not in each
    # other's denominators), while in "sum" it lowers the whole row
    row = torch.tensor([[1.0, 2.0, 0.5, -1.0]])
    gold = torch.tensor([[True, True, False, False]])
    raised = row.clone()
    raised[0, 1] = 9.0
    each_0 = lambda s: (torch.logaddexp(s[0, 0], s[0, 2:].logsumexp(0)) - s[0, 0]).item()  # noqa: E731
    assert each_0(row) == pytest.approx(each_0(raised))
    assert multi_positive_loss(raised, gold, "sum") < multi_positive_loss(row, gold, "sum")


def test_a_row_without_negatives_gives_zero_loss_and_finite_gradients():
    scores = torch.tensor([[3.0, -2.0], [1.0, 0.0]], requires_grad=True)
    gold = torch.tensor([[True, True], [True, False]])
    for form in ("each", "sum"):
        loss = multi_positive_loss(scores, gold, form)
        loss.backward()
        assert torch.isfinite(scores.grad).all()
        scores.grad = None
    only = multi_positive_loss(scores[:1], gold[:1], "each")
    assert only.item() == 0.0


def test_bad_inputs_are_refused(batch):
    scores, gold = batch
    with pytest.raises(ValueError, match="loss form must be one of each, sum"):
        multi_positive_loss(scores, gold, "mean")
    with pytest.raises(ValueError, match="gold object"):
        multi_positive_loss(scores, torch.zeros_like(gold), "each")
    with pytest.raises(ValueError, match="differ in shape"):
        multi_positive_loss(scores, gold[:, :3], "each")


def test_scores_are_scaled_cosines():
    q = torch.tensor([[3.0, 0.0], [1.0, 1.0]], dtype=torch.bfloat16)
    d = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    s = catalog_scores(q, d, scale=20.0)
    assert s.dtype == torch.float32
    torch.testing.assert_close(s, torch.tensor([[20.0, 0.0], [20 / math.sqrt(2), 20 / math.sqrt(2)]]))


@pytest.mark.parametrize("form", ["each", "sum"])
def test_an_ignored_column_weighs_as_if_it_were_not_scored(batch, form):
    scores, gold = batch
    ignore = torch.zeros_like(gold)
    ignore[2, 7] = ignore[0, 1] = True     # other gold objects of rows 2 and 0: neither gold nor negative
    masked = multi_positive_loss(scores, gold, form, ignore)
    # the same rows with the ignored columns removed, row by row
    rows = []
    for r in range(scores.shape[0]):
        cols = [c for c in range(scores.shape[1]) if not ignore[r, c]]
        rows.append(multi_positive_loss(scores[r:r + 1, cols], gold[r:r + 1, cols], form))
    torch.testing.assert_close(masked, torch.stack(rows).mean())
    # an ignored column scoring far above the golds costs nothing; scored as a negative it would
    high = scores.clone()
    high[2, 7] = 60.0
    torch.testing.assert_close(multi_positive_loss(high, gold, form, ignore), masked)
    assert multi_positive_loss(high, gold, form) > multi_positive_loss(scores, gold, form)
    with pytest.raises(ValueError, match="no gold column"):
        multi_positive_loss(scores, gold, form, gold.clone())
