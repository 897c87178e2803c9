"""Run every numbered notebook headless with papermill: ``python -m helpers.reproduce``.

``--profile cpu`` (the default) executes ``notebooks/NN_*.ipynb`` in place, so the committed
notebooks carry the default profile's outputs and plots, and writes ``results/<notebook>.json``.
Other profiles write executed copies to ``--out`` (default ``build/notebooks-<profile>/``) and their
results next to them, leaving the committed notebooks untouched.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from helpers.workspace import REPO


def notebooks(pattern: str = "[0-9][0-9]_*.ipynb") -> list[Path]:
    return sorted((REPO / "notebooks").glob(pattern))


def run_notebook(nb: Path, out: Path, profile: str, results_dir: Path, seed: int = 0,
                 timeout: int | None = None) -> float:
    """Execute one notebook with papermill; returns wall seconds."""
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pm.execute_notebook(str(nb), str(out), parameters={"profile": profile, "seed": seed,
                                                        "results_dir": str(results_dir)},
                        kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False,
                        execution_timeout=timeout)
    return time.time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.reproduce", description=__doc__)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="glob of notebooks to run, e.g. '0[12]_*'")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    in_place = args.profile == "cpu" and args.out is None
    out_dir = REPO / "notebooks" if in_place else Path(args.out or REPO / "build" / f"notebooks-{args.profile}")
    results_dir = REPO / "results" if in_place else out_dir / "results"
    total = 0.0
    for nb in notebooks(f"{args.only}.ipynb" if args.only else "[0-9][0-9]_*.ipynb"):
        secs = run_notebook(nb, out_dir / nb.name, args.profile, results_dir, seed=args.seed)
        total += secs
        print(f"{nb.name}: {secs:.0f} s", flush=True)
    print(f"all notebooks ({args.profile}): {total:.0f} s -> {out_dir}, results in {results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
