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
