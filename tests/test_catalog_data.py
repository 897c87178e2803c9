"""helpers.training.catalog_data: query groups, task catalogs, coverage, catalog samples."""

import numpy as np
import pytest
from datasets import Dataset

from helpers.io import DataError
from helpers.training.catalog_data import (check_coverage, gold_matrix, query_groups, sample_catalog,
                                           task_catalogs)


def _pairs(rows):
    return Dataset.from_dict({"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows],
                              "positive_id": [r[2] for r in rows]})


DATA = {"step": _pairs([("q1", "Approve it.", "approve"), ("q1", "Notify them.", "notify"),
                        ("q2", "Notify them.", "notify"), ("q1", "Approve it.", "approve"),
                        ("q3", "Close it.", "close")]),
        "table": _pairs([("q1", "Incident table.", "incident")])}


def test_groups_hold_every_gold_object_of_a_query_once():
    groups = query_groups(DATA)
    step = groups["step"]
    assert [(g.query, g.gold, g.pairs) for g in step] == [("q1", ("approve", "notify"), 3),
                                                          ("q2", ("notify",), 1), ("q3", ("close",), 1)]
    assert sum(g.pairs for g in step) == len(DATA["step"])   # every pair is accounted for
    assert groups["table"][0].task == "table"                 # the same query text in another task is its own group


def test_catalog_is_the_tasks_distinct_positives():
    cats = task_catalogs(DATA)
    assert cats["step"].ids == ["approve", "notify", "close"] and cats["step"].texts[2] == "Close it."
    assert cats["step"].index["close"] == 2 and len(cats["table"]) == 1
    check_coverage(query_groups(DATA), cats)


def test_an_object_with_two_texts_fails_in_one_line():
    bad = {"step": _pairs([("q1", "Approve it.", "approve"), ("q2", "Approve it now.", "approve")])}
    with pytest.raises(DataError, match=r"task 'step': object 'approve' has two different positive texts"):
        task_catalogs(bad)


def test_a_catalog_that_misses_a_gold_object_fails_naming_task_and_object():
    cats = task_catalogs(DATA, corpus={"step": {"approve": "Approve it.", "notify": "Notify them."}})
    assert cats["table"].ids == ["incident"]                 # tasks without a corpus keep their positives
    with pytest.raises(DataError) as e:
        check_coverage(query_groups(DATA), cats)
    msg = str(e.value)
    assert "task 'step'" in msg and "object 'close'" in msg and "\n" not in msg
    with pytest.raises(DataError, match="task 'table' has training queries but no catalog"):
        check_coverage(query_groups(DATA), {"step": task_catalogs(DATA)["step"]})


def test_gold_matrix_marks_the_gold_columns():
    groups, cat = query_groups(DATA)["step"], task_catalogs(DATA)["step"]
    gold = gold_matrix(groups, [0, 1, 2], cat)
    assert gold.tolist() == [[True, True, False], [False, True, False], [False, False, True]]
    assert gold_matrix(groups[1:2], [1, 2], cat).tolist() == [[True, False]]


def test_catalog_sample_keeps_the_batch_golds_and_is_seeded():
    cat = task_catalogs({"f": _pairs([(f"q{i}", f"doc {i}", f"d{i}") for i in range(50)])})["f"]
    groups = query_groups({"f": _pairs([("a", "doc 7", "d7"), ("a", "doc 40", "d40"), ("b", "doc 3", "d3")])})["f"]
    assert sample_catalog(groups, cat, None, np.random.default_rng(0)) == list(range(50))
    assert sample_catalog(groups, cat, 80, np.random.default_rng(0)) == list(range(50))
    s1 = sample_catalog(groups, cat, 10, np.random.default_rng(5))
    assert len(s1) == 10 and {3, 7, 40} <= set(s1) and s1 == sorted(s1)
    assert s1 == sample_catalog(groups, cat, 10, np.random.default_rng(5))
    assert s1 != sample_catalog(groups, cat, 10, np.random.default_rng(6))
    assert sample_catalog(groups, cat, 2, np.random.default_rng(0)) == [3, 7, 40]   # golds are never dropped


def test_a_cap_s_dropped_golds_become_other_gold_not_negatives():
    from helpers.training.catalog_data import other_gold_matrix

    before = {"f": _pairs([("a", "doc 1", "d1"), ("a", "doc 2", "d2"), ("a", "doc 3", "d3"), ("b", "doc 2", "d2")])}
    after = {"f": _pairs([("a", "doc 1", "d1"), ("b", "doc 2", "d2")])}      # the cap dropped a's d2 and d3
    groups = query_groups(after, known=before)["f"]
    assert [(g.query, g.gold, g.other_gold) for g in groups] == [("a", ("d1",), ("d2", "d3")), ("b", ("d2",), ())]
    assert query_groups(after)["f"][0].other_gold == ()
    cat = task_catalogs(after)["f"]                  # d3 has no pair left: not in this catalog, not scored
    assert cat.ids == ["d1", "d2"]
    assert other_gold_matrix(groups, [0, 1], cat).tolist() == [[False, True], [False, False]]
    assert other_gold_matrix(groups, [0], cat).tolist() == [[False], [False]]
