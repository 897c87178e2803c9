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
