"""The catalog recipe: every query against its task's whole catalog, top layers only: :func:`train_catalog`.

What a run does, and where it departs from the paper's recipe (in-batch MNRL over pairs, all layers):

- **cached lower layers.** The model is cut (:class:`~helpers.training.split_encoder.SplitEncoder`) below
  its top ``top_layers`` layers; the frozen bottom runs once per distinct prompted text
  (:class:`~helpers.training.layer_cache.LayerCache`), a step runs the top layers only. The bottom is
  frozen and sees no dropout.
- **query groups, whole-catalog negatives.** One training item is a query with all its gold objects
  (:mod:`~helpers.training.catalog_data`), scored against every object of its task's training catalog (or
  ``catalog_sample`` of them, golds always in), with the multi-positive InfoNCE of
  :mod:`~helpers.training.catalog_loss`. The catalog is encoded by the current model in every step, from
  its cached lower layers, with gradients through it: a stale, detached catalog fell apart in the probe
  of issue 23. Under a frequency cap (``known``), a query's gold objects whose pairs the cap dropped are
  left out of its loss: neither positives nor (false) negatives.
- **batches.** ``batch_groups`` groups of one task per step. Each epoch shuffles each task's groups and
  the order of all batches (seeded by ``seed`` and the epoch), so the tasks are mixed in proportion to
  their group counts and every group is seen once per epoch (a task's last batch may be short: nothing is
  dropped).
- **anchor (optional).** ``anchor_weight > 0`` adds ``anchor_weight x`` the drift of the untrained workflow
  task's texts from the base's embeddings (:mod:`~helpers.training.anchor`): one way to keep what the base
  knew, measured against merging with the base (issue 24). Off (0, the default), nothing changes.
- **optimisation.** AdamW (no weight decay on biases and LayerNorm weights, as the Trainer does), linear
  warm-up and decay, gradient norm clipped at ``max_grad_norm`` (the Trainer's 1.0), optional bf16 autocast.

Checkpoints (``checkpoint_dir/checkpoint-<step>.pt``, every ``save_steps``) hold the trainable weights,
optimizer, scheduler, torch RNG (dropout) and the records so far; ``resume=True`` continues from the
latest and gives the same weights as an uninterrupted run. The returned model is the whole
SentenceTransformer (frozen bottom, trained top), saved and loaded as any other.
"""

from __future__ import annotations

import io as _io
import math
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from helpers.io import DataError, atomic_write_bytes
from helpers.training.catalog_data import (TaskCatalog, check_coverage, gold_matrix, other_gold_matrix, query_groups,
                                           sample_catalog, task_catalogs)
from helpers.training.anchor import Anchor, AnchorTexts
from helpers.training.catalog_loss import FORMS, catalog_scores, multi_positive_loss
from helpers.training.layer_cache import LayerCache
from helpers.training.split_encoder import SplitEncoder

PRECISIONS = ("fp32", "bf16")


@dataclass
class CatalogSettings:
    """The recipe's settings (the config keys it needs are named in the field comments)."""

    top_layers: int = 2                 # train_top_layers: layers trained; the rest are cached
    batch_groups: int = 32              # batch_size: query groups per step
    epochs: float = 1.0
    max_steps: int | None = None        # overrides epochs
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    scale: float = 20.0                 # loss_scale
    loss_form: str = "each"             # catalog_loss: "each" | "sum" (helpers.training.catalog_loss)
    catalog_sample: int | None = None   # objects scored per step (None: the whole catalog)
    max_seq_length: int = 128           # training length of the cached texts
    task_lengths: dict[str, int] = field(default_factory=dict)   # per-task training lengths (seq_len_per_task)
    precision: str = "fp32"             # "fp32" or "bf16" autocast (resolved: no "auto" here)
    cache_dtype: str = "bf16"           # storage of the cached states
    save_steps: int | None = None       # checkpoint every N steps (None: no checkpoints)
    save_total_limit: int = 2
    seed: int = 0
    anchor_weight: float = 0.0          # anchor_weight: the anchor term's weight (0: off; helpers.training.anchor)
    anchor_batch: int = 32              # anchor_batch: anchor texts per step
    anchor_length: int | None = None    # training length of the anchor texts (None: max_seq_length)

    def check(self) -> "CatalogSettings":
        """One DataError line naming the field for a value the recipe cannot run with."""
        if self.loss_form not in FORMS:
            raise DataError(f"must be one of {', '.join(FORMS)}, got {self.loss_form!r}", field="catalog_loss")
        if self.precision not in PRECISIONS:
            raise DataError(f"must be fp32 or bf16, got {self.precision!r}", field="precision")
        for name in ("batch_groups", "max_steps", "catalog_sample", "save_steps", "max_seq_length", "anchor_batch",
                     "anchor_length"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise DataError(f"must be a positive whole number, got {v!r}", field=name)
        for name in ("epochs", "learning_rate", "scale"):
            if not getattr(self, name) > 0:
                raise DataError(f"must be > 0, got {getattr(self, name)!r}", field=name)
        if not 0 <= self.warmup_ratio < 1:
            raise DataError(f"must be in [0, 1), got {self.warmup_ratio!r}", field="warmup_ratio")
        if not self.anchor_weight >= 0:
            raise DataError(f"must be >= 0, got {self.anchor_weight!r}", field="anchor_weight")
        return self


#: The anchor settings of a run without the anchor term (what a checkpoint that predates them ran with).
_ANCHOR_OFF = {k: getattr(CatalogSettings, k) for k in ("anchor_weight", "anchor_batch", "anchor_length")}


@dataclass
class CatalogResult:
    """What :func:`train_catalog` returns: the trained SentenceTransformer and the run's log."""

    model: object
    log: dict


@dataclass
class _State:
    """What the parts of one run share."""

    settings: CatalogSettings
    split: SplitEncoder
    groups: dict
    catalogs: dict[str, TaskCatalog]
    prompts: dict
    caches: dict[int, LayerCache]
    per_epoch: int
    total: int
    optimizer: object = None
    scheduler: object = None
    records: list = field(default_factory=list)
    curve: list = field(default_factory=list)
    plan: tuple = (None, [])            # (epoch, its batches): computed once per epoch
    anchor: Anchor | None = None        # with anchor_weight > 0

    def batch(self, step: int) -> tuple[str, list[int]]:
        """The batch of ``step`` (from 0): epoch ``step // per_epoch``'s batch ``step % per_epoch``."""
        epoch = step // self.per_epoch
        if self.plan[0] != epoch:
            self.plan = (epoch, epoch_batches(self.groups, self.settings.batch_groups, self.settings.seed, epoch))
        return self.plan[1][step % self.per_epoch]


def epoch_batches(groups: Mapping[str, list], batch_groups: int, seed: int, epoch: int) -> list[tuple[str, list[int]]]:
    """One epoch's batches ``(task, group indices)``: each task's groups shuffled and cut into batches of
    ``batch_groups``, all batches shuffled, both seeded by ``(seed, epoch)``."""
    from helpers.training.pairs import task_rng

    batches = []
    for task in sorted(groups):
        order = task_rng(seed, task, f"groups-epoch{epoch}").permutation(len(groups[task])).tolist()
        batches += [(task, order[i:i + batch_groups]) for i in range(0, len(order), batch_groups)]
    mix = np.random.default_rng([seed, epoch, zlib.crc32(b"batch-order")]).permutation(len(batches))
    return [batches[i] for i in mix]


def run_steps(groups: Mapping[str, list], s: CatalogSettings) -> tuple[int, int]:
    """``(batches per epoch, optimizer steps of the run)``: ``max_steps``, else ``ceil(epochs x batches)``."""
    per_epoch = len(epoch_batches(groups, s.batch_groups, s.seed, 0))
    return per_epoch, s.max_steps or max(1, math.ceil(per_epoch * s.epochs))


def _task_prompts(prompts: Mapping, task: str) -> tuple[str, str]:
    """``(query prompt, document prompt)`` of a task from the trainer's column prompts."""
    if task not in prompts or not {"anchor", "positive"} <= set(prompts[task]):
        raise DataError(f"no 'anchor' and 'positive' prompts for task {task!r}", field="prompts")
    return prompts[task]["anchor"] or "", prompts[task]["positive"] or ""


def _prepare(model, datasets: Mapping, prompts: Mapping, s: CatalogSettings, cache_dir, corpus, known,
             anchors: AnchorTexts | None, progress: bool) -> _State:
    """Split, groups, catalogs, every text's lower layers cached, the step count; with the anchor term, its
    texts cached too and their base embeddings computed (before any step: the model is still the base)."""
    split = SplitEncoder(model, s.top_layers)
    groups = query_groups(datasets, known)
    catalogs = task_catalogs(datasets, corpus)
    check_coverage(groups, catalogs)
    caches: dict[int, LayerCache] = {}

    def cache(length: int) -> LayerCache:
        if length not in caches:
            caches[length] = LayerCache(split, length, cache_dir, s.cache_dtype, progress=progress)
        return caches[length]

    for task in groups:
        qp, dp = _task_prompts(prompts, task)
        length = int(s.task_lengths.get(task, s.max_seq_length))
        cache(length).ensure([g.query for g in groups[task]], qp)
        cache(length).ensure(catalogs[task].texts, dp)
    per_epoch, total = run_steps(groups, s)
    state = _State(s, split, groups, catalogs, prompts, caches, per_epoch, total)
    if s.anchor_weight > 0:
        if anchors is None:
            raise DataError("must be 0 when no anchor texts are given", field="anchor_weight")
        state.anchor = Anchor(anchors, split, cache(s.anchor_length or s.max_seq_length), s.precision)
    return state


def _optimizer(state: _State) -> None:
    """AdamW over the trainable parameters (no decay on biases and LayerNorm weights), linear schedule."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    s = state.settings
    named = [(n, p) for n, p in state.split.model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n]
    decay = [p for n, p in named if all(p is not q for q in no_decay)]
    state.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                                         {"params": no_decay, "weight_decay": 0.0}], lr=s.learning_rate)
    state.scheduler = get_linear_schedule_with_warmup(state.optimizer, math.ceil(state.total * s.warmup_ratio),
                                                      state.total)


def _embed(state: _State, task: str, texts: Sequence[str], prompt: str):
    cache = state.caches[int(state.settings.task_lengths.get(task, state.settings.max_seq_length))]
    return state.split.top(cache.states(texts, prompt), cache.prompt_length(prompt))


def _step(state: _State, step: int) -> dict:
    """One optimizer step (``step`` counts from 0); returns its record."""
    import torch

    s = state.settings
    task, idx = state.batch(step)
    batch = [state.groups[task][i] for i in idx]
    catalog = state.catalogs[task]
    rng = np.random.default_rng([s.seed, step, zlib.crc32(f"catalog:{task}".encode())])
    columns = sample_catalog(batch, catalog, s.catalog_sample, rng)
    qp, dp = _task_prompts(state.prompts, task)
    state.split.model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.precision == "bf16"):
        queries = _embed(state, task, [g.query for g in batch], qp)
        objects = _embed(state, task, [catalog.texts[c] for c in columns], dp)
    loss = multi_positive_loss(catalog_scores(queries, objects, s.scale), gold_matrix(batch, columns, catalog),
                               s.loss_form, other_gold_matrix(batch, columns, catalog))
    anchor = state.anchor.loss(s.anchor_batch, s.seed, step) if state.anchor is not None else None
    (loss if anchor is None else loss + s.anchor_weight * anchor).backward()
    params = state.split.top_parameters()
    torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
    lr = state.scheduler.get_last_lr()[0]
    state.optimizer.step()
    state.scheduler.step()
    state.optimizer.zero_grad(set_to_none=True)
    record = {"step": step + 1, "task": task, "groups": len(batch), "pairs": sum(g.pairs for g in batch),
              "catalog": len(columns), "loss": round(float(loss.detach()), 6), "learning_rate": lr}
    if anchor is not None:   # the catalog loss stays "loss" (comparable with runs without the term)
        record["anchor_loss"] = round(float(anchor.detach()), 8)
    return record


# ---------------------------------------------------------------------------------------------- checkpoints

def run_key(state: _State) -> dict:
    """What a checkpoint must agree with to be resumed: the settings and the data's shape."""
    return {**{k: v for k, v in asdict(state.settings).items() if k not in ("save_steps", "save_total_limit")},
            "total_steps": state.total, "groups": {t: len(g) for t, g in state.groups.items()},
            "catalogs": {t: len(c) for t, c in state.catalogs.items()}}


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for p in folder.glob("checkpoint-*.pt") if folder.is_dir() else []:
        tail = p.stem.rsplit("-", 1)[-1]
        if tail.isdigit():
            found.append((int(tail), p))
    return sorted(found)


def latest_checkpoint_file(folder: str | Path) -> str | None:
    """The newest ``checkpoint-<step>.pt`` in ``folder`` (what ``resume=True`` continues from), or None."""
    found = _checkpoints(Path(folder))
    return str(found[-1][1]) if found else None


def _save_checkpoint(state: _State, folder: Path, step: int) -> None:
    import torch

    model = state.split.model
    payload = {"step": step, "key": run_key(state), "records": state.records, "curve": state.curve,
               "top": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
               "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
               "torch_rng": torch.get_rng_state()}
    buf = _io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(folder / f"checkpoint-{step}.pt", buf.getvalue())
    for _, old in _checkpoints(folder)[:-state.settings.save_total_limit]:
        old.unlink(missing_ok=True)   # this run's own files, older than the ones kept


def _load_checkpoint(state: _State, folder: Path) -> int:
    """Restore the latest checkpoint in ``folder``; returns its step (0 when there is none)."""
    import torch

    found = _checkpoints(folder)
    if not found:
        return 0
    path = found[-1][1]
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: torch raises several kinds
        raise DataError(f"unreadable checkpoint ({type(e).__name__}); delete it to resume from an earlier one",
                        file=path) from None
    want = run_key(state)
    have = {**_ANCHOR_OFF, **ck["key"]}   # a checkpoint written before the anchor term existed ran without it
    for k in want:
        if have.get(k) != want[k]:
            raise DataError(f"checkpoint of another run: {k} is {have.get(k)!r} there, {want[k]!r} here; "
                            "resume with the same settings and data or start a new run", file=path, field=k)
    params = dict(state.split.model.named_parameters())
    with torch.no_grad():
        for n, t in ck["top"].items():
            params[n].copy_(t)
    state.optimizer.load_state_dict(ck["optimizer"])
    state.scheduler.load_state_dict(ck["scheduler"])
    torch.set_rng_state(ck["torch_rng"])
    state.records, state.curve = list(ck["records"]), list(ck["curve"])
    return int(ck["step"])


# ---------------------------------------------------------------------------------------------- the run

def _curve_point(state: _State, step: int, evaluate: Callable[[], dict], t0: float, eval_seconds: float) -> float:
    """Evaluate the model now (eval mode, RNG untouched); returns the seconds it took."""
    import sys

    import torch
    from tqdm.auto import tqdm

    t = time.perf_counter()
    state.split.model.eval()
    with torch.random.fork_rng():   # evaluation must not move the dropout RNG: resume equality
        dev = evaluate()
    took = time.perf_counter() - t
    state.curve.append({"step": step, "train_seconds": round(t - t0 - eval_seconds, 1),
                        "eval_seconds": round(took, 1), "dev": dev})
    tqdm.write(f"[curve] step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in dev.items()), file=sys.stderr)
    return took


def train_catalog(model, datasets: Mapping, prompts: Mapping, settings: CatalogSettings | None = None, *,
                  cache_dir: str | Path | None = None, corpus: Mapping | None = None, known: Mapping | None = None,
                  anchors: AnchorTexts | None = None,
                  checkpoint_dir: str | Path | None = None, resume: bool = False,
                  curve_steps: Sequence[int] = (), curve: Callable[[], dict] | None = None,
                  on_step: Callable[[dict], None] | None = None, show_progress: bool = True) -> CatalogResult:
    """Train ``model`` (a SentenceTransformer over a BERT-like model, changed in place) with the catalog recipe.

    ``datasets``: ``{task: Dataset(anchor, positive, positive_id)}`` (:func:`load_training_pairs
    <helpers.training.pairs.load_training_pairs>`, after any cap or budget). ``prompts``: the trainer's
    column prompts ``{task: {"anchor": query prompt, "positive": document prompt}}``. ``cache_dir``: where
    the lower layers' states are kept on disk (None: memory only). ``corpus``: ``{task: {id: text}}``
    catalogs instead of the tasks' distinct positives. ``known``: the pairs before a frequency cap, whose
    gold objects the cap dropped are left out of the loss, not scored as negatives
    (:func:`~helpers.training.catalog_data.query_groups`). ``anchors``: the anchor term's texts
    (:func:`~helpers.training.anchor.load_anchor_texts`; needed when ``settings.anchor_weight > 0``, whose
    base embeddings are those of ``model`` as given). ``curve()`` (-> ``{task: value}``) runs at
    ``curve_steps`` (0: before training) and at the last step. ``on_step(record)`` runs after each step
    (and its checkpoint). Returns :class:`CatalogResult`.
    """
    import torch
    from tqdm.auto import tqdm

    s = (settings or CatalogSettings()).check()
    t_start = time.perf_counter()
    state = _prepare(model, datasets, prompts, s, cache_dir, corpus, known, anchors, show_progress)
    cache_seconds = time.perf_counter() - t_start
    _optimizer(state)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    torch.manual_seed(s.seed)
    start = _load_checkpoint(state, folder) if resume and folder is not None else 0
    t0, eval_seconds, want = time.perf_counter(), 0.0, set(curve_steps)
    if curve is not None and 0 in want and start == 0:
        eval_seconds += _curve_point(state, 0, curve, t0, eval_seconds)
    bar = tqdm(total=state.total, initial=start, desc="catalog training", unit="step", disable=not show_progress)
    for step in range(start, state.total):
        rec = _step(state, step)
        state.records.append(rec)
        bar.update(1)
        bar.set_postfix(loss=f"{rec['loss']:.4f}", task=rec["task"])
        done = step + 1
        if curve is not None and (done in want or (want and done == state.total)):
            eval_seconds += _curve_point(state, done, curve, t0, eval_seconds)
        if folder is not None and s.save_steps and done % s.save_steps == 0 and done < state.total:
            _save_checkpoint(state, folder, done)
        if on_step is not None:
            on_step(rec)
    bar.close()
    model.eval()
    train_seconds = time.perf_counter() - t0 - eval_seconds
    return CatalogResult(model, _log(state, start, cache_seconds, train_seconds, eval_seconds))


def _anchor_summary(state: _State) -> dict | None:
    """The anchor term as it ran (None when off): weight, texts per step, length, source and size."""
    if state.anchor is None:
        return None
    s, texts = state.settings, state.anchor.texts
    return {"weight": s.anchor_weight, "batch": s.anchor_batch, "length": state.anchor.cache.max_length,
            "flows": len(texts.requirements), "source": texts.source}


def _log(state: _State, start: int, cache_seconds: float, train_seconds: float, eval_seconds: float) -> dict:
    """The run's log: settings, data counts, per-step records, the curve, cache counts and speed."""
    this_run = state.records[start:] if len(state.records) > start else []
    pairs_epoch = sum(g.pairs for gs in state.groups.values() for g in gs)
    steps = len(this_run)
    return {"settings": asdict(state.settings), "total_steps": state.total, "batches_per_epoch": state.per_epoch,
            "resumed_from_step": start, "steps_this_run": steps,
            "groups": {t: len(g) for t, g in state.groups.items()},
            "pairs": {t: sum(g.pairs for g in gs) for t, gs in state.groups.items()},
            "catalog": {t: len(c) for t, c in state.catalogs.items()},
            "cut_layer": state.split.cut, "trainable_params": sum(p.numel() for p in state.split.top_parameters()),
            "anchor": _anchor_summary(state),
            "cache": {str(n): dict(c.stats) for n, c in state.caches.items()},
            "records": state.records, "learning_curve": state.curve,
            "train_loss": float(np.mean([r["loss"] for r in state.records])) if state.records else float("nan"),
            "cache_seconds": round(cache_seconds, 2), "train_seconds": round(train_seconds, 2),
            "curve_seconds": round(eval_seconds, 2),
            "pairs_per_second": sum(r["pairs"] for r in this_run) / train_seconds if train_seconds and steps else 0.0,
            "groups_per_second": sum(r["groups"] for r in this_run) / train_seconds if train_seconds and steps else 0.0,
            "seconds_per_epoch": train_seconds / steps * state.per_epoch if steps else None,
            "pairs_per_epoch": pairs_epoch}

