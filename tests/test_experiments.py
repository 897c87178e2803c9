"""The notebooks' evaluation grid on a tiny built dataset (BM25 only: no model weights)."""

from pathlib import Path

import pytest

from helpers.experiments import compare, evaluate_grid, ood_average, paper_tables, summary_table, to_markdown

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tiny):
    return tiny


def test_grid_and_weighted_ood_average(data):
    grid = evaluate_grid({"bm25": "bm25"}, data, ["step", "table"], ["ood01", "ood02"], progress=False)
    cells = grid["bm25"]["table"]
    assert set(cells) == {"ood01", "ood02"}
    for c in cells.values():
        assert 0.0 <= c["recall"] <= 1.0 and c["n"] == len(c["per_query"])
    expected = sum(c["recall"] * c["n"] for c in cells.values()) / sum(c["n"] for c in cells.values())
    assert ood_average(grid, "bm25", "table", ["ood01", "ood02"]) == pytest.approx(expected)
    table = summary_table(grid, ood=False, splits=["ood01"])
    assert table["bm25"]["step"] == pytest.approx(round(grid["bm25"]["step"]["ood01"]["recall"], 4))


def test_recall_by_split_has_a_row_per_split_and_the_weighted_ood_average():
    from helpers.experiments import recall_by_split

    grid = {n: {"workflow": {"dev": {"recall": r, "n": 4}, "ood01": {"recall": r / 2, "n": 1},
                             "ood02": {"recall": r, "n": 3}}} for n, r in (("a", 0.8), ("b", 0.4))}
    table = recall_by_split(grid, ["b", "a"], "workflow", ["dev", "ood01"])
    assert list(table.columns) == ["b", "a"] and list(table.index) == ["dev", "ood01", "OOD weighted avg"]
    assert table.loc["ood01", "a"] == 0.4
    # the average weighs every OOD split of the grid by its queries, not only the rows shown
    assert table.loc["OOD weighted avg", "a"] == pytest.approx((0.4 * 1 + 0.8 * 3) / 4)


def test_compare_tests_the_average_the_table_reports(data):
    from helpers.retrieval import BM25Retriever

    grid = evaluate_grid({"bm25": "bm25", "bm25-plus": BM25Retriever(k1=0.3, b=0.9)}, data, ["table"], ["ood01", "ood02"],
                         progress=False)
    res = compare(grid, "bm25", "bm25-plus", ["table"], ["ood01", "ood02"], n_resamples=200)["table"]
    assert res["mean_a"] == pytest.approx(ood_average(grid, "bm25", "table", ["ood01", "ood02"]))
    assert res["delta"] == pytest.approx(ood_average(grid, "bm25-plus", "table", ["ood01", "ood02"]) - res["mean_a"])
    plain = compare(grid, "bm25", "bm25", ["table"], ["ood01", "ood02"], equal_weights=True, n_resamples=200)
    assert plain["table"]["delta"] == 0 and plain["table"]["p_value"] == 1.0
    with pytest.raises(ValueError, match="no split"):
        compare(grid, "bm25", "bm25-plus", ["table"], ["dev"])


def test_max_queries_samples_deterministically(data):
    a = evaluate_grid({"bm25": "bm25"}, data, ["field"], ["dev"], max_queries=5, seed=3, progress=False)
    b = evaluate_grid({"bm25": "bm25"}, data, ["field"], ["dev"], max_queries=5, seed=3, progress=False)
    assert a["bm25"]["field"]["dev"]["n"] == 5
    assert a["bm25"]["field"]["dev"]["per_query"] == b["bm25"]["field"]["dev"]["per_query"]


def test_markdown_table_with_reference():
    md = to_markdown({"bm25": {"step": 0.5}}, ["step", "table"], reference={"bm25": {"step": 0.82}})
    assert "| bm25 | 0.50 (0.82) | – |" in md


def test_paper_tables_hold_the_brief_numbers():
    p = paper_tables()
    assert p["table4_ood"]["bm25"] == {"step": 0.82, "table": 0.79, "field": 0.26}
    assert p["table6_workflow"]["mGTE-base multi-task"]["workflow"] == 0.94


def test_cap_config_names_the_ablation_configs_and_refuses_a_cap_without_one():
    from helpers.experiments import cap_config

    assert cap_config(None) == "multitask_catalog" and cap_config(20) == "multitask_downsampled"
    assert cap_config(5) == "multitask_catalog_cap5"
    with pytest.raises(ValueError, match=r"cap 7: configs/multitask_catalog_cap7.yaml does not exist; caps with a "
                                         r"config: 5, 20, 50"):
        cap_config(7)


def test_the_ablation_configs_differ_from_their_reference_only_by_the_cap():
    from helpers.experiments import cap_config
    from helpers.training.config import TrainConfig

    ref = TrainConfig.from_yaml(REPO / "configs" / f"{cap_config(None)}.yaml").as_dict()
    for cap in (5, 20, 50):
        cfg = TrainConfig.from_yaml(REPO / "configs" / f"{cap_config(cap)}.yaml").as_dict()
        changed = {k for k in ref if cfg[k] != ref[k]} - {"name", "description", "curve_steps"}
        assert changed == {"cap_per_positive"} and cfg["cap_per_positive"] == cap


def test_recall_head_tail_splits_the_gold_objects(data):
    from helpers.data.report import frequency_groups, positive_counts
    from helpers.experiments import recall_head_tail

    grid = evaluate_grid({"bm25": "bm25"}, data, ["table"], ["dev"], progress=False, keep_runs=True)
    res = recall_head_tail(grid, data, ["table"], "dev")["bm25"]["table"]
    assert set(res) <= {"head", "tail", "unseen"} and "head" in res
    cell = grid["bm25"]["table"]["dev"]
    # the groups partition the gold pairs of the evaluated queries: their hits add up to the pooled recall
    from helpers.beir import load_beir
    _, _, qrels = load_beir(data / "beir" / "table" / "dev")
    golds = [(q, d) for q in cell["per_query"] for d, g in qrels[q].items() if g > 0]
    assert sum(g["relevant"] for g in res.values()) == len(golds)
    head = {o for o, g in frequency_groups(positive_counts(data, "table")).items() if g == "head"}
    assert res["head"]["relevant"] == sum(d in head for _, d in golds)
    with pytest.raises(ValueError, match="keep_runs"):
        recall_head_tail(evaluate_grid({"bm25": "bm25"}, data, ["table"], ["dev"], progress=False), data, ["table"])


def test_training_exposure_counts_passes_over_each_capped_pool():
    from helpers.experiments import training_exposure

    log = {"resolved": {"max_steps": 180},
           "data": {"used": {"table": 1839, "field": 1819},
                    "downsampling": {"table": {"after": {"pairs": 913}}, "field": {"after": {"pairs": 10825}}}}}
    exp = training_exposure(log)
    assert exp["steps"] == 180
    assert exp["table"] == {"pool": 913, "used": 1839, "passes": 2.01}
    assert exp["field"]["passes"] == 0.17
    with pytest.raises(ValueError, match="data.used"):
        training_exposure({"data": {"downsampling": {"table": {}}}})


def test_query_prompt_variants_skip_missing_and_repeated_prompts():
    from types import SimpleNamespace

    from helpers.experiments import query_prompt_variants

    tuned = SimpleNamespace(prompts={"workflow_query": "query: W: ", "step_query": "query: S: ", "query": "query: "})
    assert query_prompt_variants(tuned, ["workflow_query", "step_query", "query", "absent"]) == {
        "workflow_query": "query: W: ", "step_query": "query: S: ", "query": "query: "}
    plain = SimpleNamespace(prompts={"workflow_query": "query: ", "step_query": "query: ", "query": "query: "})
    assert query_prompt_variants(plain, ["workflow_query", "step_query", "query"]) == {"workflow_query": "query: "}
    assert query_prompt_variants(SimpleNamespace(), ["query"]) == {}


def test_join_grids_and_with_labels_keep_machine_paths_out():
    from helpers.experiments import join_grids, with_labels

    a = {"m": {"workflow": {"dev": {"recall": 0.5}}}}
    b = {"m": {"workflow": {"ood01": {"recall": 0.6}}}, "n": {"step": {"dev": {"recall": 0.1}}}}
    assert join_grids(a, b) == {"m": {"workflow": {"dev": {"recall": 0.5}, "ood01": {"recall": 0.6}}},
                                "n": {"step": {"dev": {"recall": 0.1}}}}
    labels = {"/x/runs/m": "multi-task", "/x/runs/m-merged": "multi-task, merged", "/x/data": "<dataset>"}
    obj = {"spec": "hybrid:bm25+/x/runs/m-merged@0.3", "/x/runs/m": [{"folder": "/x/data/beir/step/dev"}], 1.0: 2}
    assert with_labels(obj, labels) == {"spec": "hybrid:bm25+multi-task, merged@0.3",
                                        "multi-task": [{"folder": "<dataset>/beir/step/dev"}], 1.0: 2}


def test_run_key_hashes_what_differs_from_the_defaults(tmp_path, monkeypatch):
    """A run's key changes with a setting's value, not with a new option left at its default."""
    from dataclasses import replace

    from helpers import experiments, profiles
    from helpers.training.config import TrainConfig

    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "pairs.arrow").write_bytes(b"pairs")
    key = experiments.run_key("multitask_catalog", "cpu", data)
    changed = experiments._changed(TrainConfig.from_yaml(experiments.REPO / "configs" / "multitask_catalog.yaml"))
    assert changed["batch_size"] == 128 and "cache_dtype" not in changed   # left at its default: not hashed
    cpu = profiles.PROFILES["cpu"]
    monkeypatch.setitem(profiles.PROFILES, "cpu", replace(cpu, catalog_max_batch=None))   # = its default
    assert experiments.run_key("multitask_catalog", "cpu", data) == key
    monkeypatch.setitem(profiles.PROFILES, "cpu", replace(cpu, epochs=2))
    assert experiments.run_key("multitask_catalog", "cpu", data) != key
    monkeypatch.setitem(profiles.PROFILES, "cpu", cpu)
    (data / "train" / "pairs.arrow").write_bytes(b"other pairs")
    assert experiments.run_key("multitask_catalog", "cpu", data) != key
