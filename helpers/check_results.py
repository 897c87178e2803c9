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

import json
import math
import sys
from pathlib import Path

import yaml

from helpers.cli import Parser, entry
from helpers.io import DataError, atomic_write_text, check_writable
from helpers.workspace import REPO


def lookup(summary: dict, path: str):
    """Follow a dotted path; keys may contain spaces but not dots."""
    node = summary
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def load_expected(expected_file: str | Path) -> tuple[dict, str]:
    """The checked entries ``{notebook: {path: {value, tol}}}`` of an expected-values file and its text.

    Refused with the file, line or entry named: a missing or unreadable file, bad YAML, a file with no
    entries (it would pass while checking nothing), an entry without a numeric ``value`` or ``tol``.
    """
    expected_file = Path(expected_file)
    if not expected_file.is_file():
        raise DataError("expected-values file not found", file=expected_file)
    try:
        text = expected_file.read_text(encoding="utf-8")
        spec = yaml.safe_load(text)
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", file=expected_file) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(f"invalid YAML: {getattr(e, 'problem', None) or e}", file=expected_file,
                        line=mark.line + 1 if mark else None) from None
    if spec is not None and not isinstance(spec, dict):
        raise DataError("expected a mapping of notebook -> {path: {value, tol}}", file=expected_file)
    spec = {nb: entries for nb, entries in (spec or {}).items() if not str(nb).startswith("_")}
    for notebook, entries in spec.items():
        if not isinstance(entries, dict):
            raise DataError("expected a mapping of path -> {value, tol}", file=expected_file, field=str(notebook))
        for key, exp in entries.items():
            where = f"{notebook}.{key}"
            if not isinstance(exp, dict) or "value" not in exp:
                raise DataError("each entry needs {value: x, tol: y}", file=expected_file, field=where)
            for name in ("value", "tol"):
                v = exp.get(name, 0.0)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                        name == "tol" and v < 0:
                    raise DataError(f"{name} must be a {'number >= 0' if name == 'tol' else 'number'}, got {v!r}",
                                    file=expected_file, field=where)
    if not any(spec.values()):
        raise DataError("no expected values in this file: it would check nothing", file=expected_file)
    return spec, text


def load_summary(results_dir: str | Path, notebook: str) -> dict | None:
    """The ``summary`` of ``<results_dir>/<notebook>.json`` (None if that file does not exist)."""
    path = Path(results_dir) / f"{notebook}.json"
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"not a readable results file ({e})", file=path) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("summary"), dict):
        raise DataError("no 'summary' object in this results file", file=path, field="summary")
    return obj["summary"]


def check(results_dir: str | Path, expected_file: str | Path) -> list[dict]:
    """One row per expected number: notebook, path, expected, tol, actual, ok."""
    if not Path(results_dir).is_dir():
        raise DataError("results folder not found (--results)", file=results_dir)
    spec, _ = load_expected(expected_file)
    rows = []
    for notebook, entries in spec.items():
        summary = load_summary(results_dir, notebook)
        for key, exp in entries.items():
            row = {"notebook": notebook, "path": key, "expected": exp["value"], "tol": exp.get("tol", 0.0)}
            try:
                actual = lookup(summary, key) if summary is not None else None
            except KeyError:
                actual = None
            row["actual"] = actual
            row["ok"] = (isinstance(actual, (int, float)) and not isinstance(actual, bool)
                         and abs(float(actual) - float(exp["value"])) <= row["tol"] + 1e-12)
            rows.append(row)
    return rows


def refresh(results_dir: str | Path, expected_file: str | Path) -> int:
    """Rewrite expected values from the current results, keeping paths and tolerances.

    Every value is read first; a missing results file or number fails before the file is touched.
    """
    expected_file = Path(expected_file)
    spec, text = load_expected(expected_file)
    check_writable(expected_file, flag="--expected")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))  # keep the explanation
    full = yaml.safe_load(text)
    changed = 0
    for notebook, entries in spec.items():
        summary = load_summary(results_dir, notebook)
        if summary is None:
            raise DataError(f"no results file for {notebook}", file=Path(results_dir) / f"{notebook}.json")
        for key, exp in entries.items():
            try:
                actual = lookup(summary, key)
            except KeyError:
                raise DataError("this number is not in the results' summary", file=Path(results_dir) /
                                f"{notebook}.json", field=key) from None
            if isinstance(actual, bool) or not isinstance(actual, (int, float)):
                raise DataError(f"not a number: {actual!r}", file=Path(results_dir) / f"{notebook}.json", field=key)
            new = round(float(actual), 4)
            changed += new != exp["value"]
            full[notebook][key]["value"] = new
    atomic_write_text(expected_file, header + yaml.safe_dump(full, sort_keys=False, allow_unicode=True, width=120))
    return changed


@entry
def main(argv=None) -> int:
    """``python -m helpers.check_results``: exit code 0, 1 (a number is off or missing) or 2 (bad input)."""
    import argparse

    ap = Parser(prog="python -m helpers.check_results", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--expected", default=str(REPO / "results" / "expected.yaml"))
    ap.add_argument("--write", action="store_true", help="refresh expected values from the results")
    args = ap.parse_args(argv)
    if args.write:
        print(f"{refresh(args.results, args.expected)} values changed in {args.expected}")
        return 0
    rows = check(args.results, args.expected)
    for r in rows:
        actual = "missing" if r["actual"] is None else f"{float(r['actual']):.4f}"
        print(f"{'OK  ' if r['ok'] else 'FAIL'} {r['notebook']}: {r['path']} = {actual} "
              f"(expected {r['expected']} ± {r['tol']})")
    bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
