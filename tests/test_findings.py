from helpers.findings import MINUS, best, finding, findings_lines, fmt_num, fmt_p, fmt_test, leaders_line, verdict


def test_numbers_round_half_up_from_their_decimal_value_with_a_true_minus():
    assert fmt_num(0.865, 2) == "0.87"          # float formatting gives 0.86
    assert fmt_num(602.5, 0) == "603" and fmt_num(5506.4, 0) == "5,506"
    assert fmt_num(-0.0002, 3, signed=True) == f"{MINUS}0.000"
    assert fmt_num(0.0104, 3, signed=True) == "+0.010" and fmt_num(0.0104, 3) == "0.010"


def test_p_values_as_the_tables_write_them():
    assert [fmt_p(p) for p in (0.0001, 0.0051, 0.0124, 0.405)] == ["p < 0.001", "p = 0.005", "p = 0.01", "p = 0.41"]


def _test(delta, p):
    return {"delta": delta, "low": delta - 0.02, "high": delta + 0.02, "p_value": p}


def test_verdicts_read_the_test_not_the_delta():
    assert verdict(_test(0.2, 0.0001)) == "higher" and verdict(_test(-0.2, 0.0001)) == "lower"
    assert verdict(_test(0.2, 0.06)) == "no significant difference"
    assert fmt_test(_test(0.189, 0.0001)) == "+0.189 [0.169, 0.209], p < 0.001"


def test_a_finding_groups_tasks_by_verdict():
    same = finding("multi - base", {"step": _test(0.19, 0.0001), "table": _test(0.13, 0.0001)})
    assert same.startswith("multi - base: higher on every task (step +0.190")
    mixed = finding("ds - multi", {"step": _test(-0.01, 0.45), "table": _test(-0.04, 0.0001),
                                   "field": _test(0.02, 0.03)})
    assert mixed.startswith("ds - multi: no significant difference on step")
    assert f"; lower on table {MINUS}0.040" in mixed and "; higher on field +0.020" in mixed
    assert findings_lines({"a": {"step": _test(0.1, 0.5)}}) == [
        "a: no significant difference on step +0.100 [0.080, 0.120], p = 0.50"]


def test_best_keeps_ties_and_leaders_name_them():
    assert best({"bm25": 0.67, "multi": 0.67, "base": 0.62}) == ["bm25", "multi"]
    assert best({"a": 3, "b": 1, "c": None}, highest=False) == ["b"]
    table = {"bm25": {"dev": 0.67, "ood": 0.865}, "multi": {"dev": 0.67, "ood": 0.727}}
    assert leaders_line("workflow", table, ["dev", "ood"]) == "workflow: dev bm25 = multi (0.67), ood bm25 (0.87)"


def _merge_summary(delta_dev: float, p_dev: float, field_delta: float) -> tuple[dict, dict]:
    """Notebook 06's ``merge`` summary and ``workflow_recall5`` with made-up numbers."""
    wf = {"me5-small": {"dev": 0.62, "ood_avg": 0.80}, "multi-task": {"dev": 0.67, "ood_avg": 0.73},
          "multi-task, merged": {"dev": 0.62 + delta_dev, "ood_avg": 0.81}, "bm25": {"dev": 0.67, "ood_avg": 0.87},
          "hyb rrf": {"dev": 0.7, "ood_avg": 0.86}, "hyb tuned": {"dev": 0.72, "ood_avg": 0.9}}
    wtest = {"workflow": _test(delta_dev, p_dev)}
    merge = {"names": {"merged": "multi-task, merged", "unmerged": "multi-task", "base": "me5-small"},
             "tolerance": 0.01, "choice": {"weight": 0.5, "eligible": [0.5, 0.75, 1.0]},
             "trained_dev": {"multi-task": {"step": 0.5, "table": 0.8, "field": 0.8},
                             "multi-task, merged": {"step": 0.52, "table": 0.795, "field": 0.8 + field_delta}},
             "tests": {"multi-task, merged - multi-task, dev": {"workflow": _test(-0.05, 0.01)},
                       "multi-task, merged - multi-task, OOD": {"workflow": _test(0.08, 0.0001)},
                       "multi-task, merged - me5-small, dev": wtest,
                       "multi-task, merged - me5-small, OOD": {"workflow": _test(0.01, 0.4)}}}
    return merge, wf


def test_merge_findings_read_the_three_criteria_from_the_summary():
    from helpers.findings import merge_findings

    merge, wf = _merge_summary(0.05, 0.001, -0.005)
    lines = merge_findings(merge, wf)
    assert lines[0] == "merge weight chosen on dev: w = 0.5 (weights that passed the rule: 0.5, 0.75, 1)"
    assert lines[1].startswith("multi-task, merged at least the base me5-small on OOD workflow: yes (0.810 vs 0.800;")
    assert lines[2].startswith("multi-task, merged above the base me5-small on dev workflow at p < 0.05: yes (+0.050")
    assert lines[3] == (f"multi-task, merged within 0.01 of multi-task on every trained task (dev): yes "
                        f"(step +0.020, table {MINUS}0.005, field {MINUS}0.005)")
    # the tests against the unmerged model follow, and only those
    assert len(lines) == 6 and all(line.startswith("multi-task, merged - multi-task") for line in lines[4:])
    merge, wf = _merge_summary(0.05, 0.2, -0.02)
    lines = merge_findings(merge, wf)
    assert ": no (" in lines[2] and ": no (" in lines[3]   # not significant; field 0.02 below


def test_tuned_hybrid_findings_say_which_model_and_read_bm25_out_of_domain():
    from helpers.findings import tuned_hybrid_findings

    _, wf = _merge_summary(0.05, 0.001, 0.0)
    tuned = {"model": "multi-task, merged", "why": "the merge rule picked w = 0.5 < 1", "weight": 0.3,
             "names": {"rrf": "hyb rrf", "tuned": "hyb tuned"},
             "tests": {"hyb rrf - bm25, OOD": {"workflow": _test(-0.01, 0.3)},
                       "hyb tuned - bm25, OOD": {"workflow": _test(0.03, 0.002)}}}
    lines = tuned_hybrid_findings(tuned, wf)
    assert lines[0] == ("tuned hybrid: BM25 + multi-task, merged (the merge rule picked w = 0.5 < 1), convex fusion "
                        "with w = 0.3 on multi-task, merged, tuned on dev workflow")
    assert lines[1].startswith("hyb rrf above BM25 on OOD workflow at p < 0.05: no (0.860 vs 0.870;")
    assert lines[2].startswith("hyb tuned above BM25 on OOD workflow at p < 0.05: yes (0.900 vs 0.870; +0.030")
