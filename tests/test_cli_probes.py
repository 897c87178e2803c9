"""Bad input to every command line (issue 26): exit status 2, exactly one line on stderr (``error: ...``
naming the file, line, field or flag), no traceback, and every file that was there before is
byte-identical afterwards, with nothing new left behind.

Each probe calls the CLI's ``main(argv)`` in this process, in a sandbox of user files; none trains and
only the probes about a model folder open one. Ctrl-C during training needs a real process:
:func:`test_ctrl_c_during_training_names_the_checkpoint_and_the_resume_command`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CLIS = {"data": "helpers.data.__main__", "evaluate": "helpers.evaluate", "train": "helpers.training.cli",
        "bench": "helpers.bench", "bench_train": "helpers.bench_train", "sweep": "helpers.sweep",
        "check_results": "helpers.check_results", "reproduce": "helpers.reproduce", "models": "helpers.models",
        "merge": "helpers.merge", "fusion": "helpers.fusion", "mteb": "helpers.mteb",
        "readme_tables": "helpers.readme_tables", "bench_setup": "helpers.bench_setup", "seeds": "helpers.seeds"}

# The sandbox every probe runs in: a user's files (kept byte-identical) and bad inputs.
SANDBOX = {
    "notes.txt": "my notes\n",
    "user.json": '{"mine": 1}\n',
    "userdir/README.md": "my folder\n",
    "userdir/beir/mine.txt": "my qrels\n",
    "userdir/checkpoints/my-model.bin": "weights\n",
    "nbout/00_environment.ipynb": '{"cells": [], "metadata": {}}\n',
    "pairs/bad.jsonl": '{"task": "step", "query": "a", "positive": "b"}\n{"task": "step", "query": \n',
    "pairs/nopositive.jsonl": '{"task": "step", "query": "a"}\n',
    "pairs/badtask.jsonl": '{"task": "stpe", "query": "a", "positive": "b"}\n',
    "cfg/badyaml.yaml": "name: x\ntasks: [step\n",
    "cfg/empty.yaml": "# a config with nothing in it\n",
    "cfg/unknown.yaml": "name: x\ntasks: [step]\nlearning_rat: 1e-4\n",
    "cfg/epochs.yaml": "name: x\ntasks: [step]\nepochs: two\n",
    "cfg/list.yaml": "- step\n",
    "cfg/nocorpora.yaml": "name: x\ntasks: [step]\nlearning_rate: 1e-4\n",
    "beir/badjson/corpus.jsonl": '{"_id": "d1", "title": "", "text": "a"}\n{"_id": "d2", "text": \n',
    "beir/badjson/queries.jsonl": '{"_id": "q1", "text": "a"}\n',
    "beir/badjson/qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
    "beir/empty/corpus.jsonl": "",
    "beir/empty/queries.jsonl": '{"_id": "q1", "text": "a"}\n',
    "beir/empty/qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
    "beir/dangling/corpus.jsonl": '{"_id": "d1", "title": "", "text": "a"}\n',
    "beir/dangling/queries.jsonl": '{"_id": "q1", "text": "a"}\n',
    "beir/dangling/qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\tnowhere\t1\n",
    "model_trunc/config.json": "{}\n",
    "model_noconfig/notes.txt": "not a model\n",
    "expected/badyaml.yaml": "00_x:\n  a.b: {value: 0.5, tol: 0.1\n",
    "expected/empty.yaml": "# no entries yet\n",
    "expected/nonnumeric.yaml": "00_x:\n  a.b: {value: abc, tol: 0.1}\n",
    "expected/negtol.yaml": "00_x:\n  a.b: {value: 0.5, tol: -1}\n",
    "expected/list.yaml": "- 00_x\n",
    "expected/ok.yaml": "00_x:\n  a.b: {value: 0.5, tol: 0.1}\n",
    "expected/absent.yaml": "# refreshed from results\n09_absent:\n  a.b: {value: 0.5, tol: 0.1}\n",
    "results_corrupt/00_x.json": "{not json\n",
    "results_nosummary/00_x.json": '{"profile": "cpu"}\n',
    "results_ok/00_x.json": '{"summary": {"a": {"b": 0.5}}}\n',
    "runs/smoke/sweep/lr=1e-4@30.json": "{truncated\n",
    "readme/table3.md": "# mine\n<!-- results-table: table3 (python -m helpers.readme_tables) -->\n"
                        "<!-- /results-table -->\n",
    "readme/unknown.md": "<!-- results-table: tabel3 (python -m helpers.readme_tables) -->\n<!-- /results-table -->\n",
    "readme/unclosed.md": "<!-- results-table: table3 (python -m helpers.readme_tables) -->\n| a |\n",
}


def _truncated_safetensors() -> bytes:
    header = b'{"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}'
    return len(header).to_bytes(8, "little") + header + b"\0" * 10   # 64 bytes of data promised, 10 there


# (id, cli, argv; {s}: the sandbox, {ds}: a small built dataset, {ex}: data/examples,
#  {cfg}: configs/example.yaml, {cat}: configs/multitask_catalog.yaml; text the error line must hold)
PROBES = [
    # helpers.data
    ("data-build-out-is-a-file", "data", "build --out {s}/notes.txt --profile smoke", "must be a folder"),
    ("data-build-out-user-folder", "data", "build --out {s}/userdir --profile smoke", "did not create"),
    ("data-build-unknown-profile", "data", "build --out {s}/new --profile tiny", "unknown profile 'tiny'"),
    ("data-build-bad-seed", "data", "build --out {s}/new --seed abc", "--seed"),
    ("data-build-no-out", "data", "build --profile smoke", "--out"),
    ("data-build-unknown-language", "data", "build --out {s}/new --profile smoke --languages xx",
     "--languages: no translation 'xx'"),
    ("data-unknown-command", "data", "rebuild {s}", "invalid choice"),
    ("data-validate-missing-folder", "data", "validate {s}/nowhere", "folder not found"),
    ("data-audit-not-a-dataset", "data", "audit {s}/userdir/checkpoints", "no beir/ folder"),
    ("data-audit-no-task-folders", "data", "audit {s}/userdir --min 0.95", "no task/split folder"),
    ("data-audit-min-out-of-range", "data", "audit {ds} --min 1.5", "--min"),
    ("data-audit-splits-match-nothing", "data", "audit {ds} --splits 'nosuch*' --min 0.95", "matches no split"),
    ("data-audit-json-is-a-folder", "data", "audit {ds} --json {s}/userdir", "must be a file path"),
    ("data-audit-json-user-file", "data", "audit {ds} --json {s}/user.json", "--overwrite"),
    ("data-export-strings-without-lang", "data", "export-strings", "--lang"),
    ("data-check-language-unknown", "data", "check-language xx", "xx.yaml"),
    ("data-check-language-zero-flows", "data", "check-language de --flows 0", "--flows"),
    # helpers.evaluate
    ("evaluate-unknown-retriever", "evaluate", "--retriever bm26 --data {ds}/beir/step/dev",
     "--retriever: unknown retriever 'bm26'"),
    ("evaluate-missing-data", "evaluate", "--retriever bm25 --data {s}/nowhere", "folder not found"),
    ("evaluate-k-zero", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --k 0", "--k"),
    ("evaluate-k-not-a-number", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --k five", "--k"),
    ("evaluate-out-user-file", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --out {s}/user.json",
     "--overwrite"),
    ("evaluate-out-is-a-folder", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --out {s}/userdir",
     "must be a file path"),
    ("evaluate-unknown-task", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --task stpe", "stpe"),
    ("evaluate-max-queries-zero", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --max-queries 0",
     "--max-queries"),
    ("evaluate-splits-on-one-folder", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --splits dev",
     "--splits"),
    ("evaluate-malformed-corpus", "evaluate", "--retriever bm25 --data {s}/beir/badjson", "corpus.jsonl:2"),
    ("evaluate-empty-corpus", "evaluate", "--retriever bm25 --data {s}/beir/empty", "corpus"),
    ("evaluate-dangling-qrel", "evaluate", "--retriever bm25 --data {s}/beir/dangling", "nowhere"),
    ("evaluate-missing-qrels-split", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --split other",
     "other"),
    ("evaluate-bad-hybrid", "evaluate", "--retriever hybrid:bm25 --data {ds}/beir/step/dev", "hybrid"),
    ("evaluate-unknown-precision", "evaluate", "--retriever bm25 --data {ds}/beir/step/dev --precision fp64",
     "--precision"),
    ("evaluate-truncated-model", "evaluate", "--retriever {s}/model_trunc --data {ds}/beir/step/dev",
     "model.safetensors"),
    # helpers.train
    ("train-config-missing", "train", "--config {s}/cfg/nope.yaml --profile smoke", "config file not found"),
    ("train-config-bad-yaml", "train", "--config {s}/cfg/badyaml.yaml --profile smoke", "invalid YAML"),
    ("train-config-empty", "train", "--config {s}/cfg/empty.yaml --profile smoke", "empty"),
    ("train-config-not-a-mapping", "train", "--config {s}/cfg/list.yaml --profile smoke", "mapping"),
    ("train-config-unknown-key", "train", "--config {s}/cfg/unknown.yaml --profile smoke", "learning_rat"),
    ("train-config-bad-number", "train", "--config {s}/cfg/epochs.yaml --profile smoke", "(field 'epochs')"),
    ("train-empty-tasks", "train", "--config {cfg} --profile smoke --tasks ''", "--tasks names no task"),
    ("train-unknown-task", "train", "--config {cfg} --profile smoke --tasks step,tabel", "valid tasks"),
    ("train-max-steps-zero", "train", "--config {cfg} --profile smoke --max-steps 0", "--max-steps"),
    ("train-threads-zero", "train", "--config {cfg} --profile smoke --threads 0", "--threads"),
    ("train-unknown-profile", "train", "--config {cfg} --profile gpu", "unknown profile 'gpu'"),
    ("train-data-and-jsonl", "train", "--config {cfg} --profile smoke --data {ds} --train-jsonl {ex}/train.jsonl",
     "either --data or --train-jsonl"),
    ("train-out-user-file", "train", "--config {cfg} --profile smoke --out {s}/notes.txt", "must be a folder"),
    ("train-out-user-folder", "train", "--config {cfg} --profile smoke --out {s}/userdir", "--overwrite"),
    ("train-jsonl-missing", "train", "--config {cfg} --profile smoke --out {s}/run --train-jsonl {s}/nope.jsonl",
     "training file not found"),
    ("train-jsonl-malformed", "train",
     "--config {cfg} --profile smoke --out {s}/run --train-jsonl {s}/pairs/bad.jsonl", "bad.jsonl:2"),
    ("train-jsonl-missing-column", "train",
     "--config {cfg} --profile smoke --out {s}/run --train-jsonl {s}/pairs/nopositive.jsonl", "positive"),
    ("train-jsonl-unknown-task", "train",
     "--config {cfg} --profile smoke --out {s}/run --train-jsonl {s}/pairs/badtask.jsonl", "stpe"),
    ("train-missing-data-folder", "train", "--config {s}/cfg/nocorpora.yaml --profile smoke --out {s}/run "
     "--data {s}/nowhere", "nowhere"),
    ("train-corpora-missing", "train", "--config {cfg} --profile smoke --out {s}/run --corpora {s}/nowhere",
     "evaluation corpora folder not found"),
    ("train-eval-splits-name-no-split", "train", "--config {cfg} --profile smoke --out {s}/run --eval-splits nosuch",
     "no split 'nosuch'"),
    ("train-eval-splits-without-corpora", "train", "--config {s}/cfg/nocorpora.yaml --profile smoke --out {s}/run "
     "--train-jsonl {ex}/train.jsonl --eval-splits dev", "nothing to evaluate on"),
    ("train-model-path-missing-in-smoke", "train", "--config {cfg} --profile smoke --out {s}/run --no-eval "
     "--model {s}/no-such-model", "no-such-model"),
    ("train-model-folder-not-a-model", "train", "--config {cfg} --profile smoke --out {s}/run --no-eval "
     "--model {s}/model_noconfig", "not a model folder"),
    ("train-top-layers-beyond-the-model", "train", "--config {cat} --profile smoke --data {ds} --out {s}/run "
     "--no-eval --set train_top_layers=9", "field 'train_top_layers': must be between 1 and the model's 6 layers, got 9"),
    ("train-catalog-key-with-paper-recipe", "train", "--config {cfg} --profile smoke --out {s}/run "
     "--set catalog_loss=sum", "catalog_loss applies to the catalog recipe only"),
    ("train-paper-key-with-catalog-recipe", "train", "--config {cat} --profile smoke --data {ds} --out {s}/run "
     "--set hard_negatives=bm25", "hard_negatives applies to the paper recipe only"),
    ("train-layer-cache-dir-is-a-file", "train", "--config {cat} --profile smoke --data {ds} --out {s}/run "
     "--set layer_cache_dir={s}/notes.txt", "the layer cache folder is a file"),
    # helpers.bench
    ("bench-unknown-retriever", "bench", "--retrievers bm25 bm26 --n-docs 10 --n-queries 2", "unknown retriever"),
    ("bench-missing-data", "bench", "--retrievers bm25 --data {s}/nowhere", "folder not found (--data)"),
    ("bench-data-without-beir", "bench", "--retrievers bm25 --data {s}/userdir/checkpoints", "no BEIR folder"),
    ("bench-k-zero", "bench", "--retrievers bm25 --k 0", "--k"),
    ("bench-n-docs-zero", "bench", "--retrievers bm25 --n-docs 0", "--n-docs"),
    ("bench-n-docs-negative", "bench", "--retrievers bm25 --n-docs -5", "--n-docs"),
    ("bench-out-user-file", "bench", "--retrievers bm25 --n-docs 10 --n-queries 2 --out {s}/user.json",
     "--overwrite"),
    ("bench-out-is-a-folder", "bench", "--retrievers bm25 --out {s}/userdir", "must be a file path"),
    ("bench-truncated-model", "bench", "--retrievers {s}/model_trunc --n-docs 10 --n-queries 2",
     "model.safetensors"),
    ("bench-precision-without-dense", "bench", "--retrievers bm25 --precision fp32 int8", "dense retriever"),
    ("bench-precision-task-missing", "bench", "--retrievers minilm-l6 --precision fp32 int8 --data {s}/userdir",
     "no BEIR folder for task"),
    # helpers.bench_train
    ("bench-train-zero-pairs", "bench_train", "--pairs 0 --json {s}/bt.json", "--pairs"),
    ("bench-train-zero-batch", "bench_train", "--batch-size 0 --json {s}/bt.json", "--batch-size"),
    ("bench-train-unknown-profile", "bench_train", "--profile gpu --json {s}/bt.json", "unknown profile 'gpu'"),
    ("bench-train-unknown-model", "bench_train", "--model bert --json {s}/bt.json", "--model"),
    ("bench-train-threads-negative", "bench_train", "--threads -1 --json {s}/bt.json", "--threads"),
    ("bench-train-json-user-file", "bench_train", "--json {s}/user.json", "--overwrite"),
    ("bench-train-json-is-a-folder", "bench_train", "--json {s}/userdir", "must be a file path"),
    ("bench-train-data-not-a-dataset", "bench_train", "--json {s}/bt.json --data {s}/userdir", "no train/ folder"),
    # helpers.sweep
    ("sweep-unknown-profile", "sweep", "--profile gpu", "unknown profile 'gpu'"),
    ("sweep-zero-steps", "sweep", "--variant top4 --steps 0", "--steps"),
    ("sweep-unknown-variant", "sweep", "--variant lr=1", "--variant"),
    ("sweep-nothing-to-report", "sweep", "--profile full", "nothing to report"),
    ("sweep-corrupt-record", "sweep", "--profile smoke --report --json {s}/sweep.json", "lr=1e-4@30.json"),
    ("sweep-json-user-file", "sweep", "--profile smoke --report --json {s}/user.json", "--overwrite"),
    ("sweep-json-is-a-folder", "sweep", "--profile smoke --report --json {s}/userdir", "must be a file path"),
    ("sweep-data-missing", "sweep", "--profile smoke --variant top4 --steps 2 --data {s}/nowhere --json {s}/s.json",
     "no train/ folder"),
    ("sweep-threads-zero", "sweep", "--threads 0", "--threads"),
    # helpers.readme_tables
    ("readme-tables-no-markers", "readme_tables", "--readme {s}/userdir/README.md --results {s}/results_ok",
     "no results-table markers"),
    ("readme-tables-readme-missing", "readme_tables", "--readme {s}/nope.md --results {s}/results_ok",
     "README not found (--readme)"),
    ("readme-tables-results-missing", "readme_tables", "--readme {s}/readme/table3.md --results {s}/nowhere",
     "results folder not found (--results)"),
    ("readme-tables-results-file-missing", "readme_tables", "--readme {s}/readme/table3.md --results {s}/results_ok",
     "02_single_vs_multitask.json: results file not found"),
    ("readme-tables-unknown-table", "readme_tables", "--readme {s}/readme/unknown.md --results {s}/results_ok",
     "unknown results table 'tabel3'"),
    ("readme-tables-unclosed", "readme_tables", "--readme {s}/readme/unclosed.md --results {s}/results_ok --check",
     "has no closing"),
    ("readme-tables-unknown-flag", "readme_tables", "--chek", "--chek"),
    # helpers.check_results
    ("check-results-bad-yaml", "check_results", "--results {s}/results_ok --expected {s}/expected/badyaml.yaml",
     "invalid YAML"),
    ("check-results-empty-expected", "check_results", "--results {s}/results_ok --expected {s}/expected/empty.yaml",
     "no expected values"),
    ("check-results-non-numeric-value", "check_results",
     "--results {s}/results_ok --expected {s}/expected/nonnumeric.yaml", "(field '00_x.a.b')"),
    ("check-results-negative-tolerance", "check_results",
     "--results {s}/results_ok --expected {s}/expected/negtol.yaml", "tol"),
    ("check-results-not-a-mapping", "check_results", "--results {s}/results_ok --expected {s}/expected/list.yaml",
     "mapping"),
    ("check-results-corrupt-results", "check_results",
     "--results {s}/results_corrupt --expected {s}/expected/ok.yaml", "00_x.json"),
    ("check-results-no-summary", "check_results",
     "--results {s}/results_nosummary --expected {s}/expected/ok.yaml", "summary"),
    ("check-results-expected-missing", "check_results", "--results {s}/results_ok --expected {s}/nope.yaml",
     "not found"),
    ("check-results-results-missing", "check_results", "--results {s}/nowhere --expected {s}/expected/ok.yaml",
     "results folder not found"),
    ("check-results-write-without-results", "check_results",
     "--results {s}/results_ok --expected {s}/expected/absent.yaml --write", "09_absent"),
    # helpers.reproduce
    ("reproduce-unknown-profile", "reproduce", "--profile gpu --out {s}/nb", "unknown profile 'gpu'"),
    ("reproduce-only-matches-nothing", "reproduce", "--profile smoke --only 'zz_*' --out {s}/nb",
     "matches no notebook"),
    ("reproduce-out-is-a-file", "reproduce", "--profile smoke --only '00_*' --out {s}/notes.txt", "must be a folder"),
    ("reproduce-out-holds-user-notebook", "reproduce", "--profile smoke --only '00_*' --out {s}/nbout",
     "--overwrite"),
    ("reproduce-clean-missing-file", "reproduce", "--clean {s}/nope.ipynb", "file not found"),
    # helpers.models
    ("models-unknown-encoder", "models", "check bert-base", "unknown encoder"),
    ("models-truncated-model", "models", "check {s}/model_trunc", "model.safetensors"),
    ("models-folder-not-a-model", "models", "check {s}/model_noconfig", "not a model folder"),
    ("models-unknown-command", "models", "download me5-small", "invalid choice"),
    ("models-check-without-name", "models", "check", "name"),
    # helpers.merge
    ("merge-out-user-folder", "merge", "--model {s}/model_noconfig --base minilm-l6 --weight 0.5 --out {s}/userdir",
     "--overwrite"),
    ("merge-no-base", "merge", "--model {s}/model_noconfig --weight 0.5 --out {s}/m", "--base is needed"),
    ("merge-sweep-flag-with-weight", "merge",
     "--model {s}/model_noconfig --base minilm-l6 --weight 0.5 --max-queries 3 --out {s}/m", "only with --choose-on"),
    ("merge-choose-on-missing", "merge",
     "--model {s}/model_noconfig --base minilm-l6 --choose-on {s}/nowhere --out {s}/m", "--choose-on"),
    ("merge-weight-and-choose-on", "merge",
     "--model {s}/model_noconfig --weight 0.5 --choose-on {ds} --out {s}/m", "not allowed with"),
    ("merge-max-queries-zero", "merge", "--model {s}/model_noconfig --choose-on {ds} --max-queries 0 --out {s}/m",
     "--max-queries"),
    ("merge-unknown-task", "merge",
     "--model {s}/model_noconfig --base minilm-l6 --choose-on {ds} --tasks stpe --out {s}/m", "stpe"),
    # helpers.mteb
    ("mteb-batch-size-zero", "mteb", "--model bm25 --data {ds} --out {s}/mt --batch-size 0", "--batch-size"),
    ("mteb-out-user-folder", "mteb", "--model bm25 --data {ds} --out {s}/userdir", "--overwrite"),
    ("mteb-unknown-task", "mteb", "--model bm25 --data {ds} --out {s}/mt --tasks stpe", "stpe"),
    ("mteb-not-a-dataset", "mteb", "--model bm25 --data {s}/userdir/beir --out {s}/mt", "not a built dataset"),
    # helpers.data export-hf
    ("data-export-hf-out-user-folder", "data", "export-hf {ds} {s}/userdir", "--overwrite"),
    ("data-export-hf-not-a-dataset", "data", "export-hf {s}/userdir/beir {s}/hf", "userdir/beir"),
    # helpers.bench_setup (each fails before any venv is made)
    ("bench-setup-requirements-missing", "bench_setup", "--requirements {s}/nowhere.txt", "nowhere.txt"),
    ("bench-setup-unknown-package", "bench_setup", "--without notapkg", "no requirement line for notapkg"),
    ("bench-setup-repeats-zero", "bench_setup", "--repeats 0", "repeats"),
    # helpers.seeds (each fails before any training)
    ("seeds-one-seed", "seeds", "--profile smoke --seeds 3 --out {s}/seeds.json", "at least two distinct seeds"),
    ("seeds-negative-seed", "seeds", "--profile smoke --seeds 0 -1 --out {s}/seeds.json", "--seeds"),
    ("seeds-out-user-file", "seeds", "--profile smoke --seeds 0 1 --out {s}/user.json", "--overwrite"),
    ("seeds-out-folder", "seeds", "--profile smoke --seeds 0 1 --out {s}/userdir", "must be a file path"),
    ("seeds-unknown-profile", "seeds", "--profile tiny --seeds 0 1", "unknown profile"),
    # helpers.fusion
    ("fusion-not-a-hybrid", "fusion", "--retriever bm25 --data {ds}", "expected a hybrid"),
    ("fusion-weighted-hybrid", "fusion", "--retriever hybrid:bm25+minilm-l6@0.5 --data {ds}", "without weights"),
    ("fusion-data-missing", "fusion", "--retriever hybrid:bm25+minilm-l6 --data {s}/nowhere", "--data"),
    ("fusion-out-user-file", "fusion", "--retriever hybrid:bm25+minilm-l6 --data {ds} --out {s}/user.json",
     "--overwrite"),
    ("fusion-unknown-task", "fusion", "--retriever hybrid:bm25+minilm-l6 --data {ds} --tasks stpe", "stpe"),
    ("fusion-max-queries-zero", "fusion", "--retriever hybrid:bm25+minilm-l6 --data {ds} --max-queries 0",
     "--max-queries"),
]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    s = tmp_path / "sandbox"
    for rel, text in SANDBOX.items():
        (s / rel).parent.mkdir(parents=True, exist_ok=True)
        (s / rel).write_text(text, encoding="utf-8")
    (s / "model_trunc" / "model.safetensors").write_bytes(_truncated_safetensors())
    # runs and generated data of the default locations go to the sandbox, never into this checkout
    monkeypatch.setenv("CASE_STUDY_RUNS", str(s / "runs"))
    monkeypatch.setenv("CASE_STUDY_DATA", str(s / "generated"))
    monkeypatch.delenv("CASE_STUDY_PROFILE", raising=False)
    monkeypatch.delenv("HELPERS_TRACEBACK", raising=False)
    # a probe that fails once the model is loaded (train_top_layers beyond its layers) would otherwise show
    # transformers' "Loading weights" progress bar above its error line
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr(hf_logging, "_tqdm_active", False)
    return s


def snapshot(*roots: Path) -> dict[str, str | None]:
    """Every file (sha256) and folder (None) under ``roots``: a probe must change none and add none."""
    out: dict[str, str | None] = {}
    for root in roots:
        if not root.exists():
            out[str(root)] = "absent"
            continue
        for p in sorted(root.rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    return out


def repo_outputs() -> list[Path]:
    """What a careless CLI would write in this checkout: committed results, configs, examples, notebooks,
    the smoke and full profiles' results folders."""
    return [REPO / "results", REPO / "configs", REPO / "data" / "examples", REPO / "notebooks",
            REPO / "build" / "notebooks-smoke" / "results", REPO / "build" / "notebooks-full" / "results",
            REPO / "runs" / "bench_train.json"]


@pytest.mark.parametrize("probe_id, cli, argv, expected", PROBES, ids=[p[0] for p in PROBES])
def test_bad_input_fails_with_one_line_and_changes_nothing(probe_id, cli, argv, expected, sandbox, tiny, capsys):
    args = [a.format(s=sandbox, ds=tiny, ex=REPO / "data" / "examples", cfg=REPO / "configs" / "example.yaml",
                     cat=REPO / "configs" / "multitask_catalog.yaml") for a in shlex.split(argv)]
    roots = [sandbox, tiny, *repo_outputs()]
    before = snapshot(*roots)
    main = importlib.import_module(CLIS[cli]).main
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), f"exit {code}, stderr:\n{err}"
    assert expected in lines[0], lines[0]
    assert snapshot(*roots) == before, "a file was changed, removed or added"


def test_every_command_line_of_the_package_is_probed():
    """A new ``python -m helpers.<tool>`` must join CLIS (and so get probes): modules with a ``__main__``
    block or a ``__main__.py``, the ``helpers.train`` shim standing for ``helpers.training.cli``."""
    found = set()
    for path in (REPO / "helpers").rglob("*.py"):
        if path.name == "__main__.py" or 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
            found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    found = {"helpers.training.cli" if m == "helpers.train" else m for m in found}
    assert found == set(CLIS.values())


def test_the_probes_cover_every_cli_and_enough_cases():
    assert {cli for _, cli, _, _ in PROBES} == set(CLIS)
    assert len(PROBES) >= 100   # the README says "over a hundred"
    assert len({p[0] for p in PROBES}) == len(PROBES)


# ---------------------------------------------------------------------------------------------- Ctrl-C

LIBRARY_LINE = re.compile(r"^(\[transformers\] |(DEBUG|INFO|WARNING) (transformers|sentence_transformers|accelerate|datasets)[.:])")


@pytest.mark.slow
def test_ctrl_c_during_training_names_the_checkpoint_and_the_resume_command(tmp_path):
    """SIGINT to a tiny smoke-profile run once it has saved a checkpoint: exit status 130, one line naming
    that checkpoint and the command that continues the run; the checkpoints survive."""
    out = tmp_path / "run"
    argv = ["--config", str(REPO / "configs" / "example.yaml"), "--profile", "smoke", "--model", "minilm-l6",
            "--train-jsonl", str(REPO / "data" / "examples" / "train.jsonl"), "--no-eval", "--quiet",
            "--max-steps", "500", "--save-steps", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore",
           "TQDM_DISABLE": "1"}   # the libraries' own progress bars (loading, saving), which --quiet cannot reach
    p = subprocess.Popen([sys.executable, "-m", "helpers.train", *argv], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while not (out / "checkpoints" / "checkpoint-2").is_dir() and p.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert p.poll() is None, p.communicate()[1][-3000:]
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    # transformers may warn about checkpoint ordering on some filesystems ("mtime may not be reliable ..."),
    # through its own handler ("[transformers] ...") and, on some machines, the root one too ("WARNING
    # transformers.trainer_utils: ..."): a library's lines, not ours; ours is the one line that follows
    lines = [x for x in err.strip().splitlines() if not LIBRARY_LINE.match(x)]
    assert p.returncode == 130 and len(lines) == 1, f"exit {p.returncode}, stderr:\n{err[-3000:]}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    line = lines[0]
    assert line.startswith("interrupted; last checkpoint ") and str(out / "checkpoints" / "checkpoint-") in line
    checkpoint = Path(line.split("last checkpoint ", 1)[1].split(";", 1)[0])
    assert checkpoint.is_dir()
    assert line.endswith("continue with: python -m helpers.train " + shlex.join(argv + ["--resume"]))
