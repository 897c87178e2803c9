"""Command line: ``python -m helpers.data {build, validate, check-catalog, export-strings}``."""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from helpers.io import DataError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the dataset into OUT")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True)
    b.add_argument("--profile", default=None, help="smoke | cpu (default) | full")
    b.add_argument("--languages", nargs="*", default=None, help="translated dev splits (default: de es fr ja he)")
    v = sub.add_parser("validate", help="check a built dataset")
    v.add_argument("folder")
    sub.add_parser("check-catalog", help="validate data/catalog and print counts")
    e = sub.add_parser("export-strings", help="English test phrasing a translator must cover, as YAML")
    e.add_argument("--lang", required=True)
    c = sub.add_parser("check-language", help="check a translated language file: coverage, then render dev flows")
    c.add_argument("lang")
    c.add_argument("--flows", type=int, default=200)
    c.add_argument("--show", type=int, default=5)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            from helpers.data.build import build_dataset
            from helpers.data.language import TRANSLATED

            langs = tuple(args.languages) if args.languages is not None else TRANSLATED
            stats = build_dataset(args.out, seed=args.seed, profile=args.profile, languages=langs)
            print(json.dumps({"flows": stats["flows"], "train_pairs": stats["train_pairs"],
                              "build_seconds": stats["build_seconds"]}, indent=2))
            return 0
        if args.cmd == "validate":
            from helpers.data.validate import validate_dataset

            errors = validate_dataset(args.folder)
            for err in errors:
                print("FAIL", err)
            print("OK" if not errors else f"{len(errors)} check(s) failed")
            return 1 if errors else 0
        if args.cmd == "check-catalog":
            from helpers.data.catalog import catalog_stats, load_catalog

            print(json.dumps(catalog_stats(load_catalog()), indent=2))
            return 0
        if args.cmd == "export-strings":
            from helpers.data.translate import export_strings

            print(yaml.safe_dump(export_strings(args.lang), allow_unicode=True, sort_keys=False, width=200))
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
