"""Command line: ``python -m helpers.data {build, validate, check-catalog, export-strings, export-hf}``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from helpers.io import DataError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the dataset into OUT")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True)
    b.add_argument("--profile", default=None, help="smoke | cpu (default) | full")
    b.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty OUT the builder did not create (its other files are kept)")
    b.add_argument("--languages", nargs="*", default=None, help="translated dev splits (default: de es fr ja he)")
    v = sub.add_parser("validate", help="check a built dataset")
    v.add_argument("folder")
    a = sub.add_parser("audit", help="share of gold labels each query's text names (or a declared rule reaches)")
    a.add_argument("folder")
    a.add_argument("--min", type=float, default=None, help="exit 1 if any task/split explains less gold per query")
    a.add_argument("--splits", default=None, help="glob over split names, e.g. 'dev*' (default: all)")
    a.add_argument("--json", default=None, help="also write the full report (patterns with examples) here")
    sub.add_parser("check-catalog", help="validate data/catalog and print counts")
    e = sub.add_parser("export-strings", help="English test phrasing a translator must cover, as YAML")
    e.add_argument("--lang", required=True)
    h = sub.add_parser("export-hf", help="a built dataset as Hugging Face parquet (a DatasetDict per task) + card")
    h.add_argument("folder")
    h.add_argument("out")
    h.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT this tool did not create")
    c = sub.add_parser("check-language", help="check a translated language file: coverage, then render dev flows")
    c.add_argument("lang")
    c.add_argument("--flows", type=int, default=200)
    c.add_argument("--show", type=int, default=5)
    return ap


def _build(args) -> int:
    from helpers.data.build import build_dataset
    from helpers.data.language import TRANSLATED
    from helpers.profiles import get_profile

    try:
        get_profile(args.profile)
    except ValueError as e:
        raise DataError(f"--profile: {e}") from None
    langs = tuple(args.languages) if args.languages is not None else TRANSLATED
    stats = build_dataset(args.out, seed=args.seed, profile=args.profile, languages=langs,
                          overwrite=args.overwrite)
    print(json.dumps({"flows": stats["flows"], "train_pairs": stats["train_pairs"],
                      "build_seconds": stats["build_seconds"]}, indent=2))
    return 0


def _audit(args) -> int:
    from helpers.data.audit import audit_dataset, failures, format_report
    from helpers.io import atomic_write_json

    if args.min is not None and not 0 <= args.min <= 1:
        raise DataError(f"--min: expected a share between 0 and 1, got {args.min}")
    if not (Path(args.folder) / "beir").is_dir():
        raise DataError("not a built dataset (no beir/ folder)", file=args.folder)
    report = audit_dataset(args.folder, splits=args.splits)
    print(format_report(report))
    if args.json:
        atomic_write_json(args.json, report)
    bad = failures(report, args.min) if args.min is not None else []
    for line in bad:
        print("FAIL", line)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.data {build, validate, audit, ...}``: exit code 0, 1 (checks failed) or 2 (bad input)."""
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "build":
            return _build(args)
        if args.cmd == "validate":
            from helpers.data.validate import validate_dataset

            errors = validate_dataset(args.folder)
            for err in errors:
                print("FAIL", err)
            print("OK" if not errors else f"{len(errors)} check(s) failed")
            return 1 if errors else 0
        if args.cmd == "audit":
            return _audit(args)
        if args.cmd == "check-catalog":
            from helpers.data.catalog import catalog_stats, load_catalog

            print(json.dumps(catalog_stats(load_catalog()), indent=2))
            return 0
        if args.cmd == "export-strings":
            from helpers.data.translate import export_strings

            print(yaml.safe_dump(export_strings(args.lang), allow_unicode=True, sort_keys=False, width=200))
            return 0
        if args.cmd == "export-hf":
            from helpers.data.hf_export import export_hf

            print(json.dumps(export_hf(args.folder, args.out, overwrite=args.overwrite), indent=2))
            return 0
        if args.cmd == "check-language":
            from helpers.data.translate import check_language

            missing, samples = check_language(args.lang, n_flows=args.flows)
            for m in missing:
                print("MISSING", m)
            for s in samples[: args.show]:
                print("\n".join(s), "\n")
            print("OK" if not missing else f"{len(missing)} strings missing")
            return 1 if missing else 0
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
