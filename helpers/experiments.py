"""What the notebooks run: evaluation grids (retrievers x tasks x splits) and the paper's numbers.

A *retriever spec* is what :func:`helpers.evaluate.make_retriever` takes (``bm25``, an encoder
name, a model folder, ``hybrid:A+B``) or an already loaded ``SentenceTransformer``. Dense models are
loaded once per grid and re-used across tasks and splits; the task picks the model's
``<task>_query`` / ``<task>_document`` prompts when it has them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import yaml

from helpers.beir import load_beir
from helpers.evaluate import sample_queries
from helpers.metrics import evaluate_run, weighted_mean
from helpers.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, Retriever, prompt_names_for
from helpers.workspace import REPO

# The paper's metric per task: recall at this k (Step@15, Table@5, Field@5, workflow recall@5).
TASK_K = {"step": 15, "table": 5, "field": 5, "workflow": 5}
OOD_SPLITS = [f"ood{i:02d}" for i in range(1, 11)]
LANGS = ["de", "es", "fr", "ja", "he"]


def paper_tables() -> dict:
    """The paper's Tables 3-6 (``results/paper.yaml``), for side-by-side comparisons."""
    return yaml.safe_load((REPO / "results" / "paper.yaml").read_text(encoding="utf-8"))


def embedding_cache() -> Path:
    return Path(os.environ.get("CASE_STUDY_CACHE", Path.home() / ".cache" / "multitask-rag")) / "embeddings"


class RetrieverFactory:
    """Builds the retriever for (spec, task), loading each dense model only once."""

    def __init__(self, show_progress: bool = False, batch_size: int = 64):
        self._models: dict[str, object] = {}
        self._max_len: dict[int, int] = {}
        self.show_progress, self.batch_size = show_progress, batch_size

    def model(self, spec):
        if not isinstance(spec, (str, os.PathLike)):
            return spec
        key = str(spec)
        if key not in self._models:
            from helpers.models import load_encoder

            self._models[key] = load_encoder(key)
        return self._models[key]

    def __call__(self, spec, task: str, doc_instructions: bool = True, query_instructions: bool = True,
                 name: str | None = None, max_seq_length: int | None = None) -> Retriever:
        """``max_seq_length`` overrides the model's own for this retriever (e.g. long YAML workflows)."""
        if isinstance(spec, str) and spec == "bm25":
            return BM25Retriever()
        if isinstance(spec, str) and spec.startswith("hybrid:"):
            parts = spec[len("hybrid:"):].split("+")
            return HybridRetriever([self(p, task, doc_instructions, query_instructions, max_seq_length=max_seq_length)
                                    for p in parts])
        model = self.model(spec)
        # Models are shared between retrievers: remember the saved length and set it per call.
        own = self._max_len.setdefault(id(model), model.max_seq_length)
        model.max_seq_length = max_seq_length or own
        q_name, d_name = prompt_names_for(model, task)
        prompts = getattr(model, "prompts", {}) or {}
        # "Instructions off" falls back to the base model's own prefixes (e.g. "query: ").
        if not query_instructions and q_name == f"{task}_query":
            q_name = "query" if "query" in prompts else None
        if not doc_instructions and d_name == f"{task}_document":
            d_name = "document" if "document" in prompts else None
        label = name or (str(spec) if isinstance(spec, (str, os.PathLike)) else None)
        return DenseRetriever(model, query_prompt_name=q_name, doc_prompt_name=d_name, batch_size=self.batch_size,
                              cache_dir=embedding_cache(), show_progress=self.show_progress, name=label)


def evaluate_grid(retrievers: dict[str, object], data_dir: str | os.PathLike, tasks: Iterable[str],
                  splits: Iterable[str], max_queries: int | None = None, seed: int = 0,
                  factory: RetrieverFactory | None = None, progress: bool = True,
                  keep_runs: bool = False, max_seq_length: dict[str, int] | None = None) -> dict:
    """Evaluate every retriever on every task and split at the paper's k.

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
        k = TASK_K[task]
        msl = (max_seq_length or {}).get(task)
        ret = factory(spec, task, name=name, max_seq_length=msl) if not isinstance(spec, Retriever) else spec
        for split in splits:
            folder = Path(data_dir) / "beir" / task / split
            corpus, queries, qrels = load_beir(folder)
            queries = sample_queries(queries, max_queries, seed)
            ret.index(corpus)
            run = ret.search(queries, max(k, 15))
            means, per_q = evaluate_run({q: qrels[q] for q in queries}, run, ks=(k,), metrics=("recall",))
            cell = {"recall": means[f"recall@{k}"], "n": len(queries),
                    "per_query": {q: v[f"recall@{k}"] for q, v in per_q.items()}}
            if keep_runs:
                cell["run"] = run
            out.setdefault(name, {}).setdefault(task, {})[split] = cell
    return out


def ood_average(grid: dict, name: str, task: str, splits: Iterable[str] = OOD_SPLITS) -> float:
    """The paper's Table 4 number: recall averaged over OOD splits weighted by their query counts."""
    cells = {s: grid[name][task][s] for s in splits if s in grid[name][task]}
    return weighted_mean({s: {"r": c["recall"]} for s, c in cells.items()}, {s: c["n"] for s, c in cells.items()})["r"]


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


def to_markdown(table: dict[str, dict[str, float]], columns: list[str] | None = None,
                reference: dict[str, dict[str, float]] | None = None, fmt: str = "{:.2f}") -> str:
    """A markdown table of ``{row: {column: value}}``; ``reference`` adds "ours (paper)" cells."""
    columns = columns or list(dict.fromkeys(c for r in table.values() for c in r))
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row, vals in table.items():
        cells = []
        for c in columns:
            v = vals.get(c)
            cell = fmt.format(v) if v is not None else "–"
            if reference and row in reference and reference[row].get(c) is not None:
                cell += f" ({fmt.format(reference[row][c])})"
            cells.append(cell)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def strip_per_query(grid: dict) -> dict:
    """The grid without per-query values and runs, for compact results JSON."""
    return {n: {t: {s: {"recall": round(c["recall"], 4), "n": c["n"]} for s, c in ps.items()}
                for t, ps in pt.items()} for n, pt in grid.items()}


def trained_model(config: str, profile: str, data_dir: str | os.PathLike, seed: int = 0,
                  retrain: bool = False, show_progress: bool = True) -> tuple[Path, dict]:
    """The model a config trains under a profile: loaded if its run is complete, else trained now.

    ``config`` is a name in ``configs/`` (e.g. ``multitask``). Runs live in
    ``runs/<profile>/<config>-seed<seed>/`` (``model/`` + ``train_log.json``); a run is re-used when
    it is complete and ``data_fingerprint`` there matches the training files and the config it
    would be trained from now, so changed training data or an edited config retrains.
    Returns (model folder, log).
    """
    import hashlib
    import json

    from helpers.io import atomic_write_text
    from helpers.train import train
    from helpers.workspace import runs_dir

    cfg_path = REPO / "configs" / f"{config}.yaml"
    h = hashlib.sha256()
    for f in sorted((Path(data_dir) / "train").rglob("*")):
        if f.is_file():  # the training pairs themselves: byte-identical for the same seed and sources
            h.update(f.relative_to(data_dir).as_posix().encode())
            h.update(f.read_bytes())
    # the resolved config (its `extends` chain included) and the profile's budget both decide the run
    from helpers.profiles import get_profile
    from helpers.train import TrainConfig

    settings = json.dumps({"config": TrainConfig.from_yaml(cfg_path).as_dict(),
                           "profile": get_profile(profile).as_dict()}, sort_keys=True)
    key = f"{h.hexdigest()[:16]}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"
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


def cap_config(cap: int | None) -> str:
    """The config of the downsampling ablation for cap ``cap`` (None: no cap), all at the ablation
    budget; a cap without a config is named with the configs that exist."""
    name = "multitask_ablation" if cap is None else f"multitask_cap{cap}"
    if not (REPO / "configs" / f"{name}.yaml").is_file():
        have = sorted(p.stem.removeprefix("multitask_cap") for p in (REPO / "configs").glob("multitask_cap*.yaml"))
        raise ValueError(f"no config for cap {cap}: configs/{name}.yaml does not exist; caps with a config: "
                         f"{', '.join(have)} (add a file that extends multitask_ablation with cap_per_positive: {cap})")
    return name
