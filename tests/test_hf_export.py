"""The Hugging Face layout (helpers.data.hf_export, python -m helpers.data export-hf): round trip, determinism,
the card, offline loading, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.beir import load_beir
from helpers.data.__main__ import main as data_main
from helpers.data.hf_export import DATA_CARD, PARTS, _first_table, _section, export_hf, load_task
from helpers.tasks import TASKS, TRAIN_TASKS


@pytest.fixture(scope="module")
def exported(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "export"
    counts = export_hf(built, out)
    return out, counts


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_round_trip(built, exported, tmp_path):
    from datasets import load_from_disk

    out, counts = exported
    for task in TASKS:
        dd = load_task(out, task, cache_dir=tmp_path / "cache")
        assert set(dd) == set(PARTS if task in TRAIN_TASKS else PARTS[:3])
        corpus, queries, qrels = dd["corpus"].to_pandas(), dd["queries"].to_pandas(), dd["qrels"].to_pandas()
        splits = sorted(p.name for p in (built / "beir" / task).iterdir())
        assert sorted(set(corpus["split"])) == splits
        for split in splits:
            c, q, r = load_beir(built / "beir" / task / split)
            cs = corpus[corpus["split"] == split]
            assert {i: {"title": t, "text": x} for i, t, x in zip(cs["_id"], cs["title"], cs["text"])} == c
            qs = queries[queries["split"] == split]
            assert dict(zip(qs["_id"], qs["text"])) == q
            rs = qrels[qrels["split"] == split]
            got: dict = {}
            for qid, did, score in zip(rs["query-id"], rs["corpus-id"], rs["score"]):
                got.setdefault(qid, {})[did] = int(score)
            assert got == r
        if task in TRAIN_TASKS:
            assert dd["train"].to_list() == load_from_disk(str(built / "train" / task)).to_list()
        assert counts[task] == {p: dd[p].num_rows for p in dd}


def test_same_input_gives_byte_identical_files(built, exported, tmp_path):
    out, _ = exported
    again = tmp_path / "again"
    export_hf(built, again)
    assert files_of(again) == files_of(out)


def test_card_configs_load_offline_and_match_the_data_card(exported, tmp_path):
    from datasets import load_dataset

    out, counts = exported
    qrels = load_dataset(str(out), "field-qrels", split="qrels", cache_dir=str(tmp_path / "cache"))
    assert qrels.num_rows == counts["field"]["qrels"]
    assert qrels.column_names == ["split", "query-id", "corpus-id", "score"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlicense: cc-by-4.0\n")
    data_card = DATA_CARD.read_text(encoding="utf-8")
    assert _first_table(_section(data_card, "Tasks and splits")) in card
    assert _section(data_card, "Licence") in card
    assert f"| step | {counts['step']['corpus']:,} | {counts['step']['queries']:,} |" in card


def test_cli(built, tmp_path, capsys):
    assert data_main(["export-hf", str(built), str(tmp_path / "out")]) == 0
    assert '"train": ' in capsys.readouterr().out
    assert (tmp_path / "out" / "workflow" / "corpus.parquet").is_file()
    assert not (tmp_path / "out" / "workflow" / "train.parquet").exists()
    assert data_main(["export-hf", str(built), str(tmp_path / "out")]) == 0  # its own output: replaced


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: tmp, "not a built dataset (no beir/ folder"),
    (lambda tmp: (tmp / "beir").mkdir() or tmp, "no task folder under beir/"),
])
def test_cli_bad_input(tmp_path, capsys, make, expected):
    assert data_main(["export-hf", str(make(tmp_path)), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_folder_it_did_not_create(built, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("keep")
    assert data_main(["export-hf", str(built), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert files_of(out) == {"notes.md": b"keep"}
