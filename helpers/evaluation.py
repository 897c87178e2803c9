"""One path from a retriever and a BEIR folder to metrics, and the one retriever factory.

* :class:`RetrieverFactory` / :func:`make_retriever`: a spec (``bm25``, an encoder name, a model
  folder, a hub id, ``hybrid:A+B``, ``hybrid:A+B@w``) or a loaded model becomes a retriever; the task
  picks the model's ``<task>_query`` / ``<task>_document`` prompts and the encoding length is set on the retriever.
* :func:`evaluate_folder`: **the** evaluation, ``(retriever, BEIR folder, task[, max_queries, seed])
  -> metrics``. Which queries (:func:`sample_queries`), how deep to search and at which k (the task
  registry, :mod:`helpers.tasks`) are decided here and nowhere else. The CLI
  (:mod:`helpers.evaluate`), the notebooks' grids (:mod:`helpers.experiments`), the benchmark
  (:mod:`helpers.bench`) and training (:func:`evaluate_model`, :func:`dev_evaluator`) all call it.
* :func:`evaluate_path`: one folder, or every BEIR folder under a directory with a weighted mean
  per group of splits (:func:`split_group`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import random
import re
from pathlib import Path
from typing import Iterable, Sequence

from helpers.beir import find_beir_folders, load_beir
from helpers.encoders import prompt_names_for
from helpers.io import DataError
from helpers.metrics import DEFAULT_KS, METRICS, evaluate_run, weighted_mean
from helpers.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, Retriever
from helpers.tasks import TASKS, get_task

logger = logging.getLogger(__name__)

SPEC_HELP = "bm25, a registered encoder name (minilm-l6, me5-small), a path to a SentenceTransformer folder, " \
            "a Hugging Face Hub id (owner/name; needs hub access), hybrid:A+B (equal-weight RRF) or " \
            "hybrid:A+B@w (convex fusion of min-max normalised scores, w on B)"

_STUDY_CACHE = object()  # RetrieverFactory's default: the study's embedding cache


# ----------------------------------------------------------------------------------------------------------
# retrievers
# ----------------------------------------------------------------------------------------------------------

_PART_WEIGHT = re.compile(r"^(.*)@([0-9]*\.?[0-9]+)$")


def spec_parts(spec: str) -> list[str]:
    """The parts of a ``hybrid:A+B`` spec, without their ``@weight`` (``[spec]`` for any other spec)."""
    spec = (spec or "").strip()
    if not spec.startswith("hybrid:"):
        return [spec]
    return [(m.group(1) if (m := _PART_WEIGHT.match(p.strip())) else p) for p in spec[len("hybrid:"):].split("+")]


def hybrid_weights(spec: str) -> list[float] | None:
    """The convex-fusion weights of a ``hybrid:`` spec, or None (no ``@weight``: equal-weight RRF).

    A part may end in ``@w`` (``hybrid:bm25+me5-small@0.3``: 0.3 on me5-small); parts without one share
    what the others leave equally (bm25 0.7 here). Weights lie in [0, 1] and sum to 1 (:mod:`helpers.fusion`).
    """
    spec = (spec or "").strip()
    if not spec.startswith("hybrid:"):
        return None
    given = [float(m.group(2)) if (m := _PART_WEIGHT.match(p.strip())) else None
             for p in spec[len("hybrid:"):].split("+")]
    if all(w is None for w in given):
        return None
    if any(w is not None and not 0.0 <= w <= 1.0 for w in given) or sum(w or 0.0 for w in given) > 1.0 + 1e-6:
        raise ValueError(f"bad hybrid spec {spec!r}: part weights lie in [0, 1] and sum to at most 1")
    free = given.count(None)
    rest = 1.0 - sum(w or 0.0 for w in given)
    if not free and abs(rest) > 1e-6:
        raise ValueError(f"bad hybrid spec {spec!r}: the weights of a convex hybrid sum to 1")
    return [w if w is not None else rest / free for w in given]


def check_known_task(task: str | None) -> None:
    """An unknown task name is an error listing the valid ones."""
    if task and task not in TASKS:
        raise ValueError(f"--task: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


def _check_spec(spec: str) -> None:
    from helpers.models import _HUB_ID, REGISTRY

    # Hub ids (owner/name) go to load_encoder too: users with hub access can evaluate any model.
    if not Path(spec).exists() and spec not in REGISTRY and not _HUB_ID.match(spec):
        raise ValueError(f"unknown retriever {spec!r}: expected {SPEC_HELP} "
                         f"(registered encoders: {', '.join(sorted(REGISTRY))})")


def check_specs(specs: Iterable[str], flag: str = "--retriever") -> None:
    """Every part of every spec names a retriever that exists (nothing is loaded), so a typo fails
    before the first retriever runs."""
    for spec in specs:
        for part in spec_parts(spec):
            part = part.strip()
            try:
                if not part:
                    raise ValueError(f"empty retriever spec in {spec!r}; expected {SPEC_HELP}")
                if part != "bm25":
                    _check_spec(part)
            except ValueError as e:
                raise ValueError(f"{flag}: {e}") from None


def _check_task(model, label: str, task: str | None) -> None:
    """A task a fine-tuned model has no prompts for is an error, not a silent fall-back to generic ones."""
    if not task:
        return
    prompts = getattr(model, "prompts", None) or {}
    trained = sorted(k[: -len("_query")] for k in prompts if k.endswith("_query"))
    if trained and task not in trained:
        raise ValueError(f"--task {task!r}: {label} has no prompts for this task; it has prompts for: "
                         f"{', '.join(trained)}")
    if not trained:
        check_known_task(task)


class RetrieverFactory:
    """Builds the retriever for ``(spec, task)``, loading each dense model once.

    ``cache_dir`` is the embedding cache of the dense retrievers it builds (default: the study's,
    :func:`helpers.workspace.embedding_cache_dir`; ``None``: no cache). ``precision`` ("fp32", "bf16"
    or "int8") applies to dense retrievers (:mod:`helpers.precision`).
    """

    def __init__(self, show_progress: bool = False, batch_size: int = 64, cache_dir=_STUDY_CACHE,
                 precision: str = "fp32"):
        from helpers.workspace import embedding_cache_dir

        self._models: dict[str, object] = {}
        self.show_progress, self.batch_size, self.precision = show_progress, batch_size, precision
        self.cache_dir = embedding_cache_dir() if cache_dir is _STUDY_CACHE else cache_dir

    def model(self, spec):
        """The loaded encoder for a spec (a model object is returned as it is)."""
        if not isinstance(spec, (str, os.PathLike)):
            return spec
        key = str(spec)
        if key not in self._models:
            from helpers.models import load_encoder

            _check_spec(key)
            self._models[key] = load_encoder(key)
        return self._models[key]

    def __call__(self, spec, task: str | None = None, doc_instructions: bool = True, query_instructions: bool = True,
                 name: str | None = None, max_seq_length: int | None = None, query_prompt: str | None = None,
                 doc_prompt: str | None = None) -> Retriever:
        """A retriever for ``task``; ``max_seq_length`` overrides the model's length for this retriever only.

        Dense retrievers use the model's ``<task>_query`` / ``<task>_document`` prompts when it has them
        (:func:`helpers.encoders.prompt_names_for`); explicit prompt strings win. With an instruction
        side switched off, that side falls back to the base model's own prefix (e.g. ``"query: "``).
        In ``hybrid:A+B`` the same options go to each dense part.
        """
        if isinstance(spec, str):
            spec = spec.strip()
            if not spec:
                raise ValueError(f"empty retriever spec; expected {SPEC_HELP}")
            if spec == "bm25":
                return BM25Retriever()
            if spec.startswith("hybrid:"):
                parts = spec_parts(spec)
                if len(parts) < 2 or any(not p.strip() for p in parts):
                    raise ValueError(f"bad hybrid spec {spec!r}: expected hybrid:A+B, e.g. hybrid:bm25+minilm-l6")
                if any(p.strip().startswith("hybrid:") for p in parts):
                    raise ValueError(f"bad hybrid spec {spec!r}: hybrids do not nest")
                weights = hybrid_weights(spec)
                return HybridRetriever([self(p, task, doc_instructions, query_instructions,
                                             max_seq_length=max_seq_length, query_prompt=query_prompt,
                                             doc_prompt=doc_prompt) for p in parts],
                                       weights=weights, fusion="rrf" if weights is None else "convex")
        model = self.model(spec)
        label = name or (str(spec) if isinstance(spec, (str, os.PathLike)) else None)
        _check_task(model, label or "the model", task)
        q_name, d_name = prompt_names_for(model, task)
        if task and q_name != f"{task}_query":
            logger.info("%s has no prompts for task %r; using %s/%s", label, task, q_name, d_name)
        prompts = getattr(model, "prompts", {}) or {}
        if not query_instructions and q_name == f"{task}_query":
            q_name = "query" if "query" in prompts else None
        if not doc_instructions and d_name == f"{task}_document":
            d_name = "document" if "document" in prompts else None
        return DenseRetriever(model, query_prompt_name=q_name, doc_prompt_name=d_name, query_prompt=query_prompt,
                              doc_prompt=doc_prompt, batch_size=self.batch_size, cache_dir=self.cache_dir,
                              show_progress=self.show_progress, name=label, precision=self.precision,
                              max_seq_length=max_seq_length)


def make_retriever(spec: str, task: str | None = None, cache_dir: str | os.PathLike | None = None,
                   query_prompt: str | None = None, doc_prompt: str | None = None, batch_size: int = 64,
                   show_progress: bool = True, precision: str = "fp32") -> Retriever:
    """One retriever from a spec string (see :data:`SPEC_HELP`): :class:`RetrieverFactory` used once.

    ``cache_dir=None`` means no embedding cache.
    """
    factory = RetrieverFactory(show_progress=show_progress, batch_size=batch_size, cache_dir=cache_dir,
                               precision=precision)
    return factory(spec, task, query_prompt=query_prompt, doc_prompt=doc_prompt)


# ----------------------------------------------------------------------------------------------------------
# the evaluation
# ----------------------------------------------------------------------------------------------------------

def sample_queries(queries: dict, max_queries: int | None, seed: int = 0) -> dict:
    """At most ``max_queries`` queries, a seeded sample independent of dict order.

    This is the rule every committed result was computed with; it is the only one.
    """
    if max_queries is None or len(queries) <= max_queries:
        return dict(queries)
    chosen = random.Random(seed).sample(sorted(queries), max_queries)
    return {q: queries[q] for q in sorted(chosen)}


def task_ks(task: str | None, ks: Iterable[int] | None = None) -> list[int]:
    """The cutoffs evaluated: ``ks`` if given, else :data:`DEFAULT_KS` plus the task's own k."""
    if ks is not None:
        return sorted({int(k) for k in ks})
    return sorted(set(DEFAULT_KS) | ({get_task(task).k} if task else set()))


def evaluate_retriever(retriever: Retriever, corpus: dict, queries: dict, qrels: dict,
                       ks: Iterable[int] = DEFAULT_KS, metrics: Sequence[str] = METRICS,
                       include_missing: bool = True, keep_run: bool = False) -> dict:
    """Index ``corpus``, search ``queries`` to ``max(ks)`` and score against ``qrels``.

    Returns ``{"metrics": {"recall@5": mean, ...}, "per_query": {qid: {...}}, "n_queries", "n_docs",
    "retriever": identity, "timings": {...}}`` (and ``"run"`` with ``keep_run``). Queries absent from
    ``queries`` are not searched; qrels are restricted to the searched queries.
    """
    ks = sorted({int(k) for k in ks})
    retriever.index(corpus)
    run = retriever.search(queries, max(ks))
    qrels = {q: rels for q, rels in qrels.items() if q in queries}
    means, per_query = evaluate_run(qrels, run, ks, metrics, include_missing)
    result = {"metrics": means, "per_query": per_query, "n_queries": len(per_query), "n_docs": len(corpus),
              "ks": ks, "retriever": retriever.identity(), "timings": dict(retriever.timings)}
    if keep_run:
        result["run"] = run
    return result


def load_sampled(folder: str | os.PathLike, max_queries: int | None = None, seed: int = 0, split: str = "test"):
    """``(corpus, queries, qrels, data)`` of a BEIR folder with the evaluated sample of its queries."""
    data = load_beir(folder, split)
    corpus, queries, qrels = data
    sampled = sample_queries(queries, max_queries, seed)
    return corpus, sampled, {q: qrels[q] for q in sampled if q in qrels}, data


def evaluate_folder(retriever: Retriever, folder: str | os.PathLike, task: str | None = None, *,
                    split: str = "test", ks: Iterable[int] | None = None, metrics: Sequence[str] = METRICS,
                    max_queries: int | None = None, seed: int = 0, keep_run: bool = False) -> dict:
    """Evaluate ``retriever`` on one BEIR folder: the project's one evaluation function.

    Queries: all, or a seeded sample of ``max_queries`` (:func:`sample_queries`). Cutoffs: ``ks``, else
    1, 5, 10, 15 and the task's k (:func:`task_ks`). With a ``task``, the result names its headline
    metric (``"headline": "recall@15"``, ``"label": "Step@15"``, ``"k"``). Adds ``data``, ``split`` and
    the loader's ``skipped`` report to :func:`evaluate_retriever`'s result.
    """
    corpus, sampled, qrels, data = load_sampled(folder, max_queries, seed, split)
    result = evaluate_retriever(retriever, corpus, sampled, qrels, task_ks(task, ks), metrics, keep_run=keep_run)
    result.update({"data": str(folder), "split": split, "load_report": data.report.as_dict(),
                   "skipped": {"no_qrels": len(data.report.skipped_no_qrels),
                               "no_relevant": len(data.report.skipped_no_relevant),
                               "not_sampled": len(data[1]) - len(sampled)}})
    if task:
        t = get_task(task)
        result.update(task=task, k=t.k, headline=t.metric_key, label=t.label)
    return result


def split_group(name: str) -> str:
    """The group a BEIR folder's mean is taken in, from its path relative to ``--data``.

    ``train``, ``dev``, ``dev-xx`` (translations) and ``oodNN`` folders are kinds that must never
    share a mean; each kind is grouped per parent folder (``field/ood``). Other names share one
    group, ``other``: a user's directory of comparable folders.
    """
    parent, _, last = name.rpartition("/")
    if last == "train":
        kind = "train"
    elif last in ("dev", "test"):
        kind = "dev"
    elif re.fullmatch(r"dev-[A-Za-z_]{2,8}", last):
        kind = "translations"
    elif re.fullmatch(r"ood\d+", last):
        kind = "ood"
    else:
        return "other"
    return f"{parent}/{kind}" if parent else kind


def select_folders(data: Path, folders: list[Path], splits: Sequence[str] | None) -> list[Path]:
    """Folders whose name (relative to ``data``) or last component matches one of the ``splits`` globs."""
    if not splits:
        return folders
    chosen = [f for f in folders
              if any(fnmatch.fnmatchcase(f.name, g) or fnmatch.fnmatchcase(f.relative_to(data).as_posix(), g)
                     for g in splits)]
    if not chosen:
        names = ", ".join(f.relative_to(data).as_posix() for f in folders[:12])
        raise DataError(f"no BEIR folder matches --splits {' '.join(splits)}; found: {names}"
                        f"{' ...' if len(folders) > 12 else ''}", file=data)
    return chosen


def evaluate_path(retriever: Retriever, data: str | os.PathLike, split: str = "test",
                  ks: Iterable[int] = DEFAULT_KS, max_queries: int | None = None, seed: int = 0,
                  splits: Sequence[str] | None = None, progress: bool = False, task: str | None = None) -> dict:
    """Evaluate a BEIR folder, or every BEIR folder under a directory with a weighted mean per group.

    For a directory: ``{"folders": {relative_name: result}, "groups": {group: {"folders", "weights",
    "weighted_mean", "n_queries"}}}`` with weights = number of evaluated queries per folder and groups
    as :func:`split_group` makes them; ``splits`` (globs) restricts the folders. With a single
    group, its ``weighted_mean`` and ``weights`` are repeated at the top level. ``progress`` shows a
    bar that names the folder being evaluated.
    """
    from tqdm.auto import tqdm

    data = Path(data)
    options = dict(split=split, ks=ks, max_queries=max_queries, seed=seed)
    if (data / "corpus.jsonl").is_file():
        return evaluate_folder(retriever, data, task, **options)
    folders = find_beir_folders(data)
    if not folders:
        raise DataError("no BEIR folder (a folder holding corpus.jsonl) found", file=data)
    folders = select_folders(data, folders, splits)
    results = {}
    bar = tqdm(folders, desc="evaluate", unit="folder", disable=not progress)
    for folder in bar:
        name = folder.relative_to(data).as_posix()
        bar.set_description(f"evaluate {name}")
        logger.info("evaluating %s", name)
        results[name] = evaluate_folder(retriever, folder, task, **options)
    groups: dict[str, dict] = {}
    for name, r in results.items():
        g = groups.setdefault(split_group(name), {"folders": [], "weights": {}})
        g["folders"].append(name)
        g["weights"][name] = r["n_queries"]
    for g in groups.values():
        g["weighted_mean"] = weighted_mean({n: results[n]["metrics"] for n in g["folders"]}, g["weights"])
        g["n_queries"] = sum(g["weights"].values())
    out = {"data": str(data), "split": split, "splits": list(splits) if splits else None,
           "ks": sorted({int(k) for k in ks}), "retriever": retriever.identity(), "folders": results,
           "groups": groups, "n_queries": sum(r["n_queries"] for r in results.values())}
    if len(groups) == 1:
        only = next(iter(groups.values()))
        out.update(weights=only["weights"], weighted_mean=only["weighted_mean"])
    return out


# ----------------------------------------------------------------------------------------------------------
# a model under training
# ----------------------------------------------------------------------------------------------------------

def find_eval_folder(root: str | os.PathLike, task: str, split: str) -> Path | None:
    """``root/<task>/<split>/`` (the builder's layout) or ``root/<task>/`` itself if it is a BEIR folder."""
    root = Path(root)
    for cand in (root / task / split, root / "beir" / task / split):
        if (cand / "corpus.jsonl").is_file():
            return cand
    if split in ("dev", "test", "-") and (root / task / "corpus.jsonl").is_file():
        return root / task
    return None


def task_splits(root: str | os.PathLike, task: str) -> list[str]:
    """The splits a task has under ``root`` (``["-"]`` when ``root/<task>`` is itself a BEIR folder)."""
    root = Path(root)
    for base in (root / task, root / "beir" / task):
        if base.is_dir():
            if (base / "corpus.jsonl").is_file():
                return ["-"]
            return sorted(p.name for p in base.iterdir() if (p / "corpus.jsonl").is_file())
    return []


def evaluate_model(model, root: str | os.PathLike, tasks: list[str], splits: list[str],
                   max_queries: int | None = None, seed: int = 0, max_seq_length: int | None = None,
                   precision: str = "fp32", cache_dir: str | os.PathLike | None = None) -> dict:
    """``{split: {task: {"recall@k": ..., "n_queries": ..., "n_docs": ..., "headline", "label"}}}``.

    Each folder goes through :func:`evaluate_folder` with the model's ``"<task>_query"`` /
    ``"<task>_document"`` prompts, so what is reported is what the evaluation notebooks compute.
    ``splits=["all"]``: every split found. ``max_seq_length``: the encoding length (default: the
    model's current one); ``precision``: the encoding precision (:class:`RetrieverFactory`).
    ``cache_dir``: an embedding cache (default none: during training the weights change at every
    call; the cache is keyed by the weights, so it is safe, but only pays where the same weights
    and texts come back, as a merge sweep's ends do: the base's and the fine-tuned model's).
    """
    factory = RetrieverFactory(cache_dir=cache_dir, precision=precision)
    out: dict[str, dict] = {}
    for task in tasks:
        for split in task_splits(root, task) if splits == ["all"] else splits:
            folder = find_eval_folder(root, task, split)
            if folder is None:
                continue
            r = evaluate_folder(factory(model, task, max_seq_length=max_seq_length), folder, task,
                                max_queries=max_queries, seed=seed)
            means = {k: round(float(v), 4) for k, v in r["metrics"].items()}
            means.update(n_queries=r["n_queries"], n_docs=r["n_docs"], headline=r["headline"], label=r["label"],
                         folder=str(folder))
            out.setdefault(split, {})[task] = means
    return out


def dev_evaluator(root: str | os.PathLike, tasks: list[str], split: str, max_queries: int | None = None,
                  seed: int = 0, precision: str = "fp32"):
    """A sentence-transformers evaluator for dev evaluation during training, or None without dev folders.

    It runs :func:`evaluate_folder` per task (metric names ``<split>_<task>_recall@15``, ...), so the
    dev curve and the final report are the same computation.
    """
    from sentence_transformers.evaluation import SentenceEvaluator

    folders = {t: f for t in tasks if (f := find_eval_folder(root, t, split)) is not None}
    if not folders:
        return None

    class TaskEvaluator(SentenceEvaluator):
        def __init__(self):
            super().__init__()
            first = next(iter(folders))
            self.primary_metric = f"{split}_{first}_{get_task(first).metric_key}"

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict:
            factory = RetrieverFactory(cache_dir=None, precision=precision)
            metrics = {}
            for task, folder in folders.items():
                r = evaluate_folder(factory(model, task), folder, task, max_queries=max_queries, seed=seed)
                metrics.update({f"{split}_{task}_{name}": v for name, v in r["metrics"].items()})
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    return TaskEvaluator()


def report_markdown(report: dict) -> str:
    """``{model: {split: {task: metrics}}}`` (e.g. ``eval_report.json``) as a markdown table."""
    lines = ["| model | split | task | metric | value | queries | docs |", "|---|---|---|---|---|---|---|"]
    for model_name, by_split in report.items():
        for split, by_task in by_split.items():
            for task, m in by_task.items():
                lines.append(f"| {model_name} | {split} | {task} | {m['label']} | {m[m['headline']]:.4f} "
                             f"| {m['n_queries']} | {m['n_docs']} |")
    return "\n".join(lines) + "\n"


def format_table(means: dict, ks: Iterable[int], metrics: Sequence[str] = METRICS, title: str = "") -> str:
    """Metrics as a text table: one row per metric, one column per cutoff."""
    ks = sorted({int(k) for k in ks})
    lines = [title] if title else []
    lines.append(f"{'metric':<8}" + "".join(f"{'@' + str(k):>9}" for k in ks))
    for m in metrics:
        cells = "".join(f"{means[f'{m}@{k}']:>9.4f}" if f"{m}@{k}" in means else f"{'-':>9}" for k in ks)
        lines.append(f"{m:<8}" + cells)
    return "\n".join(lines)
