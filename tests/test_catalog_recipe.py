"""helpers.training.catalog_recipe: batches, settings, a tiny real run (loss down, recall moves, save/load),
same seed -> byte-identical weights, resume == uninterrupted, bad checkpoints and catalogs refused."""

from collections import Counter

import pytest
import torch

from helpers.io import DataError
from helpers.training.catalog_data import QueryGroup, query_groups, task_catalogs
from helpers.training.catalog_loss import catalog_scores, multi_positive_loss
from helpers.training.catalog_recipe import CatalogSettings, epoch_batches, train_catalog
from helpers.training.callbacks import SimulatedKill


def _groups(sizes):
    return {t: [QueryGroup(t, f"{t}{i}", (f"o{i}",), 1) for i in range(n)] for t, n in sizes.items()}


def test_an_epoch_sees_every_group_once_one_task_per_batch():
    groups = _groups({"step": 10, "table": 25, "field": 3})
    batches = epoch_batches(groups, 4, seed=1, epoch=0)
    seen = Counter((t, i) for t, idx in batches for i in idx)
    assert set(seen.values()) == {1} and len(seen) == 38
    assert Counter(t for t, _ in batches) == {"step": 3, "table": 7, "field": 1}   # in proportion to the groups
    for task in groups:   # full batches, but for each task's last one
        sizes = sorted((len(idx) for t, idx in batches if t == task), reverse=True)
        assert sizes[:-1] == [4] * (len(sizes) - 1) and 1 <= sizes[-1] <= 4
    assert batches == epoch_batches(groups, 4, seed=1, epoch=0)
    assert batches != epoch_batches(groups, 4, seed=1, epoch=1) and batches != epoch_batches(groups, 4, seed=2, epoch=0)


@pytest.mark.parametrize("change, field", [
    ({"loss_form": "mean"}, "catalog_loss"), ({"precision": "auto"}, "precision"),
    ({"batch_groups": 0}, "batch_groups"), ({"catalog_sample": -1}, "catalog_sample"), ({"learning_rate": 0}, "learning_rate"),
    ({"warmup_ratio": 1.0}, "warmup_ratio")])
def test_bad_settings_fail_in_one_line_naming_the_field(change, field):
    with pytest.raises(DataError) as e:
        CatalogSettings(**change).check()
    assert f"field '{field}'" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------- real runs

@pytest.fixture(scope="module")
def pairs(tiny):
    """Two tasks of the tiny dataset, cut to keep the runs short on shared CPUs."""
    from helpers.training.pairs import load_training_pairs

    data = load_training_pairs(tiny, ["step", "table"])
    return {t: ds.select(range(min(len(ds), 60))) for t, ds in data.items()}


@pytest.fixture(scope="module")
def prompts():
    from helpers.tasks import TASKS, task_prompts

    p = task_prompts({}, list(TASKS), query_side=True, doc_side=False)
    return {t: {"anchor": p[f"{t}_query"], "positive": p[f"{t}_document"]} for t in ("step", "table")}


def _fresh():
    from helpers.models import load_encoder

    return load_encoder("minilm-l6")


def _objective_and_recall(model, pairs, prompts, k=3):
    """The training objective ("each", scale 20) and recall@k over all training groups, by model.encode."""
    groups, cats = query_groups(pairs), task_catalogs(pairs)
    losses, recalls = [], []
    for task, gs in groups.items():
        q = model.encode([g.query for g in gs], prompt=prompts[task]["anchor"], convert_to_tensor=True)
        d = model.encode(cats[task].texts, prompt=prompts[task]["positive"] or None, convert_to_tensor=True)
        gold = torch.zeros(len(gs), len(cats[task]), dtype=torch.bool)
        for r, g in enumerate(gs):
            gold[r, [cats[task].index[p] for p in g.gold]] = True
        scores = catalog_scores(q, d)
        losses.append(float(multi_positive_loss(scores, gold)) * len(gs))
        top = scores.topk(k, dim=1).indices
        recalls += [float(gold[r, top[r]].sum() / gold[r].sum()) for r in range(len(gs))]
    n = sum(len(g) for g in groups.values())
    return sum(losses) / n, sum(recalls) / n


def _settings(**kw):
    base = dict(top_layers=2, batch_groups=8, max_steps=6, learning_rate=2e-4, warmup_ratio=0.0,
                max_seq_length=48, seed=0)
    return CatalogSettings(**{**base, **kw})


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_move_recall_and_save_as_a_sentence_transformer(pairs, prompts, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = _fresh()
    model.prompts = {**(model.prompts or {}), "step_query": prompts["step"]["anchor"]}
    base_len = model.max_seq_length
    loss0, recall0 = _objective_and_recall(model, pairs, prompts)
    res = train_catalog(model, pairs, prompts, _settings(max_steps=8), show_progress=False)
    loss1, recall1 = _objective_and_recall(model, pairs, prompts)
    assert loss1 < loss0 and recall1 != recall0, (loss0, loss1, recall0, recall1)
    log = res.log
    assert res.model is model and log["steps_this_run"] == 8 and log["cut_layer"] == 4
    assert [r["step"] for r in log["records"]] == list(range(1, 9))
    assert sum(log["pairs"].values()) == sum(len(d) for d in pairs.values())
    assert log["cache"]["48"]["computed"] == sum(len(g) for g in query_groups(pairs).values()) \
        + sum(len(c) for c in task_catalogs(pairs).values())
    # a normal SentenceTransformer: the base's inference length and prompts, same embeddings after a reload
    assert model.max_seq_length == base_len == 256
    model.save(str(tmp_path / "m"))
    again = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert again.max_seq_length == 256 and again.prompts["step_query"] == prompts["step"]["anchor"]
    texts = ["close the incident task", "Incident Task: incident_task"]
    torch.testing.assert_close(again.encode(texts, convert_to_tensor=True), model.encode(texts, convert_to_tensor=True))


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_same_seed_is_byte_identical_and_resume_equals_an_uninterrupted_run(pairs, prompts, tmp_path):
    s = _settings(save_steps=2)
    cache = tmp_path / "layers"
    whole = train_catalog(_fresh(), pairs, prompts, s, cache_dir=cache, show_progress=False)
    again = train_catalog(_fresh(), pairs, prompts, s, cache_dir=cache, checkpoint_dir=tmp_path / "a",
                          show_progress=False)
    a, b = _weights(whole.model), _weights(again.model)
    assert all(torch.equal(a[k], b[k]) for k in a) and whole.log["records"] == again.log["records"]
    assert again.log["cache"]["48"]["read_from_disk"] > 0 and again.log["cache"]["48"]["computed"] == 0

    def kill_at_3(rec):
        if rec["step"] == 3:
            raise SimulatedKill("step 3")

    ckpt = tmp_path / "ckpt"
    with pytest.raises(SimulatedKill):
        train_catalog(_fresh(), pairs, prompts, s, cache_dir=cache, checkpoint_dir=ckpt, on_step=kill_at_3,
                      show_progress=False)
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint-2.pt"]
    with pytest.raises(DataError, match=r"field 'learning_rate'.*checkpoint of another run"):
        train_catalog(_fresh(), pairs, prompts, _settings(save_steps=2, learning_rate=1e-4), cache_dir=cache,
                      checkpoint_dir=ckpt, resume=True, show_progress=False)
    resumed = train_catalog(_fresh(), pairs, prompts, s, cache_dir=cache, checkpoint_dir=ckpt, resume=True,
                            show_progress=False)
    c = _weights(resumed.model)
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert resumed.log["resumed_from_step"] == 2 and resumed.log["steps_this_run"] == 4
    assert resumed.log["records"] == whole.log["records"]
    other = train_catalog(_fresh(), pairs, prompts, _settings(seed=1), cache_dir=cache, show_progress=False)
    d = _weights(other.model)
    assert not all(torch.equal(a[k], d[k]) for k in a)


@pytest.mark.slow
def test_curve_runs_at_its_steps_and_at_the_end_bf16_and_sampled_catalog(pairs, prompts):
    calls = []

    def dev():
        calls.append(1)
        return {"step": 0.5}

    s = _settings(max_steps=3, catalog_sample=5, precision="bf16")
    res = train_catalog(_fresh(), pairs, prompts, s, curve_steps=[0, 2], curve=dev, show_progress=False)
    assert [p["step"] for p in res.log["learning_curve"]] == [0, 2, 3] and len(calls) == 3
    full = res.log["catalog"]
    assert all(5 <= r["catalog"] <= full[r["task"]] for r in res.log["records"])
    assert any(r["catalog"] < full[r["task"]] for r in res.log["records"])


@pytest.mark.slow
def test_a_catalog_missing_a_gold_object_or_a_prompt_fails_in_one_line(pairs, prompts):
    first = pairs["table"]["positive_id"][0]
    corpus = {"table": {i: t for i, t in zip(pairs["table"]["positive_id"], pairs["table"]["positive"]) if i != first}}
    with pytest.raises(DataError) as e:
        train_catalog(_fresh(), pairs, prompts, _settings(), corpus=corpus, show_progress=False)
    assert "task 'table'" in str(e.value) and f"object {first!r}" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="no 'anchor' and 'positive' prompts for task 'step'"):
        train_catalog(_fresh(), pairs, {"table": prompts["table"]}, _settings(), show_progress=False)
    with pytest.raises(DataError, match="field 'train_top_layers'"):
        train_catalog(_fresh(), pairs, prompts, _settings(top_layers=9), show_progress=False)


# ---------------------------------------------------------------------------------------------- the anchor term

@pytest.fixture(scope="module")
def anchors(tiny):
    from helpers.tasks import TASKS, task_prompts
    from helpers.training.anchor import load_anchor_texts

    return load_anchor_texts(tiny, task_prompts({}, list(TASKS)))


def _anchor_drift(model, base, anchors):
    """mean(1 - cos) of the anchor texts between ``model`` and ``base``, as evaluation encodes them."""
    from helpers.training.anchor import drift

    out = []
    for texts, prompt in ((anchors.requirements, anchors.query_prompt), (anchors.documents, anchors.document_prompt)):
        kw = dict(prompt=prompt or None, convert_to_tensor=True)
        out.append(float(drift(model.encode(texts, **kw), base.encode(texts, **kw))))
    return sum(out) / 2


@pytest.mark.slow
def test_the_anchor_term_holds_the_workflow_texts_near_the_base_and_resumes_exactly(pairs, prompts, anchors,
                                                                                  tmp_path):
    cache, base = tmp_path / "layers", _fresh()
    free = train_catalog(_fresh(), pairs, prompts, _settings(learning_rate=5e-4), cache_dir=cache,
                         show_progress=False)
    # off (weight 0) with the texts given is the run without them: same weights, records and resume key
    off = train_catalog(_fresh(), pairs, prompts, _settings(learning_rate=5e-4), cache_dir=cache, anchors=anchors,
                        show_progress=False)
    a, b = _weights(free.model), _weights(off.model)
    assert all(torch.equal(a[k], b[k]) for k in a) and free.log["records"] == off.log["records"]
    assert off.log["anchor"] is None and "anchor_loss" not in off.log["records"][0]
    s = _settings(learning_rate=5e-4, anchor_weight=100.0, anchor_batch=16, save_steps=2)
    held = train_catalog(_fresh(), pairs, prompts, s, cache_dir=cache, anchors=anchors, show_progress=False)
    rec = held.log["records"]
    assert abs(rec[0]["anchor_loss"]) < 1e-5 and rec[-1]["anchor_loss"] > 0   # zero before the first update
    assert held.log["anchor"] == {"weight": 100.0, "batch": 16, "length": 48, "flows": len(anchors.requirements),
                                  "source": anchors.source}
    d_free, d_held = _anchor_drift(free.model, base, anchors), _anchor_drift(held.model, base, anchors)
    assert d_held < 0.5 * d_free, (d_held, d_free)
    # resume with the anchor on: the uninterrupted run's weights and records
    ckpt = tmp_path / "ckpt"
    with pytest.raises(SimulatedKill):
        train_catalog(_fresh(), pairs, prompts, s, cache_dir=cache, anchors=anchors, checkpoint_dir=ckpt,
                      on_step=_stop_at(3), show_progress=False)
    with pytest.raises(DataError, match=r"field 'anchor_weight'.*checkpoint of another run"):
        train_catalog(_fresh(), pairs, prompts, _settings(learning_rate=5e-4, save_steps=2), cache_dir=cache,
                      checkpoint_dir=ckpt, resume=True, show_progress=False)
    resumed = train_catalog(_fresh(), pairs, prompts, s, cache_dir=cache, anchors=anchors, checkpoint_dir=ckpt,
                            resume=True, show_progress=False)
    h, r = _weights(held.model), _weights(resumed.model)
    assert all(torch.equal(h[k], r[k]) for k in h) and resumed.log["records"] == rec
    assert resumed.log["resumed_from_step"] == 2


def _stop_at(step):
    def stop(rec):
        if rec["step"] == step:
            raise SimulatedKill(f"step {step}")
    return stop


def test_an_anchor_weight_without_anchor_texts_or_below_zero_fails_in_one_line(pairs, prompts):
    with pytest.raises(DataError, match=r"field 'anchor_weight'.*no anchor texts"):
        train_catalog(_fresh(), pairs, prompts, _settings(anchor_weight=1.0), show_progress=False)
    for change, field in (({"anchor_weight": -1.0}, "anchor_weight"), ({"anchor_batch": 0}, "anchor_batch")):
        with pytest.raises(DataError, match=f"field '{field}'"):
            _settings(**change).check()
