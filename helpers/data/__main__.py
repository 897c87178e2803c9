"""Command line: ``python -m helpers.data {build, validate, check-catalog, export-strings, export-hf}``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from helpers.cli import Parser, add_profile, entry, positive_int
from helpers.io import DataError

AUDIT_CREATOR = "helpers.data audit"


def _parser() -> Parser:
    ap = Parser(prog="python -m helpers.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the dataset into OUT")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True)
    add_profile(b)
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
    a.add_argument("--overwrite", action="store_true", help="replace a --json file this tool did not write")
    sub.add_parser("check-catalog", help="validate data/catalog and print counts")
    e = sub.add_parser("export-strings", help="English test phrasing a translator must cover, as YAML")
    e.add_argument("--lang", required=True)
    h = sub.add_parser("export-hf", help="a built dataset as Hugging Face parquet (a DatasetDict per task) + card")
    h.add_argument("folder")
    h.add_argument("out")
    h.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT this tool did not create")
    c = sub.add_parser("check-language", help="check a translated language file: coverage, then render dev flows")
    c.add_argument("lang")
    c.add_argument("--flows", type=positive_int, default=200)
    c.add_argument("--show", type=positive_int, default=5)
    return ap


def _build(args) -> int:
    from helpers.data.build import build_dataset
    from helpers.splits import LANGUAGES
    from helpers.profiles import get_profile

    get_profile(args.profile)   # $CASE_STUDY_PROFILE is checked before any work too
    langs = tuple(args.languages) if args.languages is not None else LANGUAGES
    stats = build_dataset(args.out, seed=args.seed, profile=args.profile, languages=langs,
                          overwrite=args.overwrite)
    print(json.dumps({"flows": stats["flows"], "train_pairs": stats["train_pairs"],
                      "build_seconds": stats["build_seconds"]}, indent=2))
    return 0


def _audit(args) -> int:
    from helpers.data.audit import audit_dataset, failures, format_report
    from helpers.io import atomic_write_json, check_output_file

    if args.min is not None and not 0 <= args.min <= 1:
        raise DataError(f"--min: expected a share between 0 and 1, got {args.min}")
    if not (Path(args.folder) / "beir").is_dir():
        raise DataError("not a built dataset (no beir/ folder)", file=args.folder)
    if args.json:
        check_output_file(args.json, overwrite=args.overwrite, creator=AUDIT_CREATOR, flag="--json")
    report = audit_dataset(args.folder, splits=args.splits)
    if not report:   # nothing audited must not pass a --min check
        what = f"--splits {args.splits!r} matches no split" if args.splits else "no task/split folder"
        raise DataError(f"{what} under beir/ (folders there: beir/<task>/<split>/)", file=args.folder)
    print(format_report(report))
    if args.json:
        atomic_write_json(args.json, {"created_by": AUDIT_CREATOR, "folder": str(args.folder),
                                      "splits": args.splits, "report": report})
    bad = failures(report, args.min) if args.min is not None else []
    for line in bad:
        print("FAIL", line)
    return 1 if bad else 0


@entry
def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.data {build, validate, audit, ...}``: exit code 0, 1 (checks failed) or 2 (bad input)."""
    args = _parser().parse_args(argv)
    if args.cmd == "build":
        return _build(args)
    if args.cmd == "validate":
        from helpers.data.validate import validate_dataset

        if not Path(args.folder).is_dir():
            raise DataError("folder not found", file=args.folder)
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
    return 1


if __name__ == "__main__":
    sys.exit(main())
