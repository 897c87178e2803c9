"""The README's results tables, written from ``results/`` (pyserini's idea: the command beside the number).

Every results table of README.md sits between two markers this tool owns::

    <!-- results-table: table3 (python -m helpers.readme_tables) -->
    ...
    <!-- /results-table -->

``python -m helpers.readme_tables [--readme README.md] [--results results]`` rewrites what lies between
them from ``results/*.json`` (the paper's columns from ``results/paper.yaml``), in place and atomically;
nothing outside the markers is touched. Under each table a line names the results files and the command
that produced the numbers. ``--check`` writes nothing: it prints a unified diff and exits 1 when the
README differs from what the results give (``tests/test_readme_tables.py`` runs it on the committed
README). Bad input (no markers, an unknown or unclosed one, a missing results file or number) is one
line on stderr and exit status 2.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Callable, Mapping

import yaml

from helpers.cli import Parser, entry
from helpers.experiments import to_markdown
from helpers.findings import MINUS, fmt_num, fmt_p, fmt_test
from helpers.io import DataError, atomic_write_text, check_writable
from helpers.results_cells import PAPER, TASKS, Results, by_task, cells, merge, transpose
from helpers.splits import LANGUAGES
from helpers.tasks import get_task
from helpers.workspace import REPO

TOOL = "python -m helpers.readme_tables"
OPEN = re.compile(r"^(?P<indent>[ \t]*)<!-- results-table: (?P<name>\S+) "
                  r"\(python -m helpers\.readme_tables\) -->[ \t]*$")
CLOSE = re.compile(r"^[ \t]*<!-- /results-table -->[ \t]*$")
NB02, NB03, NB04, NB05, NB06, NB07 = ("02_single_vs_multitask", "03_downsampling_ablation", "04_ood_evaluation",
                                      "05_multilingual", "06_workflow_retrieval", "07_beyond_the_paper")
SWEEP = "sweep-cpu"
PAPER_RECIPE_ROW = "multi-task, paper recipe"   # notebook 02's Table 3 row of configs/multitask.yaml
LABELS = [get_task(t).label for t in TASKS]   # Step@15, Table@5, Field@5


def notebook_command(name: str) -> str:
    """The command that re-runs the notebook writing ``results/<name>.json`` in the cpu profile."""
    return f"python -m helpers.reproduce --profile cpu --only '{name[:2]}_*'"


# ---------------------------------------------------------------------------------------------------- tables
# Each table is a function of the results returning its markdown and, when the numbers do not come from a
# notebook, the command that made them. TABLES maps the marker's NAME to it.

TABLES: dict[str, Callable[[Results], tuple[str, str | None]]] = {}


def table(name: str):
    def register(fn):
        TABLES[name] = fn
        return fn
    return register


def _lr(rate: float) -> str:
    mantissa, exp = f"{rate:.0e}".split("e")
    return f"{mantissa}e{int(exp)}"


def _sweep_command(records: list[dict]) -> str:
    variants = " ".join(dict.fromkeys(r["variant"] for r in records))
    steps = records[0]["steps"]
    return f"python -m helpers.sweep --variant {variants} --steps {steps} --threads {records[0]['threads']} --report"


@table("sweep-lr")
def _sweep_lr(res: Results):
    recs = [res.at(SWEEP, "variants", v) for v in ("lr=5e-5@120", "lr=1e-4@120", "lr=2e-4@120", "top4@120")]
    start = recs[1]["curve"][0]   # step 0 is the base encoder, the same for every variant of this sample
    rows = {f"base `me5-small` (step {start['step']})": by_task(start["dev"])}
    for rec in recs:
        top = rec["changes"].get("train_top_layers")
        label = f"lr {_lr(rec['learning_rate'])}" + (f", only the top {top} of 12 layers trained" if top else "")
        rows[label] = by_task(rec["curve"][-1]["dev"])
    corner = f"dev sample, after {recs[0]['steps']} steps"
    return to_markdown(cells(rows, 3, bold=LABELS), LABELS, corner=corner), _sweep_command(recs)


def curve_markdown(points: list[dict]) -> str:
    """A learning curve (points with ``step``, ``train_seconds`` and ``dev`` = {task: value}) as a table with
    one column per evaluated step; the best value of each task in bold."""
    cols = {str(p["step"]): p for p in points}
    secs = cells({c: {"training seconds": p["train_seconds"]} for c, p in cols.items()}, 0)
    recall = cells({c: by_task(p["dev"]) for c, p in cols.items()}, 3, bold=LABELS)
    return to_markdown(transpose(merge(secs, recall)), list(cols), corner="steps")


@table("sweep-240")
def _sweep_240(res: Results):
    rec = res.at(SWEEP, "variants", "lr=2e-4@240")
    return curve_markdown(rec["curve"]), _sweep_command([rec])


@table("sweep-960")
def _sweep_960(res: Results):
    rec = res.at(SWEEP, "variants", "lr=2e-4@960")
    return curve_markdown(rec["curve"]), _sweep_command([rec])


@table("sweep-precision")
def _sweep_precision(res: Results):
    recs = {"fp32": res.at(SWEEP, "variants", "lr=2e-4,fp32@120"),
            "bf16 autocast": res.at(SWEEP, "variants", "lr=2e-4,bf16@120")}
    steps = {r["steps"] for r in recs.values()}.pop()
    speed, secs = "pairs/s", f"training s to step {steps}"
    table_ = merge(cells({n: {speed: r["steady"]["pairs_per_second"]} for n, r in recs.items()}, 1, bold=[speed]),
                   cells({n: {secs: r["curve"][-1]["train_seconds"]} for n, r in recs.items()}, 0, lowest=[secs]),
                   cells({n: by_task(r["curve"][-1]["dev"]) for n, r in recs.items()}, 3))
    corner = f"{steps} steps, lr {_lr(next(iter(recs.values()))['learning_rate'])}"
    return to_markdown(table_, [speed, secs, *LABELS], corner=corner), _sweep_command(list(recs.values()))


RECIPES, BENCH_RECIPES = "sweep-recipes-cpu", "bench-train-catalog-cpu"


def _recipe_records(res: Results) -> tuple[dict, dict]:
    """The paper-recipe and catalog-recipe records of the recipe sweep (one paper, one catalog variant)."""
    variants = res.at(RECIPES, "variants")
    paper = [r for r in variants.values() if r.get("recipe", "paper") == "paper"]
    catalog = [r for r in variants.values() if r.get("recipe") == "catalog"]
    if len(paper) != 1 or len(catalog) != 1:
        raise DataError(f"expected one paper-recipe and one catalog-recipe record, got {len(paper)} and "
                        f"{len(catalog)}", file=res.path(RECIPES), field="variants")
    return paper[0], catalog[0]


def _recipe_label(rec: dict) -> str:
    if rec.get("recipe") == "catalog":
        return f"catalog recipe (top {rec['changes'].get('train_top_layers', 2)} layers)"
    return "paper recipe (MNRL, all layers)"


@table("recipes-curve")
def _recipes_curve(res: Results):
    from helpers.sweep import curve_with_seconds

    paper, catalog = _recipe_records(res)
    points = {f"{_recipe_label(rec)}, step {p['step']}": p for rec in (paper, catalog) for p in curve_with_seconds(rec)}
    table_ = merge(cells({k: {"seconds": p["seconds"]} for k, p in points.items()}, 0),
                   cells({k: by_task(p["dev"]) for k, p in points.items()}, 3, bold=LABELS))
    command = (f"python -m helpers.sweep --variant {paper['variant']} {catalog['variant']} --steps {paper['steps']} "
               f"--catalog-steps {catalog['steps']} --json results/{RECIPES}.json --plot results/{RECIPES}.png")
    return to_markdown(table_, ["seconds", *LABELS], corner="dev sample"), command


@table("recipes-match")
def _recipes_match(res: Results):
    from helpers.sweep import seconds_to_match

    paper, catalog = _recipe_records(res)
    m = seconds_to_match(paper, catalog)
    names = {**{t: get_task(t).label for t in TASKS}, "all": "all three"}
    hits = {names[k]: m[k] or {} for k in names}
    cols = ["paper's last recall", "catalog: first step", "catalog: seconds", "seconds / paper's"]
    table_ = merge(cells({names[t]: {cols[0]: m["reference_dev"][t]} for t in TASKS}, 3),
                   cells({n: {cols[1]: h.get("step")} for n, h in hits.items()}, 0),
                   cells({n: {cols[2]: h.get("seconds")} for n, h in hits.items()}, 0),
                   cells({n: {cols[3]: h.get("ratio")} for n, h in hits.items()}, 3))
    table_[names["all"]].setdefault(cols[0], "")   # no single reference recall for the three together
    corner = f"paper: {paper['steps']} steps in {m['reference_seconds']:.0f} s"
    return (to_markdown(table_, cols, corner=corner),
            "python -m helpers.sweep (as above); the match: helpers.sweep.seconds_to_match")


@table("recipes-bench")
def _recipes_bench(res: Results):
    rows = {r["recipe"]: r for r in res.at(BENCH_RECIPES, "rows")}
    cols = ["trainable (M)", "pairs/s", "s/step", "cache s", "s/epoch"]
    table_ = merge(cells({k: {"trainable (M)": r["trainable_params"] / 1e6} for k, r in rows.items()}, 1),
                   cells({k: {"pairs/s": r["pairs_per_second"]} for k, r in rows.items()}, 1, bold=["pairs/s"]),
                   cells({k: {"s/step": r["seconds_per_step"]} for k, r in rows.items()}, 2),
                   cells({k: {"cache s": r["cache_seconds"]} for k, r in rows.items()}, 0),
                   cells({k: {"s/epoch": r["seconds_per_epoch"]} for k, r in rows.items()}, 0, lowest=["s/epoch"]))
    b = res.at(BENCH_RECIPES)
    corner = f"{b['rows'][0]['model']}, {b['rows'][0]['steps']} steps of {b['batch_size']}"
    command = (f"python -m helpers.bench_train --recipe catalog --model {b['rows'][0]['model']} --pairs {b['pairs']} "
               f"--profile {b['profile']} --data {b['data']} --json results/{BENCH_RECIPES}.json")
    return to_markdown(table_, cols, corner=corner), command


@table("curve-multitask")
def _curve_multitask(res: Results):
    points = res.at(NB02, "summary", "curve", "multitask")
    if not all("dev" in p for p in points):
        points = _flat_curve(points, res.at(NB02, "training", "multitask", "steps"), res.path(NB02))
    return curve_markdown(points), None


def _flat_curve(points: list[dict], last: int, path: Path) -> list[dict]:
    """Curve points as notebook 02 saved them before it kept their step numbers (the task ``step``
    overwrote the key): the steps are the learning-curve callback's, the config's ``curve_steps`` under
    the run's last step and the last step itself."""
    schedule = yaml.safe_load((REPO / "configs" / "multitask.yaml").read_text(encoding="utf-8"))["curve_steps"]
    steps = [s for s in schedule if s < last] + [last]
    if len(steps) != len(points):
        raise DataError(f"{len(points)} curve points but configs/multitask.yaml's curve_steps give {steps}: "
                        f"re-run the notebook ({notebook_command(NB02)})", file=path, field="summary.curve")
    return [{"step": s, "train_seconds": p["train_seconds"], "dev": {t: p[t] for t in TASKS}}
            for s, p in zip(steps, points)]


@table("table3")
def _table3(res: Results):
    t3, paper = res.at(NB02, "summary", "table3"), res.at(PAPER, "table3_dev")
    single = {res.at(NB02, "training", f"single_{t}", "steps") for t in TASKS}
    rows = {  # label: (our row, the paper's row)
        "BM25": (t3["BM25"], None), "minilm-l6 (base)": (res.at(NB02, "summary", "dev", "minilm-l6"), None),
        "me5-small (base)": (t3["me5-small (base)"], None),
        f"single-task models ({'/'.join(map(str, sorted(single)))} steps each)":
            (t3["single-task models"], paper["single-task"])}
    paper_steps = res.at(NB02, "training", "multitask", "steps") // len(TASKS)
    # the catalog recipe's headline models beside the paper recipe's (issue 23); results written before
    # have the paper recipe's model as the headline one
    catalog = PAPER_RECIPE_ROW in t3
    budget = (f"every pair: {res.at(NB02, 'training', 'multitask_catalog', 'steps')} steps" if catalog
              else f"{paper_steps} steps per task")
    rows[f"one multi-task model ({budget})"] = (t3["one multi-task model"], paper["multi-task"])
    rows["multi-task + downsampled (K=20)"] = (t3["multi-task + downsampled"], paper["multi-task + downsampled"])
    if catalog:
        rows[f"multi-task, paper recipe ({paper_steps} steps per task)"] = (t3[PAPER_RECIPE_ROW], paper["multi-task"])
    return _with_paper(rows, "dev, ours (paper)"), None


def _with_paper(rows: Mapping[str, tuple[dict, dict | None]], corner: str) -> str:
    """Our recall per task beside the paper's, ``0.56 (0.77)``, the best of ours in each column in bold."""
    notes = {label: {get_task(t).label: fmt_num(v, 2) for t, v in ref.items()}
             for label, (_, ref) in rows.items() if ref}
    ours = {label: by_task(values) for label, (values, _) in rows.items()}
    return to_markdown(cells(ours, 2, bold=LABELS, notes=notes), LABELS, corner=corner)


def _tests_table(tests: Mapping[str, Mapping[str, dict]], corner: str = "") -> str:
    return to_markdown({label: {get_task(t).label: fmt_test(r[t]) for t in TASKS} for label, r in tests.items()},
                       LABELS, corner=corner)


@table("table3-tests")
def _table3_tests(res: Results):
    rows = {f"multi-task {MINUS} me5-small": "multi - base", f"multi-task {MINUS} BM25": "multi - bm25",
            f"multi-task {MINUS} single-task": "multi - single",
            f"downsampled {MINUS} multi-task": "downsampled - multi"}
    if "multi - paper recipe" in res.at(NB02, "summary", "tests"):
        rows[f"multi-task {MINUS} multi-task, paper recipe"] = "multi - paper recipe"
    return _tests_table({label: res.at(NB02, "summary", "tests", key) for label, key in rows.items()}), None


@table("caps")
def _caps(res: Results):
    dev, tests = res.at(NB03, "summary", "dev"), res.at(NB03, "summary", "tests")
    order = ["none"] + sorted((k for k in dev if k != "none"), key=lambda k: int(k.removeprefix("K=")))
    notes = {k: {get_task(t).label: f"{fmt_num(r['delta'], 3, signed=True)}, {fmt_p(r['p_value'])}"
                 for t, r in tests[k].items()} for k in order if k != "none"}
    return to_markdown(cells({k: by_task(dev[k]) for k in order}, 3, bold=LABELS, notes=notes), LABELS,
                       corner="cap K"), None


@table("head-tail")
def _head_tail(res: Results):
    ht = res.at(NB03, "summary", "head_tail")
    rows = {k: {f"{t} {g}": ht[k][t][g] for t in TASKS for g in ("head", "tail")} for k in ("none", "K=20")}
    return to_markdown(cells(rows, 3), list(rows["none"])), None


@table("table4")
def _table4(res: Results):
    ood, paper = res.at(NB04, "summary", "ood_weighted"), res.at(PAPER, "table4_ood")
    rows = {"BM25": (ood["bm25"], paper["bm25"]), "minilm-l6": (ood["minilm-l6"], None),
            "me5-small (base)": (ood["me5-small"], paper["mE5-small"]),
            "single-task models": (ood["single-task"], None),
            "multi-task": (ood["multi-task"], paper["mGTE-base multi-task"]),
            "multi-task + downsampled": (ood["multi-task + downsampled"], None),
            "hybrid BM25 + multi-task ds": (ood["hybrid (BM25 + multi-task ds)"], None)}
    return _with_paper(rows, "OOD weighted average, ours (paper)"), None


@table("table4-tests")
def _table4_tests(res: Results):
    rows = {"me5-small (base)": "multi-task - me5-small", "BM25": "multi-task - bm25",
            "single-task models": "multi-task - single-task",
            "downsampled model": "multi-task - multi-task + downsampled"}
    tests = {label: res.at(NB04, "summary", "tests", key) for label, key in rows.items()}
    return _tests_table(tests, corner="multi-task against"), None


@table("table5")
def _table5(res: Results):
    avg, paper = res.at(NB05, "summary", "avg_translated"), res.at(PAPER, "table5_multilingual_avg")
    rows = {"BM25": (avg["bm25"], None), "minilm-l6 (English-only)": (avg["minilm-l6"], None),
            "me5-small (base)": (avg["me5-small"], paper["mGTE-base"]),
            "multi-task": (avg["multi-task"], paper["mGTE-base multi-task"]),
            "multi-task + downsampled": (avg["multi-task + downsampled"], None)}
    return _with_paper(rows, f"avg over {'/'.join(LANGUAGES)}, ours (paper)"), None


@table("table6")
def _table6(res: Results):
    wf, paper = res.at(NB06, "summary", "workflow_recall5"), res.at(PAPER, "table6_workflow")
    domains = [s for s in res.at(NB06, "grid", "bm25", "workflow") if s != "dev"]
    ood = f"OOD average, {len(domains)} domains (paper: 3 OOD splits)"
    rows = {"BM25": "bm25", "minilm-l6": "minilm-l6", "me5-small (base)": "me5-small", "multi-task": "multi-task",
            "multi-task + downsampled": "multi-task + downsampled", **_table6_added_rows(res)}
    values = {label: {"dev": wf[k]["dev"], ood: wf[k]["ood_avg"]} for label, k in rows.items()}
    notes = {"BM25": {ood: fmt_num(paper["bm25"]["workflow"], 2)},
             "me5-small (base)": {ood: f"mGTE-base {fmt_num(paper['mGTE-base']['workflow'], 2)}"},
             "multi-task + downsampled": {ood: "mGTE-base multi-task "
                                               f"{fmt_num(paper['mGTE-base multi-task']['workflow'], 2)}"}}
    return to_markdown(cells(values, 2, bold=["dev", ood], notes=notes), ["dev", ood]), None


def _table6_added_rows(res: Results) -> dict[str, str]:
    """Table 6's rows for the merged model and the workflow hybrids (issue 24), ``{label: key in
    workflow_recall5}``, when notebook 06's results have them (results written before do not)."""
    summary, rows = res.at(NB06, "summary"), {}
    if "merge" in summary:
        names, w = summary["merge"]["names"], summary["merge"]["choice"]["weight"]
        rows[f"{names['unmerged']} merged with its base (w = {w:g}, chosen on dev)"] = names["merged"]
    if "tuned_hybrid" in summary:
        hyb = summary["tuned_hybrid"]
        rows[f"hybrid BM25 + {hyb['model']}, RRF"] = hyb["names"]["rrf"]
        rows[f"hybrid BM25 + {hyb['model']}, convex w = {hyb['weight']:g} (tuned on dev)"] = hyb["names"]["tuned"]
    return rows


@table("workflow-diagnosis")
def _workflow_diagnosis(res: Results):
    diag, exposure = res.at(NB06, "summary", "dev_diagnosis"), res.at(NB06, "summary", "exposure")
    rows = {"base me5-small": "base me5-small (its own prefix)", "multi-task, ablation budget": None,
            "multi-task, headline budget": None, "cap 20, ablation budget": None,
            "cap 20, headline budget (downsampled)": None,
            "cap 20, ablation budget, trained without instructions": "cap 20, ablation budget, no instructions"}
    prompts = {"workflow instruction (untrained)": "workflow instruction (untrained)",
               "step instruction": "step instruction", "bare `query: `": "bare prefix"}
    keys = {label: key or label for label, key in rows.items()}
    # a base encoder has no training log: it trained 0 steps and saw no pool
    steps = {label: {"steps": str(exposure[k]["steps"]) if k in exposure else "0"} for label, k in keys.items()}
    passes = cells({label: {"table pool passes": exposure.get(k, {}).get("table", {}).get("passes")}
                    for label, k in keys.items()}, 2, bold=["table pool passes"])
    recall = cells({label: {col: diag[k].get(p) for col, p in prompts.items()} for label, k in keys.items()}, 3,
                   bold=list(prompts))
    return to_markdown(merge(steps, passes, recall), ["steps", "table pool passes", *prompts], corner="model"), None


@table("instructions")
def _instructions(res: Results):
    instr = res.at(NB07, "summary", "instructions")
    rows = {"trained with instructions, queried with them": "trained with, queried with",
            "the same model queried without them": "trained with, queried without",
            "trained and queried without instructions": "trained without, queried without"}
    return to_markdown(cells({label: by_task(instr[k]) for label, k in rows.items()}, 2, bold=LABELS), LABELS), None


@table("hybrid")
def _hybrid(res: Results):
    hyb = res.at(NB07, "summary", "hybrid_dev")
    rows = {"BM25": "bm25", "me5-small": "me5-small", "multi-task + downsampled": "multi-task ds",
            "hybrid BM25 + me5-small": "hybrid bm25 + me5-small",
            "hybrid BM25 + multi-task ds": "hybrid bm25 + multi-task ds"}
    notes = {}
    tuned = res.at(NB07, "summary").get("tuned_hybrid")
    if tuned:   # results written before issue 24 have no tuned hybrid
        label = "hybrid BM25 + multi-task ds, convex w tuned on dev (so optimistic here)"
        rows[label] = tuned["name"]
        notes[label] = {get_task(t).label: f"w = {w:g}" for t, w in tuned["weights"].items()}
    return to_markdown(cells({label: by_task(hyb[k]) for label, k in rows.items()}, 2, bold=LABELS, notes=notes),
                       LABELS), None


# ------------------------------------------------------------------------------------------------- the README

def block(name: str, res: Results) -> list[str]:
    """The lines between ``name``'s markers: its table, a blank line, where the numbers come from."""
    res.read = []
    markdown, command = TABLES[name](res)
    files = " and ".join(f"`results/{res.path(n).name}`" for n in res.read)
    runs = [command] if command else [notebook_command(n) for n in res.read if n not in (PAPER, SWEEP)]
    source = (f"<sub>From {files}; the numbers: {', '.join(f'`{c}`' for c in runs)}; "
              f"the table: `{TOOL}`.</sub>")
    return [*markdown.splitlines(), "", source]


def render(text: str, results: str | Path, readme: str | Path = "README.md") -> str:
    """``text`` (a README) with every results table rewritten from ``results``; the rest unchanged."""
    lines, out, seen, res = text.split("\n"), [], {}, Results(results)
    i = 0
    while i < len(lines):
        m = OPEN.match(lines[i])
        if CLOSE.match(lines[i]):
            raise DataError("a closing <!-- /results-table --> without its opening marker", file=readme, line=i + 1)
        out.append(lines[i])
        i += 1
        if not m:
            continue
        name, indent = m["name"], m["indent"]
        if name not in TABLES:
            raise DataError(f"unknown results table {name!r}; known: {', '.join(TABLES)}", file=readme, line=i)
        if name in seen:
            raise DataError(f"results table {name!r} appears twice (first on line {seen[name]})", file=readme, line=i)
        seen[name] = i
        end = next((j for j in range(i, len(lines)) if CLOSE.match(lines[j]) or OPEN.match(lines[j])), None)
        if end is None or OPEN.match(lines[end]):
            raise DataError(f"results table {name!r} has no closing <!-- /results-table -->", file=readme, line=i)
        out.extend(indent + line if line else "" for line in block(name, res))
        out.append(lines[end])
        i = end + 1
    if not seen:
        raise DataError(f"no results-table markers: nothing to generate (put <!-- results-table: NAME ({TOOL}) --> "
                        f"and <!-- /results-table --> around a table; names: {', '.join(TABLES)})", file=readme)
    missing = [n for n in TABLES if n not in seen]
    if missing:
        raise DataError(f"no markers for the results table(s) {', '.join(missing)}", file=readme)
    return "\n".join(out)


def _parser() -> Parser:
    p = Parser(prog=TOOL, description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", default=str(REPO / "README.md"),
                   help="the README to rewrite (default: the repository's)")
    p.add_argument("--results", default=str(REPO / "results"), help="folder of the results files (default results/)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if the README differs")
    return p


@entry
def main(argv=None) -> int:
    """Exit status 0 (up to date, or rewritten), 1 (``--check``: the README differs) or 2 (bad input)."""
    args = _parser().parse_args(argv)
    readme = Path(args.readme)
    if not readme.is_file():
        raise DataError("README not found (--readme)", file=readme)
    if not Path(args.results).is_dir():
        raise DataError("results folder not found (--results)", file=args.results)
    try:
        text = readme.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", file=readme) from None
    new = render(text, args.results, readme)
    if new == text:
        print(f"{readme}: {len(TABLES)} results tables up to date")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(text.splitlines(keepends=True), new.splitlines(keepends=True),
                                                   f"{readme} (committed)", f"{readme} (from {args.results})"))
        print(f"{readme}: results tables differ from {args.results}; rewrite them with `{TOOL}`")
        return 1
    check_writable(readme, flag="--readme")
    atomic_write_text(readme, new)
    print(f"{readme}: {len(TABLES)} results tables rewritten from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
