"""Our four retrieval tasks as MTEB tasks, read from a built dataset folder, and MTEB models for our retrievers.

Anyone who compares embedding models with MTEB (``mteb`` 2.x) can score a model on our step, table,
field and workflow tasks, and MTEB's retrieval evaluator (its own search, pytrec_eval call and prompt
handling) checks our numbers independently (``tests/test_mteb_tasks.py``).

Tasks (:data:`MTEB_NAMES`): ``EnterpriseStepRetrieval``, ``EnterpriseTableRetrieval``,
``EnterpriseFieldRetrieval``, ``EnterpriseWorkflowRetrieval``, subclasses of MTEB's
``AbsTaskRetrieval``. Their ``load_data`` reads the BEIR folders ``DIR/beir/<task>/<split>/`` that
``python -m helpers.data build`` writes, through :func:`helpers.beir.load_beir` (no hub):

* MTEB **subsets** are our split folders: ``dev``, ``ood01`` ... ``ood10`` and ``dev-de``, ``dev-es``,
  ``dev-fr``, ``dev-ja``, ``dev-he`` (the folders present; ``train`` is never a subset). The MTEB
  **split** is ``test``, the qrels file every folder holds (``qrels/test.tsv``). MTEB runs every
  split of every subset, and only the dev folder has translations and only English has OOD domains,
  so our splits cannot be MTEB splits of language subsets.
* Main score: ``recall_at_15`` for steps, ``recall_at_5`` for tables, fields and workflows (the
  task registry's k, :mod:`helpers.tasks`); MTEB's usual cutoffs are computed too.
* Documents reach MTEB as one text, ``"title: text"`` (:func:`helpers.retrieval.doc_text`, the
  string our retrievers see and our models were trained on); MTEB's own join would be ``"title text"``.

Prompts: MTEB picks a SentenceTransformer's prompt by the key ``"<MTEB task name>-query"`` /
``"-document"`` in the wrapper's ``model_prompts``. :func:`mteb_model` fills those keys with the prompt
strings our evaluation resolves for each task (a fine-tuned model's ``"<task>_query"`` /
``"<task>_document"``, else the base ``query`` / ``document`` prompt), so a model is scored with the
instructions it was trained with. ``TaskMetadata.prompt`` carries our query instruction for MTEB's
instruction models.

BM25 is our :class:`~helpers.retrieval.BM25Retriever` behind MTEB's search protocol. MTEB's own
``bm25s`` model is another retriever (its tokenizer, stemmer and k1/b), so agreement with it would
prove nothing; with ours, MTEB's evaluator is checked on the very same runs.

Conventions, compared (both sides were run on the same runs; ``tests/test_mteb_tasks.py``):

* Queries without judgments, or with only grade-0 judgments, are dropped by :func:`load_beir` (and
  counted) before MTEB sees them; MTEB itself drops only queries with no judgment row and would
  score all-zero ones 0. Recall over no relevant document is 0/0, so dropping them is right.
* A query with an empty ranking (BM25 when no term matches) scores 0 on both sides: pytrec_eval
  scores a query present in the run with no documents 0. A query *absent* from the run is left out
  of MTEB's mean (pytrec_eval skips it) but scores 0 in ours; our search models return every query,
  so this never happens here, and ours is the right rule: a system that returns nothing failed.
* Ties: both rank by score, then document id descending (trec_eval's order, MTEB's MRR follows it).
* MTEB rounds its scores to 5 decimals.
* MTEB strips a document's text (``_corpus_to_dict``); we encode it as stored. Only workflow documents
  differ: their YAML ends with a newline, which MiniLM's WordPiece ignores but me5-small's
  SentencePiece encodes as one more token (``"▁"``; cosine 0.9975 to the stripped text), so me5 models
  score slightly differently on the workflow task (checked by hand on a smoke build: one of 12 dev-de
  queries moved). MTEB's side is the better one: the newline is a serialisation artifact, not
  content. Stripping on our side would change every committed workflow result, so it is left as a
  known difference; steps, tables and fields have no surrounding whitespace and agree.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from helpers.beir import load_beir
from helpers.io import DataError
from helpers.metrics import DEFAULT_KS
from helpers.retrieval import BM25Retriever, doc_text
from helpers.splits import LANGUAGES, OOD_SPLITS
from helpers.tasks import TASKS, validate_tasks

logger = logging.getLogger(__name__)

MTEB_NAMES: dict[str, str] = {name: f"Enterprise{name.capitalize()}Retrieval" for name in TASKS}
OUR_NAMES: dict[str, str] = {v: k for k, v in MTEB_NAMES.items()}
MTEB_SPLIT = "test"  # the qrels file of every BEIR folder the builder writes
# ISO 639-3 and script of each translated split's queries (the documents stay English).
LANGUAGE_CODES: dict[str, str] = {"de": "deu-Latn", "es": "spa-Latn", "fr": "fra-Latn", "ja": "jpn-Jpan",
                                  "he": "heb-Hebr"}
SUBSETS: tuple[str, ...] = ("dev", *OOD_SPLITS, *(f"dev-{lang}" for lang in LANGUAGES))
PAPER = "https://arxiv.org/abs/2501.04652"
BIBTEX = """@article{bechard2025multitask,
  title = {Multi-task retriever fine-tuning for domain-specific and efficient RAG},
  author = {B{\\'e}chard, Patrice and Marquez Ayala, Orlando},
  journal = {arXiv preprint arXiv:2501.04652},
  year = {2025},
}"""


def subset_languages(subset: str) -> list[str]:
    """MTEB language codes of a subset: English, or the query language plus English documents."""
    lang = subset[len("dev-"):] if subset.startswith("dev-") else None
    return [LANGUAGE_CODES[lang], "eng-Latn"] if lang else ["eng-Latn"]


def task_metadata(task: str, subsets: Sequence[str] = SUBSETS, path: str = "helpers.data build",
                  revision: str = "unknown"):
    """The ``TaskMetadata`` of one of our tasks over ``subsets`` of a built dataset at ``path``."""
    from mteb.abstasks.task_metadata import TaskMetadata

    t = TASKS[task]
    kind = "whole workflows (YAML) retrieved from a requirement" if task == "workflow" else t.description
    return TaskMetadata(
        name=MTEB_NAMES[task],
        description=(f"Enterprise-workflow retrieval, {task} task: {kind}. An open, template-generated stand-in for "
                     "the proprietary data of Béchard & Marquez Ayala (2025), built by "
                     "`python -m helpers.data build`; "
                     "subsets are its splits: dev (IT, held out), ood01-ood10 (ten other business domains) and "
                     "dev-de/es/fr/ja/he (the dev queries written by hand in five languages, documents in English)."),
        reference=PAPER,
        dataset={"path": path, "revision": revision},
        type="Retrieval", category="t2t", modalities=["text"],
        eval_splits=[MTEB_SPLIT],
        eval_langs={s: subset_languages(s) for s in subsets},
        main_score=f"{t.metric}_at_{t.k}",
        domains=["Constructed", "Engineering"] + (["Programming"] if task == "workflow" else []),
        license="cc-by-4.0",
        annotations_creators="derived",
        sample_creation="created",
        dialect=[],
        prompt={"query": t.query_instruction},
        bibtex_citation=BIBTEX,
    )


def _dataset_revision(root: Path) -> str:
    """``v<dataset_version>-<profile>-seed<seed>-<source fingerprint>`` from the build's ``stats.json``."""
    import json

    try:
        s = json.loads((root / "stats.json").read_text(encoding="utf-8"))
        return f"v{s['dataset_version']}-{s['profile']}-seed{s['seed']}-{s['source_fingerprint']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def _beir_root(data: str | os.PathLike) -> Path:
    """``DIR/beir`` of a built dataset (``DIR/beir`` itself is accepted too)."""
    data = Path(data)
    if not data.is_dir():
        raise DataError("folder not found (--data)", file=data)
    for root in (data / "beir", data):
        if any((root / t).is_dir() for t in TASKS):
            return root
    raise DataError("not a built dataset: no beir/<task>/<split>/ folders (python -m helpers.data build "
                    "writes them)", file=data)


def task_subsets(data: str | os.PathLike, task: str, splits: Sequence[str] | None = None) -> list[str]:
    """The split folders of ``task`` under a built dataset (``train`` excluded), filtered by ``splits`` globs."""
    base = _beir_root(data) / task
    found = sorted(p.name for p in base.iterdir() if (p / "corpus.jsonl").is_file()) if base.is_dir() else []
    found = [s for s in found if s != "train"]
    if not found:
        raise DataError(f"task {task!r} has no evaluation split folders here", file=base)
    order = {s: i for i, s in enumerate(SUBSETS)}
    found.sort(key=lambda s: (order.get(s, len(order)), s))
    if splits:
        chosen = [s for s in found if any(fnmatch.fnmatchcase(s, g) for g in splits)]
        if not chosen:
            raise DataError(f"--splits {' '.join(splits)} matches none of task {task!r}'s splits: "
                            f"{', '.join(found)}", file=base)
        found = chosen
    return found


def _retrieval_task_class():
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    class WorkflowRetrievalTask(AbsTaskRetrieval):
        """One of our tasks over the split folders of one built dataset (see the module docstring).

        :func:`load_tasks` makes a subclass per task and dataset: MTEB keeps ``metadata`` on the class.
        """

        k_values = tuple(sorted(set(AbsTaskRetrieval.k_values) | set(DEFAULT_KS)))
        task: str
        root: Path

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.load_reports: dict[str, dict] = {}

        def load_data(self, num_proc: int | None = None, **kwargs) -> None:
            """Each subset's BEIR folder through :func:`load_beir` (skipped queries counted in ``load_reports``)."""
            from datasets import Dataset

            if self.data_loaded:
                return
            self.dataset = {}
            for subset in self.hf_subsets:
                corpus, queries, qrels = data = load_beir(self.root / self.task / subset, MTEB_SPLIT)
                self.load_reports[subset] = data.report.as_dict()
                docs = Dataset.from_dict({"id": list(corpus), "text": [doc_text(d) for d in corpus.values()]})
                qs = Dataset.from_dict({"id": list(queries), "text": list(queries.values())})
                self.dataset[subset] = {MTEB_SPLIT: {"corpus": docs, "queries": qs, "relevant_docs": qrels,
                                                     "top_ranked": None}}
            self.data_loaded = True

    return WorkflowRetrievalTask


def load_tasks(data: str | os.PathLike, tasks: Iterable[str] | str | None = None,
               splits: Sequence[str] | None = None) -> list:
    """MTEB task objects for ``tasks`` (default: all four) over the splits of a built dataset at ``data``.

    ``splits``: globs over split names (``dev``, ``'ood*'``, ``'dev-*'``); default every split but train.
    Folders are checked now; they are read when MTEB runs the task.
    """
    base = _retrieval_task_class()
    root = _beir_root(data)
    revision = _dataset_revision(root.parent if root.name == "beir" else root)
    out = []
    for task in validate_tasks(tasks):
        metadata = task_metadata(task, task_subsets(root, task, splits), str(root / task), revision)
        cls = type(MTEB_NAMES[task], (base,), {"metadata": metadata, "task": task, "root": root,
                                               "__module__": __name__})
        out.append(cls())
    return out


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_mteb():
    """Silence MTEB's warnings while it inspects a model: it validates prompt keys against its own
    registry and calls our ``"<task>_query"`` keys invalid (they are replaced right after)."""
    loggers = [logging.getLogger(n) for n in ("mteb.models.abs_encoder", "mteb.models.sentence_transformer_wrapper")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _model_name(spec, model) -> str:
    """An MTEB model name (``owner/name``): a hub id as it is, anything local as ``local/<name>``."""
    from helpers.models import _HUB_ID
    from helpers.encoders import _model_label

    label = str(spec) if isinstance(spec, (str, os.PathLike)) else _model_label(model)
    if _HUB_ID.match(label) and not Path(label).exists():
        return label
    return f"local/{Path(label).name or label}"


class BM25Search:
    """Our :class:`BM25Retriever` as an MTEB search model (``index``, ``search``, ``mteb_model_meta``).

    Every query gets an entry in the run, an empty one when no term matches, which pytrec_eval scores
    0, as our metrics do. ``empty`` counts those queries per subset.
    """

    def __init__(self, **bm25_options):
        from mteb.models import ModelMeta

        self.retriever = BM25Retriever(**bm25_options)
        ident = self.retriever.identity()
        self.mteb_model_meta = ModelMeta.create_empty(overwrites={
            "name": "local/bm25", "revision": f"{ident['library'].replace(' ', '-')}-k1{ident['k1']}-b{ident['b']}",
            "framework": [], "modalities": ["text"], "model_type": ["sparse"]})
        self.empty: dict[str, int] = {}

    def index(self, corpus, *, task_metadata, hf_split, hf_subset, encode_kwargs, num_proc=None, **kwargs) -> None:
        self.retriever.index({i: {"title": "", "text": t} for i, t in zip(corpus["id"], corpus["text"])})

    def search(self, queries, *, task_metadata, hf_split, hf_subset, top_k, encode_kwargs, top_ranked=None,
               num_proc=None, **kwargs) -> dict[str, dict[str, float]]:
        run = self.retriever.search(dict(zip(queries["id"], queries["text"])), top_k)
        self.empty[f"{task_metadata.name}/{hf_subset}"] = sum(1 for r in run.values() if not r)
        return run


def _prompted_encoder_class():
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    class PromptedEncoder(SentenceTransformerEncoderWrapper):
        """MTEB's SentenceTransformer wrapper with our per-task prompt strings under MTEB's keys."""

        def __init__(self, model, prompts: dict[str, str], name: str, revision: str):
            with _quiet_mteb():
                super().__init__(model)  # model_prompts=None: the model's own prompts are left as they are
            self.model_prompts = dict(prompts)
            self.mteb_model_meta = self.mteb_model_meta.model_copy(update={"name": name, "revision": revision})

    return PromptedEncoder


def mteb_prompts(model, tasks: Iterable[str] | None = None) -> dict[str, str]:
    """``{"EnterpriseStepRetrieval-query": prompt, ...-document: prompt}``: what our evaluation encodes with.

    Resolved by :class:`~helpers.evaluation.RetrieverFactory`, so a fine-tuned model lacking a task's
    prompts is refused here exactly as ``helpers.evaluate`` refuses it.
    """
    from helpers.evaluation import RetrieverFactory

    factory = RetrieverFactory(cache_dir=None)
    prompts = {}
    for task in validate_tasks(tasks):
        r = factory(model, task)
        prompts[f"{MTEB_NAMES[task]}-query"] = r.query_prompt
        prompts[f"{MTEB_NAMES[task]}-document"] = r.doc_prompt
    return prompts


def mteb_model(spec, tasks: Iterable[str] | None = None):
    """An MTEB model for a retriever spec (``bm25``, ``minilm-l6``, ``me5-small``, a folder, a hub id) or a
    loaded SentenceTransformer. Names resolve through :func:`helpers.models.load_encoder` (offline for
    registered names). The revision is a fingerprint of the weights, so a retrained model gets new results."""
    if isinstance(spec, str) and spec.strip() == "bm25":
        return BM25Search()
    if isinstance(spec, str) and spec.strip().startswith("hybrid:"):
        raise ValueError(f"--model {spec!r}: hybrid retrievers are not scored through MTEB; give bm25 or one encoder")
    from helpers.embeddings import weights_fingerprint
    from helpers.evaluation import RetrieverFactory

    model = RetrieverFactory(cache_dir=None).model(spec.strip() if isinstance(spec, str) else spec)
    return _prompted_encoder_class()(model, mteb_prompts(model, tasks), _model_name(spec, model),
                                     weights_fingerprint(model)[:16])


# ----------------------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------------------

CREATOR = "helpers.mteb"


@contextlib.contextmanager
def datasets_progress_bars(show: bool):
    """``datasets``' progress bars (MTEB maps every corpus through it) on or off while inside."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if show else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was_on else datasets.disable_progress_bars)()


def run_mteb(model, data: str | os.PathLike, tasks: Iterable[str] | str | None = None,
             splits: Sequence[str] | None = None, out: str | os.PathLike | None = None, overwrite: bool = False,
             batch_size: int = 64, show_progress: bool = False) -> dict:
    """Score ``model`` (a spec, a loaded model or an MTEB model) on our tasks with ``mteb.evaluate``.

    With ``out``, MTEB's own result files are written there (``results/<model>/<revision>/<task>.json``,
    ``model_meta.json``), atomically; results of other models already in ``out`` are kept.
    Returns ``{"model", "revision", "main_score": {task: metric name}, "scores": {task: {subset: value}},
    "load_reports", "empty_rankings", "task_results"}`` (the last: MTEB's ``TaskResult`` objects).
    """
    import shutil

    import mteb
    from mteb.cache import ResultCache

    from helpers.io import atomic_dir, check_output_dir, output_entries

    if out is not None:
        check_output_dir(out, overwrite=overwrite)
    task_objs = load_tasks(data, tasks, splits)
    names = [t.task for t in task_objs]
    search = model if hasattr(model, "mteb_model_meta") else mteb_model(model, names)
    options = dict(encode_kwargs={"batch_size": batch_size, "show_progress_bar": show_progress},
                   show_progress_bar=show_progress, co2_tracker=False, overwrite_strategy="always")
    with datasets_progress_bars(show_progress):
        if out is None:
            result = mteb.evaluate(search, task_objs, cache=None, **options)
        else:
            with atomic_dir(out, overwrite=overwrite, creator=CREATOR) as tmp:
                # our earlier result files (other models, other tasks) go along so they stay ours and are
                # kept; a file the user put there is not copied: the merge leaves it where it is
                for rel in sorted(output_entries(out) or ()):
                    if (Path(out) / rel).is_file():
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(Path(out) / rel, tmp / rel)
                result = mteb.evaluate(search, task_objs, cache=ResultCache(tmp), **options)
    meta = search.mteb_model_meta
    scores = {OUR_NAMES[tr.task_name]: {e["hf_subset"]: e["main_score"] for e in tr.scores[MTEB_SPLIT]}
              for tr in result.task_results}
    return {"model": meta.name, "revision": meta.revision,
            "main_score": {t.task: t.metadata.main_score for t in task_objs}, "scores": scores,
            "load_reports": {t.task: t.load_reports for t in task_objs},
            "empty_rankings": dict(getattr(search, "empty", {})), "task_results": list(result.task_results)}


def compare_with_ours(spec, data: str | os.PathLike, tasks: Iterable[str] | str | None = None,
                      splits: Sequence[str] = ("dev",), batch_size: int = 64) -> dict:
    """``{task: {subset: {"mteb", "ours", "diff"}}}``: MTEB's main score next to :func:`evaluate_folder`'s.

    One loaded model serves both sides; ours runs on every query (no sample) without the embedding cache.
    """
    from helpers.evaluation import RetrieverFactory, evaluate_folder

    factory = RetrieverFactory(cache_dir=None, batch_size=batch_size)
    bm25 = isinstance(spec, str) and spec.strip() == "bm25"
    model = "bm25" if bm25 else factory.model(spec.strip() if isinstance(spec, str) else spec)
    theirs = run_mteb(model if bm25 else mteb_model(model, tasks), data, tasks, splits, batch_size=batch_size)
    root = _beir_root(data)
    out: dict[str, dict] = {}
    for task, by_subset in theirs["scores"].items():
        retriever = factory(model, task)
        for subset, value in by_subset.items():
            ours = evaluate_folder(retriever, root / task / subset, task, split=MTEB_SPLIT)
            mine = ours["metrics"][ours["headline"]]
            out.setdefault(task, {})[subset] = {"mteb": value, "ours": mine, "diff": value - mine}
    return out
