"""Run every numbered notebook headless with papermill: ``python -m helpers.reproduce``.

``--profile cpu`` (the default) executes ``notebooks/NN_*.ipynb`` in place, so the committed
notebooks carry the default profile's outputs and plots, and writes ``results/<notebook>.json``.
Other profiles write executed copies to ``--out`` (default ``build/notebooks-<profile>/``) and their
results next to them, leaving the committed notebooks untouched.

A notebook executed in place is cleaned before it is kept (:func:`clean_notebook`): papermill's
``injected-parameters`` cell is removed (its values folded into the ``parameters`` cell) and paths
of this machine are made relative, so "Run All" in JupyterLab on any clone runs the notebook as
committed and writes into that clone's ``results/``. ``python -m helpers.reproduce --clean NB...``
cleans notebooks without running them.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from pathlib import Path

from helpers.cli import Parser, add_profile, entry
from helpers.io import DataError, atomic_write_text, check_output_file, read_json_object
from helpers.profiles import DEFAULT_PROFILE
from helpers.workspace import REPO


def notebooks(pattern: str = "[0-9][0-9]_*.ipynb") -> list[Path]:
    return sorted((REPO / "notebooks").glob(pattern))


def run_notebook(nb: Path, out: Path, profile: str, results_dir: Path | None = None, seed: int = 0,
                 timeout: int | None = None, clean: bool = False) -> float:
    """Execute one notebook with papermill; returns wall seconds.

    ``results_dir=None`` keeps the notebook's own default (the repository's ``results/``).
    ``clean=True`` makes the executed copy fit to commit (:func:`clean_notebook`).
    """
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    params: dict = {"profile": profile, "seed": seed}
    if results_dir is not None:
        params["results_dir"] = str(results_dir)
    t0 = time.time()
    pm.execute_notebook(str(nb), str(out), parameters=params, kernel_name="python3",
                        cwd=str(REPO / "notebooks"), progress_bar=False, execution_timeout=timeout)
    if clean:
        clean_notebook(out)
    return time.time() - t0


# ----------------------------------------------------------------------------------------------
# cleaning an executed notebook for commit
# ----------------------------------------------------------------------------------------------

_ASSIGN = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>.*?)(?P<comment>\s*#.*)?$")


def _literal_assignments(source: str) -> dict:
    """``name = literal`` statements of a parameters cell (other statements are ignored)."""
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def _machine_path(value) -> bool:
    return isinstance(value, str) and (os.path.isabs(value) or re.match(r"^[A-Za-z]:[\\/]", value) is not None)


def _fold_parameters(source: str, values: dict) -> str:
    """The parameters cell with ``values`` written in, so the cell shows what the notebook ran with."""
    current = _literal_assignments(source)
    lines = source.split("\n")
    for name, value in values.items():
        if name in current and current[name] == value:
            continue
        for i, line in enumerate(lines):
            m = _ASSIGN.match(line)
            if m and m["name"] == name:
                lines[i] = f"{name} = {value!r}{m['comment'] or ''}"
                break
        else:
            lines.append(f"{name} = {value!r}")
    return "\n".join(lines)


def _relative_text(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def clean_notebook(path: str | os.PathLike, repo: Path = REPO) -> bool:
    """Make an executed notebook fit to commit; returns whether it changed.

    - papermill's ``injected-parameters`` cell goes; the values it set are written into the
      ``parameters`` cell, except paths of this machine (the notebook's defaults find the
      repository's folders on any clone).
    - Paths under the repository in outputs and papermill's metadata become relative to it, and the
      home folder becomes ``~``. Cell sources are never changed, apart from the parameters cell.
    """
    import nbformat

    path = Path(path)
    original = path.read_text(encoding="utf-8")
    nb = nbformat.reads(original, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    params_cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    kept = {}
    for cell in injected:
        kept.update({k: v for k, v in _literal_assignments(cell.source).items() if not _machine_path(v)})
        nb.cells.remove(cell)
    if params_cell is not None and kept:
        params_cell.source = _fold_parameters(params_cell.source, kept)

    repo = str(Path(repo).resolve())
    replacements = [(repo + "/", ""), (repo, ".")]
    home = str(Path.home())
    if home not in ("/", ""):
        replacements.append((home + "/", "~/"))
    pm_meta = nb.metadata.get("papermill")
    if pm_meta is not None:
        if "parameters" in pm_meta:
            pm_meta["parameters"] = {k: v for k, v in pm_meta["parameters"].items() if not _machine_path(v)}
        for key in ("input_path", "output_path", "cwd"):
            if isinstance(pm_meta.get(key), str):
                pm_meta[key] = _relative_text(pm_meta[key], replacements)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _relative_text(out["text"], replacements)
            for mime, value in out.get("data", {}).items():
                if isinstance(value, str) and not mime.startswith("image/"):
                    out["data"][mime] = _relative_text(value, replacements)
            if "traceback" in out:
                out["traceback"] = [_relative_text(t, replacements) for t in out["traceback"]]
            if "evalue" in out:
                out["evalue"] = _relative_text(out["evalue"], replacements)
    text = nbformat.writes(nb)  # papermill's layout, so cleaning alone leaves no formatting diff
    if text == original:
        return False
    atomic_write_text(path, text)
    return True


# ----------------------------------------------------------------------------------------------
# where the time of a reproduction goes
# ----------------------------------------------------------------------------------------------

def _when(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def timings(profile: str = "cpu", notebook_dir: str | os.PathLike | None = None,
            runs: str | os.PathLike | None = None) -> dict:
    """Where the wall time of the executed notebooks went, and what a run from scratch would take.

    Reads papermill's ``start_time``/``end_time`` of each executed ``NN_*.ipynb`` in ``notebook_dir``
    (default: the committed notebooks) and ``timings.train_seconds`` of each ``<run>/train_log.json``
    under ``runs`` (default: ``runs/<profile>/``). A run whose log was written inside a notebook's
    execution trained there, so that notebook's time splits into training and the rest (evaluation,
    almost all of it encoding); a run trained earlier was re-used from its folder, and a run from
    scratch would add its training time. Returns ``{"notebooks": [...], "runs": [...], "totals": {...}}``.
    """
    import json

    from helpers.workspace import runs_dir

    notebook_dir = Path(notebook_dir) if notebook_dir else REPO / "notebooks"
    runs = Path(runs) if runs else runs_dir(profile)
    windows = []
    for nb in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb")):
        meta = json.loads(nb.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
        if not meta.get("start_time") or not meta.get("end_time"):
            raise ValueError(f"{nb}: no papermill start_time/end_time in its metadata: execute it with "
                             f"python -m helpers.reproduce first")
        windows.append({"notebook": nb.stem, "start": _when(meta["start_time"]), "end": _when(meta["end_time"])})
    run_rows = []
    for log in sorted(runs.glob("*/train_log.json")):
        t = json.loads(log.read_text(encoding="utf-8"))
        secs = t.get("timings", {}).get("train_seconds")
        if secs is None:
            raise ValueError(f"{log}: field timings.train_seconds is missing")
        written = log.stat().st_mtime
        where = next((w["notebook"] for w in windows if w["start"] <= written <= w["end"]), None)
        run_rows.append({"run": log.parent.name, "train_seconds": round(secs, 1),
                         "curve_seconds": t.get("training", {}).get("curve_seconds", 0.0), "trained_in": where})
    nb_rows = []
    for w in windows:
        wall = w["end"] - w["start"]
        trained = sum(r["train_seconds"] for r in run_rows if r["trained_in"] == w["notebook"])
        nb_rows.append({"notebook": w["notebook"], "wall_seconds": round(wall, 1),
                        "training_seconds": round(trained, 1), "other_seconds": round(wall - trained, 1)})
    training = sum(r["train_seconds"] for r in run_rows)
    other = sum(r["other_seconds"] for r in nb_rows)
    return {"notebooks": nb_rows, "runs": run_rows, "runs_dir": str(runs),
            "totals": {"training_seconds": round(training, 1), "other_seconds": round(other, 1),
                       "from_scratch_seconds": round(training + other, 1),
                       "reused_runs": sum(r["trained_in"] is None for r in run_rows)}}


def print_timings(t: dict) -> None:
    print(f"{'notebook':<32} {'wall s':>8} {'training s':>11} {'other s':>8}")
    for r in t["notebooks"]:
        print(f"{r['notebook']:<32} {r['wall_seconds']:>8.0f} {r['training_seconds']:>11.0f} {r['other_seconds']:>8.0f}")
    print(f"\n{'run':<40} {'train s':>8} {'of it curve s':>14}  trained in")
    for r in t["runs"]:
        print(f"{r['run']:<40} {r['train_seconds']:>8.0f} {r['curve_seconds']:>14.0f}  "
              f"{r['trained_in'] or 'earlier (re-used)'}")
    tot = t["totals"]
    if not t["runs"]:   # a fresh clone: the notebooks' time holds training we cannot tell apart
        print(f"\nno train_log.json under {t['runs_dir']}: training cannot be told apart from the rest of the "
              f"notebooks' {tot['other_seconds'] / 60:.0f} min, so the time from scratch is unknown here (the "
              f"README's Results section has the measured run)")
        return
    print(f"\ntraining (every run) {tot['training_seconds'] / 60:.0f} min + the rest of the notebooks "
          f"(evaluation, mostly encoding) {tot['other_seconds'] / 60:.0f} min = "
          f"{tot['from_scratch_seconds'] / 60:.0f} min from scratch ({tot['reused_runs']} runs were re-used, "
          f"their training times come from their logs)")


def _parser() -> Parser:
    ap = Parser(prog="python -m helpers.reproduce", description=__doc__.split("\n\n")[0])
    add_profile(ap, default=DEFAULT_PROFILE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="glob of notebooks to run, e.g. '0[12]_*'")
    ap.add_argument("--out", default=None, help="folder for the executed notebooks and their results/ (default: "
                    "notebooks/ in place for cpu, build/notebooks-<profile>/ for the other profiles)")
    ap.add_argument("--overwrite", action="store_true", help="replace files in --out this tool did not write")
    ap.add_argument("--clean", nargs="+", metavar="NOTEBOOK", default=None,
                    help="only clean these executed notebooks for commit (no execution)")
    ap.add_argument("--timings", action="store_true",
                    help="print where the executed notebooks' time went (training vs the rest); no execution")
    return ap


@entry
def main(argv=None) -> int:
    """``python -m helpers.reproduce``: exit code 0, or 2 for bad input (one line on stderr, nothing run)."""
    args = _parser().parse_args(argv)
    if args.timings:
        print_timings(timings(args.profile))
        return 0
    if args.clean:
        for nb in args.clean:
            if not Path(nb).is_file():
                raise DataError("file not found (--clean)", file=nb)
        for nb in args.clean:
            print(f"{nb}: {'cleaned' if clean_notebook(nb) else 'already clean'}")
        return 0
    from helpers.workspace import COMMITTED_PROFILE, profile_results

    selected = notebooks(f"{args.only}.ipynb" if args.only else "[0-9][0-9]_*.ipynb")
    if not selected:
        raise DataError(f"--only {args.only!r} matches no notebook; notebooks: "
                        f"{', '.join(nb.stem for nb in notebooks())}")
    in_place = args.profile == COMMITTED_PROFILE and args.out is None
    # resolved here: the kernels run in notebooks/, where a relative --out would name another folder
    out_dir = Path(args.out).resolve() if args.out else REPO / "notebooks" if in_place else profile_results(args.profile).parent
    # In place, the notebooks' own default finds the repository's results/: nothing machine-specific
    # is injected into the committed copies.
    results_dir = None if in_place else out_dir / "results"
    prepare_outputs(selected, out_dir, results_dir, args.profile, args.overwrite)
    total = 0.0
    for nb in selected:
        secs = run_notebook(nb, out_dir / nb.name, args.profile, results_dir, seed=args.seed, clean=in_place)
        total += secs
        print(f"{nb.name}: {secs:.0f} s", flush=True)
    print(f"all notebooks ({args.profile}): {total:.0f} s -> {out_dir}, "
          f"results in {results_dir or REPO / 'results'}")
    return 0


def prepare_outputs(selected: list[Path], out_dir: Path, results_dir: Path | None, profile: str,
                    overwrite: bool = False) -> None:
    """Before any notebook runs: each executed copy and results file may be written (a file there is an
    executed notebook, or results of this profile), else the run is refused unless ``overwrite``, which
    removes results of another profile (a notebook never replaces those itself)."""
    from helpers.workspace import results_profile

    if out_dir.exists() and not out_dir.is_dir():
        raise DataError("--out must be a folder, but this is a file; choose another path", file=out_dir)
    ours = lambda p: results_profile(p) == profile  # noqa: E731
    results = [results_dir / f"{nb.stem}.json" for nb in selected] if results_dir is not None else []
    for nb in selected:
        if out_dir / nb.name != nb:   # in place (cpu), the notebook itself is executed
            check_output_file(out_dir / nb.name, overwrite=overwrite, ours=_executed_notebook)
    for res in results:
        check_output_file(res, overwrite=overwrite, ours=ours)
    for res in results:
        if res.is_file() and not ours(res):
            res.unlink()   # --overwrite was given (checked above)


def _executed_notebook(path: Path) -> bool:
    """A notebook papermill executed (what :func:`run_notebook` writes)."""
    obj = read_json_object(path)
    return obj is not None and isinstance(obj.get("metadata"), dict) and "papermill" in obj["metadata"]


if __name__ == "__main__":
    sys.exit(main())
