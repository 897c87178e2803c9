"""Re-check headline numbers against expected values kept as data (in the spirit of pyserini).

``results/expected.yaml`` (default profile) and ``results/expected-smoke.yaml`` (CI) list, per
notebook results file, dotted paths into its ``summary`` with an expected value and a tolerance::

    02_single_vs_multitask:
      table3.one multi-task model.step: {value: 0.61, tol: 0.03}

``python -m helpers.check_results [--results DIR] [--expected FILE]`` reads the results JSON files
written by the notebooks (``results/`` by default) and prints OK / FAIL per number; it exits 1 if
any number is off or missing. ``--write`` refreshes the expected values from the current results
(keeping tolerances), for when a change of method is intended: review the diff before committing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from helpers.io import DataError, atomic_write_text
from helpers.workspace import REPO


def lookup(summary: dict, path: str):
    """Follow a dotted path; keys may contain spaces but not dots."""
    node = summary
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def check(results_dir: str | Path, expected_file: str | Path) -> list[dict]:
    """One row per expected number: notebook, path, expected, tol, actual, ok."""
    expected_file = Path(expected_file)
    if not expected_file.is_file():
        raise DataError("expected-values file not found", file=expected_file)
    spec = yaml.safe_load(expected_file.read_text(encoding="utf-8")) or {}
    rows = []
    for notebook, entries in spec.items():
        if notebook.startswith("_"):
            continue
        path = Path(results_dir) / f"{notebook}.json"
        summary = json.loads(path.read_text(encoding="utf-8"))["summary"] if path.is_file() else None
        for key, exp in (entries or {}).items():
            if not isinstance(exp, dict) or "value" not in exp:
                raise DataError("each entry needs {value: x, tol: y}", file=expected_file, field=f"{notebook}.{key}")
            row = {"notebook": notebook, "path": key, "expected": exp["value"], "tol": exp.get("tol", 0.0)}
            try:
                actual = lookup(summary, key) if summary is not None else None
            except KeyError:
                actual = None
            row["actual"] = actual
            row["ok"] = isinstance(actual, (int, float)) and abs(float(actual) - float(exp["value"])) <= row["tol"] + 1e-12
            rows.append(row)
    return rows


def refresh(results_dir: str | Path, expected_file: str | Path) -> int:
    """Rewrite expected values from the current results, keeping paths and tolerances."""
    expected_file = Path(expected_file)
    text = expected_file.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))  # keep the explanation
    spec = yaml.safe_load(text) or {}
    changed = 0
    for notebook, entries in spec.items():
        if notebook.startswith("_"):
            continue
        summary = json.loads((Path(results_dir) / f"{notebook}.json").read_text(encoding="utf-8"))["summary"]
        for key, exp in entries.items():
            new = round(float(lookup(summary, key)), 4)
            changed += new != exp["value"]
            exp["value"] = new
    atomic_write_text(expected_file, header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=120))
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.check_results", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--expected", default=str(REPO / "results" / "expected.yaml"))
    ap.add_argument("--write", action="store_true", help="refresh expected values from the results")
    args = ap.parse_args(argv)
    try:
        if args.write:
            print(f"{refresh(args.results, args.expected)} values changed in {args.expected}")
            return 0
        rows = check(args.results, args.expected)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in rows:
        actual = "missing" if r["actual"] is None else f"{float(r['actual']):.4f}"
        print(f"{'OK  ' if r['ok'] else 'FAIL'} {r['notebook']}: {r['path']} = {actual} "
              f"(expected {r['expected']} ± {r['tol']})")
    bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
