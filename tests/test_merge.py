"""helpers.merge: the merge with the base, the saved model, refusals, the dev sweep and its rule, the CLI.

The fine-tuned model is a perturbed copy of minilm-l6 with the study's per-task prompts and a training
length, saved as a folder: fast, and different enough from its base for every check.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from helpers.merge import (MergeSweep, check_mergeable, choose_weight, main, merge_sweep, merge_with_base,
                           mergeable_problem)

TEXTS = ["notify the manager when a P1 incident opens", "Set u_cost_center on the sys_user record"]


@pytest.fixture(scope="module")
def base():
    from helpers.models import load_encoder

    return load_encoder("minilm-l6")


@pytest.fixture(scope="module")
def finetuned(base, tmp_path_factory):
    """``(folder, model)``: minilm-l6 with seeded noise on every weight, task prompts, trained at length 64,
    on two tasks of small dev corpora (table, step: 54 and 129 documents in `tiny`; field has 1,067)."""
    import torch

    from helpers.tasks import task_prompts

    model = copy.deepcopy(base)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    model.prompts = task_prompts(base.prompts)
    model.max_seq_length = 64
    folder = tmp_path_factory.mktemp("ft") / "model"
    model.save(str(folder))
    (folder / "train_summary.json").write_text(json.dumps({"config": {"tasks": ["table", "step"], "base_model": "minilm-l6"}}))
    return folder, model


def _encode(model):
    return model.encode(TEXTS, prompt_name="table_query", convert_to_numpy=True)


def test_ends_are_the_parents_and_the_middle_is_the_average(base, finetuned):
    import torch

    _, ft = finetuned
    ft_state = {k: v.clone() for k, v in ft.state_dict().items()}
    m0, m1, mid = (merge_with_base(ft, base, w) for w in (0.0, 1.0, 0.5))
    sb, sf = base.state_dict(), ft.state_dict()
    for name, tensor in mid.state_dict().items():
        assert torch.equal(m0.state_dict()[name], sb[name]), name
        assert torch.equal(m1.state_dict()[name], sf[name]), name
        if tensor.is_floating_point():
            assert torch.allclose(tensor, (sb[name] + sf[name]) / 2, atol=1e-7), name
    assert any(not torch.equal(sb[n], sf[n]) for n in sb)  # the fixture did perturb the weights
    # the same prompts and length on each side: w = 0 encodes exactly as the base, w = 1 as the fine-tuned
    base_emb = base.encode(TEXTS, prompt=ft.prompts["table_query"], convert_to_numpy=True)
    with_len = copy.deepcopy(ft)
    with_len.max_seq_length = base.max_seq_length
    np.testing.assert_array_equal(_encode(m0), base_emb)
    np.testing.assert_array_equal(_encode(m1), _encode(with_len))
    assert not np.allclose(_encode(mid), base_emb, atol=1e-3)
    # the merge keeps the fine-tuned model's prompts, takes the base's inference length, changes no input
    assert mid.prompts == ft.prompts and mid.max_seq_length == base.max_seq_length == 256
    assert all(torch.equal(ft_state[k], v) for k, v in ft.state_dict().items()) and ft.max_seq_length == 64
    with pytest.raises(ValueError, match="between 0 and 1"):
        merge_with_base(ft, base, 1.5)


def test_mismatched_models_are_refused(base):
    deeper = copy.deepcopy(base)
    deeper[0].auto_model.config.num_hidden_layers = 5
    assert mergeable_problem(deeper, base) == "different backbones: num_hidden_layers 5 vs 6"
    fewer = copy.deepcopy(base)
    del fewer[0].auto_model.encoder.layer[5]
    assert "different parameter names" in mergeable_problem(fewer, base)
    other_tokens = copy.deepcopy(base)
    other_tokens[0].tokenizer.add_tokens(["sys_user_zz"])
    assert mergeable_problem(other_tokens, base) == "different tokenizers (vocabulary or special tokens)"
    from helpers.io import DataError

    with pytest.raises(DataError, match="^cannot merge --model with --base: different tokenizers"):
        check_mergeable(other_tokens, base)


def test_cli_writes_a_merged_model_with_prompts_length_and_card(base, finetuned, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    folder, ft = finetuned
    out = tmp_path / "merged"
    assert main(["--model", str(folder), "--base", "minilm-l6", "--weight", "0.5", "--out", str(out)]) == 0
    loaded = SentenceTransformer(str(out), device="cpu")
    assert loaded.prompts == ft.prompts and loaded.max_seq_length == 256
    np.testing.assert_allclose(_encode(loaded), _encode(merge_with_base(ft, base, 0.5)), atol=1e-6)
    card = (out / "README.md").read_text()
    assert "a merge with the base" in card and "(1 - w) * base + w * fine-tuned" in card
    assert f"| fine-tuned model | `{folder}` |" in card and "| base | `minilm-l6` |" in card
    assert "| weight w | 0.5 (given with `--weight`) |" in card and "| inference length | 256 (the base's) |" in card
    assert "`table_query`" in card and "- merge" in card
    info = json.loads((out / "merge.json").read_text())
    assert info["weight"] == 0.5 and info["base"] == "minilm-l6" and info["sweep"] is None
    assert (out / ".created-by-helpers").is_file()
    # its own output is rewritten; a user's folder is refused unless --overwrite, and its files are kept
    assert main(["--model", str(folder), "--base", "minilm-l6", "--weight", "0.25", "--out", str(out)]) == 0
    assert json.loads((out / "merge.json").read_text())["weight"] == 0.25
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    capsys.readouterr()
    args = ["--model", str(folder), "--base", "minilm-l6", "--weight", "0.5", "--out", str(user)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    assert main(args + ["--overwrite"]) == 0
    assert (user / "notes.txt").read_text() == "keep" and (user / "merge.json").is_file()


def test_cli_errors_are_one_line_and_exit_2(base, finetuned, tmp_path, capsys):
    folder, _ = finetuned
    deeper = copy.deepcopy(base)
    del deeper[0].auto_model.encoder.layer[5]
    deeper[0].auto_model.config.num_hidden_layers = 5
    deeper.save(str(tmp_path / "five-layers"))
    capsys.readouterr()
    cases = {
        "num_hidden_layers": ["--model", str(tmp_path / "five-layers"), "--base", "minilm-l6", "--weight", "0.5"],
        "--base is needed": ["--model", str(tmp_path / "five-layers"), "--weight", "0.5"],
        "between 0 and 1": ["--model", str(folder), "--base", "minilm-l6", "--weight", "-0.1"],
        "unknown encoder": ["--model", str(tmp_path / "missing"), "--base", "minilm-l6", "--weight", "0.5"],
        "folder not found (--choose-on)": ["--model", str(folder), "--base", "minilm-l6",
                                           "--choose-on", str(tmp_path / "nothing")],
        "--tasks: only with --choose-on": ["--model", str(folder), "--base", "minilm-l6", "--weight", "0.5",
                                           "--tasks", "table"],
        "--weights must lie between 0 and 1": ["--model", str(folder), "--base", "minilm-l6", "--choose-on",
                                               str(tmp_path), "--weights", "1.2"],
    }
    for needle, args in cases.items():
        assert main(args + ["--out", str(tmp_path / "out")]) == 2, needle
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out").exists()
    # a usage error (--weight or --choose-on is required) ends the same way, not with argparse's usage block
    assert main(["--model", str(folder), "--base", "minilm-l6", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--weight" in err, err


def _sweep(rows: dict[float, tuple[float, float, float, float]]) -> MergeSweep:
    names = ("step", "table", "field", "workflow")
    results = {w: {t: {"recall@5": v, "headline": "recall@5", "label": f"{t}@5"} for t, v in zip(names, vals)}
               for w, vals in rows.items()}
    return MergeSweep("ft", "base", "dev", ["step", "table", "field"], "workflow", results)


def test_the_rule_on_the_issues_numbers():
    """Issue 24's sweep of the seed-42 multi-task model (dev Step@15, Table@5, Field@5, workflow)."""
    sweep = _sweep({0.0: (0.376, 0.768, 0.698, 0.623), 0.5: (0.503, 0.842, 0.820, 0.693),
                    0.75: (0.522, 0.852, 0.834, 0.650), 1.0: (0.494, 0.868, 0.824, 0.627)})
    choice = choose_weight(sweep)
    assert choice.weight == 0.5 and choice.eligible == [0.5, 0.75, 1.0]  # w = 0 loses the trained tasks
    assert "w = 1 minus 0.01" in choice.rule
    # ties on workflow go to the larger w; a stricter tolerance leaves fewer candidates
    tied = _sweep({0.0: (0.5, 0.5, 0.5, 0.7), 0.5: (0.6, 0.6, 0.6, 0.7), 1.0: (0.6, 0.6, 0.6, 0.7)})
    assert choose_weight(tied).weight == 1.0 and choose_weight(tied).eligible == [0.5, 1.0]
    assert choose_weight(sweep, tolerance=0.0).weight == 0.75
    assert MergeSweep.from_dict(json.loads(json.dumps(sweep.as_dict()))).results == sweep.results
    sweep.split = "ood01"
    with pytest.raises(ValueError, match="dev split only"):
        choose_weight(sweep)


def test_sweep_refuses_other_splits_before_any_work(finetuned):
    folder, _ = finetuned
    for split in ("ood01", "dev-de", "test", "train"):
        with pytest.raises(ValueError, match="dev split only"):
            merge_sweep(str(folder), "minilm-l6", [0.5], "/nonexistent", ["table"], split=split)


@pytest.mark.slow
def test_choose_on_dev_sweeps_chooses_and_saves(base, finetuned, tiny, tmp_path, capsys):
    """``--choose-on``: the sweep on dev (tasks from train_summary.json, plus workflow), the rule's w, the
    model saved at that w with the sweep in its card and merge.json; the plot draws from the saved sweep."""
    import matplotlib

    matplotlib.use("Agg")
    from helpers.evaluation import evaluate_model
    from helpers.plots import merge_sweep as plot_sweep

    folder, ft = finetuned
    out = tmp_path / "chosen"
    # no --base: the one its train_summary.json names
    assert main(["--model", str(folder), "--choose-on", str(tiny), "--weights", "0.5",
                 "--max-queries", "8", "--out", str(out)]) == 0
    assert "chosen w = " in capsys.readouterr().out
    info = json.loads((out / "merge.json").read_text())
    sweep = MergeSweep.from_dict(info["sweep"])
    assert info["base"] == sweep.base == "minilm-l6"
    assert sweep.weights == [0.0, 0.5, 1.0] and sweep.tasks == ["table", "step"] and sweep.split == "dev"
    assert info["weight"] == info["chosen_on_dev"]["weight"] == choose_weight(sweep).weight
    assert "### Dev sweep" in (out / "README.md").read_text()
    # each point is the one evaluation of the merged model on dev
    direct = evaluate_model(merge_with_base(ft, base, 1.0), tiny, ["table", "workflow"], ["dev"], max_queries=8)
    assert sweep.results[1.0]["table"] == direct["dev"]["table"]
    assert sweep.results[1.0]["workflow"] == direct["dev"]["workflow"]
    fig = plot_sweep(sweep, chosen=info["weight"])
    assert len(fig.axes[0].lines) == 4  # table, step, workflow, the chosen w


@pytest.mark.slow
def test_sweep_encodes_each_task_at_its_given_length_and_precision(base, finetuned, tiny):
    """A notebook sweeps at the length it reports the untrained task at: ``max_seq_length`` per task
    reaches the evaluation, the other tasks keep the merged model's own length, and the settings are
    recorded (and read back) with the sweep."""
    from helpers.evaluation import evaluate_model

    _, ft = finetuned
    sweep = merge_sweep(ft, base, [1.0], tiny, ["table"], max_queries=8, max_seq_length={"workflow": 16, "step": 8})
    merged = merge_with_base(ft, base, 1.0)
    short = evaluate_model(merged, tiny, ["workflow"], ["dev"], max_queries=8, max_seq_length=16)["dev"]["workflow"]
    own = evaluate_model(merged, tiny, ["table"], ["dev"], max_queries=8)["dev"]["table"]
    assert sweep.results[1.0]["workflow"] == short and sweep.results[1.0]["table"] == own
    assert sweep.max_seq_length == {"workflow": 16} and sweep.precision == "fp32"   # step: not swept
    again = MergeSweep.from_dict(json.loads(json.dumps(sweep.as_dict())))
    assert again.max_seq_length == {"workflow": 16} and again.results == sweep.results
