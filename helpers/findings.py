"""Findings as sentences computed from result objects, and the number formats the README shares.

A notebook's "what we found" is printed from its own results (the paired tests of
:func:`helpers.experiments.compare`, the recall tables), never typed, so it cannot drift from the
numbers when a run changes; :mod:`helpers.readme_tables` writes the README's tables with the same
formats. Numbers are rounded half up from their decimal value (``0.865`` -> ``0.87``, as a reader
rounds the four decimals a results file stores; float formatting would give ``0.86``), negatives
carry a true minus sign (U+2212) and whole numbers group thousands.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Mapping

MINUS = "\u2212"
ALPHA = 0.05   # the significance level every finding is read at


def fmt_num(x: float, digits: int = 2, signed: bool = False) -> str:
    """``x`` at ``digits`` decimals, rounded half up; ``signed`` writes ``+`` before positives."""
    d = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    text = f"{abs(d):,.{digits}f}"
    if d.is_signed():   # -0.0002 at three decimals stays a (tiny) loss: "−0.000"
        return MINUS + text
    return ("+" if signed else "") + text


def fmt_p(p: float) -> str:
    """A p-value as the tables write it: ``p < 0.001``, three decimals under 0.01, else two."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {fmt_num(p, 3 if p < 0.01 else 2)}"


def fmt_test(r: Mapping[str, float], digits: int = 3) -> str:
    """A paired test (``delta``, ``low``, ``high``, ``p_value``) as ``+0.189 [0.158, 0.220], p < 0.001``."""
    return (f"{fmt_num(r['delta'], digits, signed=True)} [{fmt_num(r['low'], digits)}, "
            f"{fmt_num(r['high'], digits)}], {fmt_p(r['p_value'])}")


def verdict(r: Mapping[str, float], alpha: float = ALPHA) -> str:
    """``higher`` / ``lower`` when the test's p is under ``alpha``, else ``no significant difference``."""
    if r["p_value"] >= alpha:
        return "no significant difference"
    return "higher" if r["delta"] > 0 else "lower"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def finding(name: str, per_task: Mapping[str, Mapping[str, float]], alpha: float = ALPHA) -> str:
    """One sentence for one comparison ``{task: paired test of b - a}``: the tasks grouped by verdict.

    ``multi - base: higher on every task: step +0.189 [0.158, 0.220], p < 0.001; ...``
    """
    groups: dict[str, list[str]] = {}
    for task, r in per_task.items():
        groups.setdefault(verdict(r, alpha), []).append(f"{task} {fmt_test(r)}")
    if len(groups) == 1 and len(per_task) > 1:
        (v, items), = groups.items()
        return f"{name}: {v} on every task ({'; '.join(items)})"
    return f"{name}: " + "; ".join(f"{v} on {_join(items)}" for v, items in groups.items())


def findings_lines(tests: Mapping[str, Mapping[str, Mapping[str, float]]], alpha: float = ALPHA) -> list[str]:
    """One :func:`finding` per comparison of ``{name: {task: paired test}}`` (what
    :func:`helpers.experiments.compare` returns per pair; its delta is b - a)."""
    return [finding(name, per_task, alpha) for name, per_task in tests.items()]


def best(values: Mapping[str, float], highest: bool = True) -> list[str]:
    """The keys holding the highest (or lowest) value; all of them on a tie."""
    present = {k: v for k, v in values.items() if v is not None}
    if not present:
        return []
    top = (max if highest else min)(present.values())
    return [k for k, v in present.items() if v == top]


def leaders_line(label: str, table: Mapping[str, Mapping[str, float]], columns: Iterable[str],
                 digits: int = 2) -> str:
    """``label: step bm25 (0.37), table ...``: the best row of each column of ``{row: {column: value}}``."""
    parts = []
    for c in columns:
        rows = best({r: vals.get(c) for r, vals in table.items()})
        if rows:
            parts.append(f"{c} {' = '.join(rows)} ({fmt_num(table[rows[0]][c], digits)})")
    return f"{label}: " + ", ".join(parts)


def check_line(label: str, ok: bool, detail: str) -> str:
    """A criterion and whether this run meets it: ``label: yes (detail)`` or ``label: no (detail)``."""
    return f"{label}: {'yes' if ok else 'no'} ({detail})"


def higher_at(r: Mapping[str, float], alpha: float = ALPHA) -> bool:
    """Whether a paired test of b - a says b is higher at ``alpha``."""
    return verdict(r, alpha) == "higher"


def merge_findings(merge: Mapping, workflow: Mapping[str, Mapping[str, float]], alpha: float = ALPHA) -> list[str]:
    """Notebook 06's merge read from its summary: the weight chosen on dev and whether the merged model
    meets the three things a merge is for (issue 24): at least its base out of domain, above it on dev
    workflow (paired test at ``alpha``), and within the rule's tolerance of the unmerged model on every
    trained task (dev).

    ``merge`` holds ``names`` (``merged``, ``unmerged``, ``base``), ``choice`` (:class:`WeightChoice`
    as a dict), ``tolerance``, ``trained_dev`` (``{name: {task: recall}}``) and ``tests`` (``{"<merged> -
    <other>, <dev|OOD>": {task: paired test}}``); ``workflow`` is the summary's ``workflow_recall5``.
    """
    names, choice, tol = merge["names"], merge["choice"], merge["tolerance"]
    m, u, b = names["merged"], names["unmerged"], names["base"]
    tests = merge["tests"]
    ood_m, ood_b = workflow[m]["ood_avg"], workflow[b]["ood_avg"]
    dev_test = tests[f"{m} - {b}, dev"]["workflow"]
    deltas = {t: merge["trained_dev"][m][t] - merge["trained_dev"][u][t] for t in merge["trained_dev"][u]}
    lines = [f"merge weight chosen on dev: w = {choice['weight']:g} (weights that passed the rule: "
             f"{', '.join(f'{w:g}' for w in choice['eligible'])})",
             check_line(f"{m} at least the base {b} on OOD workflow", ood_m >= ood_b,
                        f"{fmt_num(ood_m, 3)} vs {fmt_num(ood_b, 3)}; {fmt_test(tests[f'{m} - {b}, OOD']['workflow'])}"),
             check_line(f"{m} above the base {b} on dev workflow at p < {alpha:g}", higher_at(dev_test, alpha),
                        fmt_test(dev_test)),
             check_line(f"{m} within {tol:g} of {u} on every trained task (dev)",
                        all(d >= -tol - 1e-9 for d in deltas.values()),
                        ", ".join(f"{t} {fmt_num(d, 3, signed=True)}" for t, d in deltas.items()))]
    return lines + findings_lines({k: v for k, v in tests.items() if f" - {u}," in k})


def tuned_hybrid_findings(tuned: Mapping, workflow: Mapping[str, Mapping[str, float]],
                          alpha: float = ALPHA) -> list[str]:
    """Notebook 06's workflow hybrids read from its summary: which model and weight the tuned one fuses,
    and each hybrid against BM25 on OOD workflow (weighted average and paired test at ``alpha``).

    ``tuned`` holds ``model``, ``why``, ``weight``, ``names`` (``rrf``, ``tuned``) and ``tests``
    (``{"<hybrid> - bm25, <dev|OOD>": {"workflow": paired test}}``).
    """
    lines = [f"tuned hybrid: BM25 + {tuned['model']} ({tuned['why']}), convex fusion with w = "
             f"{tuned['weight']:g} on {tuned['model']}, tuned on dev workflow"]
    for name in (tuned["names"]["rrf"], tuned["names"]["tuned"]):
        r = tuned["tests"][f"{name} - bm25, OOD"]["workflow"]
        ood, bm25 = workflow[name]["ood_avg"], workflow["bm25"]["ood_avg"]
        lines.append(check_line(f"{name} above BM25 on OOD workflow at p < {alpha:g}", higher_at(r, alpha),
                                f"{fmt_num(ood, 3)} vs {fmt_num(bm25, 3)}; {fmt_test(r)}"))
    return lines
