"""What the notebooks run: evaluation grids (retrievers x tasks x splits) and the paper's numbers.

A *retriever spec* is what :class:`helpers.evaluation.RetrieverFactory` takes (``bm25``, an encoder
name, a model folder, ``hybrid:A+B``) or an already loaded ``SentenceTransformer``. Dense models are
loaded once per grid and re-used across tasks and splits; the task picks the model's
``<task>_query`` / ``<task>_document`` prompts when it has them. Every cell goes through
:func:`helpers.evaluation.evaluate_folder`, the project's one evaluation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import yaml

from helpers.evaluation import RetrieverFactory, evaluate_folder  # noqa: F401 (RetrieverFactory: notebooks)
from helpers.metrics import paired_bootstrap_strata, weighted_mean
from helpers.retrieval import Retriever
from helpers.splits import OOD_SPLITS
from helpers.tasks import get_task
from helpers.workspace import REPO


def paper_tables() -> dict:
    """The paper's Tables 3-6 (``results/paper.yaml``), for side-by-side comparisons."""
    return yaml.safe_load((REPO / "results" / "paper.yaml").read_text(encoding="utf-8"))


def evaluate_grid(retrievers: dict[str, object], data_dir: str | os.PathLike, tasks: Iterable[str],
                  splits: Iterable[str], max_queries: int | None = None, seed: int = 0,
                  factory: RetrieverFactory | None = None, progress: bool = True,
                  keep_runs: bool = False, max_seq_length: dict[str, int] | None = None) -> dict:
    """Evaluate every retriever on every task and split at the paper's k (the task registry's).

    ``max_seq_length`` maps a task to the encoder length used for it (default: each model's own).

    Returns ``{name: {task: {split: {"recall": r, "n": n_queries, "per_query": {...}}}}}``;
    per-query recall is kept so notebooks can run paired significance tests.
    """
    from tqdm.auto import tqdm

    factory = factory or RetrieverFactory()
    tasks, splits = list(tasks), list(splits)
    out: dict = {}
    jobs = [(n, t) for n in retrievers for t in tasks]
    for name, task in tqdm(jobs, desc="evaluate", disable=not progress):
        spec = retrievers[name]
        msl = (max_seq_length or {}).get(task)
        ret = spec if isinstance(spec, Retriever) else factory(spec, task, name=name, max_seq_length=msl)
        key = get_task(task).metric_key
        for split in splits:
            res = evaluate_folder(ret, Path(data_dir) / "beir" / task / split, task, metrics=("recall",),
                                  max_queries=max_queries, seed=seed, keep_run=keep_runs)
            cell = {"recall": res["metrics"][key], "n": res["n_queries"],
                    "per_query": {q: v[key] for q, v in res["per_query"].items()}}
            if keep_runs:
                cell["run"] = res["run"]
            out.setdefault(name, {}).setdefault(task, {})[split] = cell
    return out


def ood_average(grid: dict, name: str, task: str, splits: Iterable[str] = OOD_SPLITS) -> float:
    """The paper's Table 4 number: recall averaged over OOD splits weighted by their query counts."""
    cells = {s: grid[name][task][s] for s in splits if s in grid[name][task]}
    return weighted_mean({s: {"r": c["recall"]} for s, c in cells.items()}, {s: c["n"] for s, c in cells.items()})["r"]


def recall_by_split(grid: dict, names: Iterable[str], task: str, splits: Iterable[str]):
    """A DataFrame of ``task``'s recall: a row per split, a column per retriever, then the row
    ``OOD weighted avg`` (:func:`ood_average`)."""
    import pandas as pd

    names, splits = list(names), list(splits)
    table = pd.DataFrame({n: {s: grid[n][task][s]["recall"] for s in splits} for n in names})
    table.loc["OOD weighted avg"] = [ood_average(grid, n, task) for n in names]
    return table


def compare(grid: dict, a: str, b: str, tasks: Iterable[str], splits: Iterable[str], equal_weights: bool = False,
            n_resamples: int = 10_000, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{task: paired bootstrap of b - a}`` on the average over ``splits`` that the tables report: the
    query-weighted average (dev alone, the OOD weighted average) or, with ``equal_weights``, the plain
    average over splits (the multilingual average). Needs the grid's per-query values."""
    out = {}
    for t in tasks:
        splits_t = [s for s in splits if s in grid[a][t] and s in grid[b][t]]
        if not splits_t:
            raise ValueError(f"no split of {list(splits)} was evaluated for both {a!r} and {b!r} on task {t!r}")
        out[t] = paired_bootstrap_strata({s: grid[a][t][s]["per_query"] for s in splits_t},
                                         {s: grid[b][t][s]["per_query"] for s in splits_t},
                                         weights={s: 1.0 for s in splits_t} if equal_weights else None,
                                         n_resamples=n_resamples, seed=seed)
    return out


def seed_name(name: str, seed: int) -> str:
    """A trained model's row in a grid over seeds (:func:`compare_seeds`)."""
    return f"{name}@seed{seed}"


def compare_seeds(grid: dict, a: str, b: str, tasks: Iterable[str], splits: Iterable[str], seeds: Iterable[int],
                  n_resamples: int = 10_000, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{task: paired bootstrap of b - a}`` pooled over ``seeds``: each (seed, split) is a stratum, weighted
    by its queries, so the estimate is the mean over seeds of what :func:`compare` reports for one seed and
    its interval holds each seed's query sampling. A name with rows :func:`seed_name` ``(name, s)`` in the
    grid takes seed ``s``'s row; one without (BM25, a base encoder) is the same at every seed."""
    seeds = list(seeds)

    def row(name: str, s: int) -> str:
        return seed_name(name, s) if seed_name(name, s) in grid else name

    out = {}
    for t in tasks:
        strata = [(s, sp) for s in seeds for sp in splits if sp in grid[row(a, s)][t] and sp in grid[row(b, s)][t]]
        if not strata:
            raise ValueError(f"no split of {list(splits)} was evaluated for both {a!r} and {b!r} on task {t!r}")
        out[t] = paired_bootstrap_strata({f"{sp}@seed{s}": grid[row(a, s)][t][sp]["per_query"] for s, sp in strata},
                                         {f"{sp}@seed{s}": grid[row(b, s)][t][sp]["per_query"] for s, sp in strata},
                                         n_resamples=n_resamples, seed=seed)
    return out


def join_grids(*grids: dict) -> dict:
    """One grid from several (``{name: {task: {split: cell}}}``); a later grid's cell wins."""
    out: dict = {}
    for g in grids:
        for name, per_task in g.items():
            for task, per_split in per_task.items():
                out.setdefault(name, {}).setdefault(task, {}).update(per_split)
    return out


def evaluate_per_task(name: str, specs: dict[str, object], data_dir: str | os.PathLike, splits: Iterable[str],
                      **options) -> dict:
    """One grid row whose spec depends on the task (a hybrid with a weight tuned per task):
    ``specs`` maps each task to its spec; ``options`` go to :func:`evaluate_grid`."""
    splits = list(splits)
    return join_grids(*(evaluate_grid({name: spec}, data_dir, [task], splits, **options)
                        for task, spec in specs.items()))


def round_tests(tests: dict, digits: int = 4) -> dict:
    """``{name: {task: paired test}}`` (what :func:`compare` gives per pair) with every number rounded,
    as the results files keep them."""
    return {n: {t: {k: round(float(v), digits) for k, v in r.items()} for t, r in per_task.items()}
            for n, per_task in tests.items()}


def summary_table(grid: dict, splits: Iterable[str] | None = None, ood: bool = False) -> dict[str, dict[str, float]]:
    """``{retriever: {task: value}}``: one split's recall, or the weighted OOD average."""
    table: dict[str, dict[str, float]] = {}
    for name, per_task in grid.items():
        for task, per_split in per_task.items():
            if ood:
                val = ood_average(grid, name, task)
            else:
                split = list(splits)[0] if splits else next(iter(per_split))
                val = per_split[split]["recall"]
            table.setdefault(name, {})[task] = round(val, 4)
    return table


def to_markdown(table: dict[str, dict[str, float | str]], columns: list[str] | None = None,
                reference: dict[str, dict[str, float]] | None = None, fmt: str = "{:.2f}", corner: str = "") -> str:
    """A markdown table of ``{row: {column: value}}``; ``reference`` adds "ours (paper)" cells.

    A ``str`` value is a cell already written (the README's tables, :mod:`helpers.readme_tables`); an
    empty one stays empty. ``corner`` heads the row labels' column.
    """
    columns = columns or list(dict.fromkeys(c for r in table.values() for c in r))

    def line(cells: list[str]) -> str:
        return "|" + "".join(f" {c} |" if c else " |" for c in cells)

    lines = [line([corner, *columns]), "|---|" + "---|" * len(columns)]
    for row, vals in table.items():
        cells = []
        for c in columns:
            v = vals.get(c)
            cell = v if isinstance(v, str) else fmt.format(v) if v is not None else "–"
            if reference and row in reference and reference[row].get(c) is not None:
                cell += f" ({fmt.format(reference[row][c])})"
            cells.append(cell)
        lines.append(line([row, *cells]))
    return "\n".join(lines)


def recall_head_tail(grid: dict, data_dir: str | os.PathLike, tasks: Iterable[str], split: str = "dev",
                     head_share: float = 0.5) -> dict:
    """Recall at each task's k of head, tail and unseen gold objects, per model of a grid.

    The groups come from the *uncapped* training pairs (:func:`helpers.data.report.frequency_groups`):
    the most frequent objects holding ``head_share`` of a task's pairs are the head, the other trained
    objects the tail, objects never trained on are unseen. Each (query, gold object) pair counts once
    (:func:`helpers.metrics.recall_by_group`). The grid must come from :func:`evaluate_grid` with
    ``keep_runs=True``. Returns ``{name: {task: {group: {"recall", "relevant", "queries"}}}}``.
    """
    from helpers.beir import load_beir
    from helpers.data.report import frequency_groups, positive_counts
    from helpers.metrics import recall_by_group

    out: dict = {}
    for task in tasks:
        groups = frequency_groups(positive_counts(data_dir, task), head_share)
        _, _, qrels = load_beir(Path(data_dir) / "beir" / task / split, "test")
        for name, per_task in grid.items():
            cell = per_task[task][split]
            if "run" not in cell:
                raise ValueError(f"grid cell {name}/{task}/{split} has no run: evaluate with keep_runs=True")
            evaluated = {q: qrels[q] for q in cell["per_query"]}   # a query with an empty ranking still counts
            out.setdefault(name, {})[task] = recall_by_group(evaluated, cell["run"], get_task(task).k, groups)
    return out


def training_exposure(log: dict) -> dict:
    """How much of each task's training pool a run saw, from its ``train_log.json``.

    Returns ``{"steps": optimizer steps, task: {"pool": pairs after the cap, "used": pairs trained,
    "passes": used / pool}}``. ``passes`` above 1 means the run repeated that pool (a cap smaller than the
    budget, see :mod:`helpers.training.pairs`), the usual suspect when a capped run over-fits.
    """
    data, resolved = log.get("data", {}), log.get("resolved", {})
    missing = [k for k, d in (("data.used", data.get("used")), ("data.downsampling", data.get("downsampling")))
               if not d]
    if missing:
        raise ValueError(f"train log has no {' / '.join(missing)}: it was written by an older trainer; retrain the run")
    out: dict = {"steps": resolved.get("max_steps")}
    for task, used in data["used"].items():
        pool = data["downsampling"][task]["after"]["pairs"]
        out[task] = {"pool": pool, "used": used, "passes": round(used / pool, 2) if pool else None}
    return out


def query_prompt_variants(model, names: Iterable[str]) -> dict[str, str]:
    """``{prompt name: text}`` for the model's prompts among ``names``, in order, skipping names it lacks
    and prompts whose text an earlier name already has (a model trained without instructions has the
    same ``query: `` under every name, which would only repeat one measurement)."""
    prompts = getattr(model, "prompts", None) or {}
    out: dict[str, str] = {}
    for name in names:
        if name in prompts and prompts[name] not in out.values():
            out[name] = prompts[name]
    return out


def strip_per_query(grid: dict) -> dict:
    """The grid without per-query values and runs, for compact results JSON."""
    return {n: {t: {s: {"recall": round(c["recall"], 4), "n": c["n"]} for s, c in ps.items()}
                for t, ps in pt.items()} for n, pt in grid.items()}


def _changed(obj) -> dict:
    """A dataclass's fields that differ from their defaults: a key added later at its default (an option
    that is off) leaves the runs trained before it valid."""
    from dataclasses import MISSING, fields

    out = {}
    for f in fields(obj):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        value = getattr(obj, f.name)
        if default is MISSING or value != default:
            out[f.name] = value
    return out


def run_key(config: str, profile: str, data_dir: str | os.PathLike) -> str:
    """What decides a run of ``config`` under ``profile``: ``<training files hash>-<settings hash>``.

    The settings are the resolved config (its ``extends`` chain included) and the profile, each as the
    fields that differ from their defaults, and ``helpers.training.TRAINER_REVISION``; :func:`trained_model`
    re-uses a run whose marker holds this key.
    """
    import hashlib
    import json

    from helpers.profiles import get_profile
    from helpers.training.config import TrainConfig
    from helpers.training import TRAINER_REVISION

    h = hashlib.sha256()
    for f in sorted((Path(data_dir) / "train").rglob("*")):
        if f.is_file():  # the training pairs themselves: byte-identical for the same seed and sources
            h.update(f.relative_to(data_dir).as_posix().encode())
            h.update(f.read_bytes())
    settings = json.dumps({"config": _changed(TrainConfig.from_yaml(REPO / "configs" / f"{config}.yaml")),
                           "profile": _changed(get_profile(profile)), "trainer": TRAINER_REVISION}, sort_keys=True)
    return f"{h.hexdigest()[:16]}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"


def trained_model(config: str, profile: str, data_dir: str | os.PathLike, seed: int = 0,
                  retrain: bool = False, show_progress: bool = True) -> tuple[Path, dict]:
    """The model a config trains under a profile: loaded if its run is complete, else trained now.

    ``config`` is a name in ``configs/`` (e.g. ``multitask``). Runs live in
    ``runs/<profile>/<config>-seed<seed>/`` (``model/`` + ``train_log.json``); a run is re-used when
    it is complete and ``data_fingerprint`` there matches the training files, the config it would be
    trained from now and ``helpers.training.TRAINER_REVISION``, so changed training data, an edited
    config or a trainer change that alters the batches retrains.
    Returns (model folder, log).
    """
    import json

    from helpers.io import atomic_write_text
    from helpers.training.trainer import train
    from helpers.workspace import runs_dir

    cfg_path = REPO / "configs" / f"{config}.yaml"
    key = run_key(config, profile, data_dir)
    out = runs_dir(profile) / f"{config}-seed{seed}"
    log_path, model_dir, marker = out / "train_log.json", out / "model", out / "data_fingerprint"
    if (not retrain and log_path.is_file() and (model_dir / "config.json").is_file() and marker.is_file()
            and marker.read_text().strip() == key):
        return model_dir, json.loads(log_path.read_text(encoding="utf-8"))
    # overwrite: runs/<profile>/<config>-seed<seed> is this function's own folder, and runs trained
    # before train() left marker files must still be replaced when their data or config changed.
    res = train(cfg_path, profile=profile, out_dir=out, data_dir=data_dir, seed=seed,
                show_progress=show_progress, evaluate=False, overwrite=True)
    atomic_write_text(marker, key + "\n")
    return Path(res.model_path), res.log


#: The downsampling ablation's reference (no cap) and the config already trained at the paper's cap: the
#: headline models, so each trains once and serves both roles (notebooks 02 and 03).
ABLATION_REFERENCE, PAPER_CAP = "multitask_catalog", 20
CAP_PREFIX = "multitask_catalog_cap"


def cap_config(cap: int | None) -> str:
    """The config of the downsampling ablation for cap ``cap`` (None: no cap): every pair left after the cap,
    with the headline recipe; ``None`` is the headline multi-task model, the paper's cap 20 the downsampled
    one (``multitask_downsampled``), any other cap ``multitask_catalog_cap<K>``. A cap without a config is
    named with the caps that have one."""
    if cap is None:
        return ABLATION_REFERENCE
    if cap == PAPER_CAP:
        return "multitask_downsampled"
    name = f"{CAP_PREFIX}{cap}"
    if not (REPO / "configs" / f"{name}.yaml").is_file():
        have = sorted([PAPER_CAP] + [int(p.stem.removeprefix(CAP_PREFIX))
                                     for p in (REPO / "configs").glob(f"{CAP_PREFIX}*.yaml")])
        raise ValueError(f"no config for cap {cap}: configs/{name}.yaml does not exist; caps with a config: "
                         f"{', '.join(map(str, have))} (add a file that extends {ABLATION_REFERENCE} with "
                         f"cap_per_positive: {cap})")
    return name


def merged_dir(config: str, profile: str, seed: int = 0) -> Path:
    """Where the merge of ``config``'s trained model with its base is kept: beside the trained runs
    (``runs/<profile>/<config>-merged-seed<seed>/``), outside the repository's tracked files."""
    from helpers.workspace import runs_dir

    return runs_dir(profile) / f"{config}-merged-seed{seed}"


def merge_on_dev(model: str | os.PathLike, base: str, data_dir: str | os.PathLike, tasks: Iterable[str],
                 out: str | os.PathLike, weights: Iterable[float] | None = None, max_queries: int | None = None,
                 seed: int = 0, max_seq_length: dict[str, int] | None = None, precision: str = "fp32"):
    """Merge ``model`` with ``base`` at the weight chosen on dev, and save that one merge in ``out``.

    The sweep (:func:`helpers.merge.merge_sweep`, ``weights`` default :data:`helpers.merge.DEFAULT_WEIGHTS`)
    runs on the dev folders of the trained ``tasks`` and of workflow; :func:`helpers.merge.choose_weight`
    picks w; only the chosen merge is saved (with the sweep in its card). ``out`` is rewritten on each
    run when the toolkit wrote it. The sweep goes through the study's embedding cache (keyed by the
    weights): its ends, w = 0 and w = 1, are the base's and the fine-tuned model's weights, whose
    documents the notebooks encoded already, and the chosen merge's dev embeddings serve its later
    evaluations. Returns ``(folder, sweep, choice)``.
    """
    from helpers.merge import DEFAULT_WEIGHTS, choose_weight, merge_sweep, merge_with_base, save_merged
    from helpers.models import load_encoder
    from helpers.workspace import embedding_cache_dir

    finetuned, base_model = load_encoder(str(model)), load_encoder(base)   # once for the sweep and the merge
    sweep = merge_sweep(finetuned, base_model, list(weights) if weights is not None else DEFAULT_WEIGHTS,
                        data_dir, list(tasks), "dev", max_queries=max_queries, seed=seed,
                        max_seq_length=max_seq_length, precision=precision, cache_dir=embedding_cache_dir())
    choice = choose_weight(sweep)
    folder = save_merged(merge_with_base(finetuned, base_model, choice.weight), out, sweep=sweep, choice=choice)
    return folder, sweep, choice


def tune_hybrid_at(factory: RetrieverFactory, parts: Iterable[str], data_dir: str | os.PathLike, task: str,
                   max_seq_length: int | None = None, max_queries: int | None = None, seed: int = 0):
    """:func:`helpers.fusion.tune_hybrid` of the convex weight on ``task``'s dev folder, each part built by
    ``factory`` at ``max_seq_length`` (so the tuned ``.spec``, evaluated by :func:`evaluate_grid` with the
    same length for ``task``, is the hybrid that was tuned)."""
    from helpers.fusion import tune_hybrid

    built = [factory(p, task, max_seq_length=max_seq_length) for p in parts]
    return tune_hybrid(built, Path(data_dir) / "beir" / task / "dev", task, max_queries=max_queries, seed=seed)


def with_labels(obj, labels: dict[str, str]):
    """``obj`` (JSON-like) with each key of ``labels`` replaced by its label inside every string, dict keys
    included: keeps this machine's paths (model folders, the dataset) out of committed results."""
    order = sorted(labels, key=len, reverse=True)   # a folder before the folder it lies in

    def fix(x):
        if isinstance(x, str):
            for k in order:
                x = x.replace(k, labels[k])
            return x
        if isinstance(x, dict):
            return {fix(k): fix(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [fix(v) for v in x]
        return x

    return fix(obj)


def baselines() -> dict[str, str]:
    """The retrievers every comparison starts from: BM25 and the two base encoders (name -> spec)."""
    return {"bm25": "bm25", "minilm-l6": "minilm-l6", "me5-small": "me5-small"}
