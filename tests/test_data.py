"""The dataset: catalog checks, determinism, validation, leakage and translation coverage."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from helpers.data.build import build_dataset, generate_flows
from helpers.data.catalog import CATALOG_DIR, catalog_stats, load_catalog
from helpers.data.render import Renderer
from helpers.data.language import LANG_DIR, load_pools, split_pool
from helpers.data.translate import missing_strings
from helpers.data.validate import validate_dataset
from helpers.io import DataError
from helpers.splits import LANGUAGES

from tests.conftest import SMALL


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_catalog_meets_the_promised_counts(catalog):
    st = catalog_stats(catalog)
    assert len(st["domains"]) == 11
    assert st["steps_total"] >= 300
    assert sum(d["split"] == "train" for d in st["domains"].values()) == 1
    for name, d in st["domains"].items():
        assert d["tables"] >= 25, name
        assert d["fields_per_table"] >= 12, name
        assert d["spokes"] >= 20, name
        assert d["task_tables"] >= 8, name
        assert d["systems"] >= 4, name


def test_same_seed_gives_byte_identical_files(built, tmp_path):
    again = tmp_path / "b"
    build_dataset(again, seed=3, profile="smoke", progress=False, **SMALL)
    assert _files(built) == _files(again)


def test_other_seed_gives_other_data(built, tmp_path):
    other = tmp_path / "c"
    build_dataset(other, seed=4, profile="smoke", progress=False, **SMALL)
    a = (built / "beir/step/dev/queries.jsonl").read_bytes()
    assert a != (other / "beir/step/dev/queries.jsonl").read_bytes()


def test_layout_and_validation(built):
    stats = json.loads((built / "stats.json").read_text())
    for task in ("step", "table", "field", "workflow"):
        for split in ["dev"] + [f"ood{i:02d}" for i in range(1, 11)] + [f"dev-{x}" for x in LANGUAGES]:
            folder = built / "beir" / task / split
            assert (folder / "corpus.jsonl").is_file() and (folder / "qrels" / "test.tsv").is_file(), folder
    assert not (built / "beir/workflow/train").exists(), "workflow retrieval is never trained on"
    assert stats["train_pairs"]["total"] > 0
    assert validate_dataset(built) == []


def test_translated_splits_ask_devs_questions_and_differ_in_text(built):
    dev_ids = {line.split("\t")[0] for line in (built / "beir/field/dev/qrels/test.tsv").read_text().splitlines()[1:]}
    for lang in LANGUAGES:
        ids = {line.split("\t")[0] for line in (built / f"beir/field/dev-{lang}/qrels/test.tsv").read_text().splitlines()[1:]}
        assert ids <= dev_ids and len(ids) >= 0.7 * len(dev_ids), lang  # see test_audit for the dropped count
        q_en = (built / "beir/step/dev/queries.jsonl").read_text(encoding="utf-8")
        assert (built / f"beir/step/dev-{lang}/queries.jsonl").read_text(encoding="utf-8") != q_en
    he = (built / "beir/step/dev-he/queries.jsonl").read_text(encoding="utf-8")
    ja = (built / "beir/step/dev-ja/queries.jsonl").read_text(encoding="utf-8")
    assert any("\u05d0" <= ch <= "\u05ea" for ch in he), "Hebrew queries must be in Hebrew script"
    assert any("\u3040" <= ch <= "\u30ff" for ch in ja), "Japanese queries must contain kana"


def test_validator_catches_a_leaked_query(built, tmp_path):
    bad = tmp_path / "leak"
    shutil.copytree(built, bad)
    train_q = (bad / "beir/step/train/queries.jsonl").read_text().splitlines()[0]
    text = json.loads(train_q)["text"]
    path = bad / "beir/step/dev/queries.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["text"] = text
    lines[0] = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    errors = validate_dataset(bad)
    assert any("also occur in train" in e for e in errors), errors


def test_validator_catches_a_dangling_qrel(built, tmp_path):
    bad = tmp_path / "dangling"
    shutil.copytree(built, bad)
    q = bad / "beir/table/ood03/qrels/test.tsv"
    q.write_text(q.read_text() + "ood03-00000-req\tno_such_table\t1\n")
    assert any("no_such_table" in e for e in validate_dataset(bad))


def test_train_and_test_phrasing_are_disjoint(catalog):
    tr, te = load_pools(catalog, "en", "train"), load_pools(catalog, "en", "test")
    for name in tr.step_phrases:
        assert not set(tr.step_phrases[name]) & set(te.step_phrases[name]), name
    for key in tr.sentence:
        assert not (set(tr.sentence[key]) & set(te.sentence[key])) - {""}, key
    # training-domain aliases are split; OOD-only objects never reach training text
    for t in catalog.domains["it_service_management"].tables:
        a, b = split_pool(f"table:{t.name}", t.aliases)
        assert not set(a) & set(b)


def test_alias_split_is_deterministic_and_keeps_test_nonempty():
    items = ("alpha", "beta", "gamma", "delta")
    assert split_pool("k", items) == split_pool("k", tuple(reversed(items)))
    tr, te = split_pool("k", items)
    assert te and tr and set(tr) | set(te) == set(items)
    assert split_pool("k", ("only",)) == ((), ("only",))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_translation_covers_every_dev_string(catalog, lang):
    if not (LANG_DIR / f"{lang}.yaml").is_file():
        pytest.fail(f"data/language/{lang}.yaml is missing")
    assert missing_strings(lang, catalog) == []


def test_flows_have_2_to_12_steps_and_render(catalog):
    flows = generate_flows(catalog, "ood05", 40, seed=1)
    rend = Renderer(catalog, load_pools(catalog, "en", "test"))
    for fl in flows:
        assert 2 <= len(fl.all_steps()) <= 12
        text = rend.requirement(random.Random(0), fl)
        assert text[0].isupper() and text.endswith(".") and "{" not in text


# --- malformed catalogs: the error names file, entry and field -------------------------------


@pytest.fixture
def cat_copy(tmp_path):
    dst = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, dst)
    return dst


def _edit(path: Path, old: str, new: str):
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_bad_field_type_is_named(cat_copy):
    path = cat_copy / "domains" / "legal.yaml"
    text = path.read_text(encoding="utf-8")
    i = text.index("type: string")
    path.write_text(text[:i] + "type: strng" + text[i + len("type: string"):], encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_catalog(cat_copy)
    assert "legal.yaml" in str(e.value) and "'type'" in str(e.value) and "strng" in str(e.value)


def test_unknown_reference_is_named(cat_copy):
    path = cat_copy / "domains" / "procurement.yaml"
    text = path.read_text(encoding="utf-8")
    i = text.index("reference: sys_user")
    path.write_text(text[:i] + "reference: sys_usr" + text[i + len("reference: sys_user"):], encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_catalog(cat_copy)
    assert "procurement.yaml" in str(e.value) and "sys_usr" in str(e.value) and "'reference'" in str(e.value)


def test_invalid_yaml_names_the_line(cat_copy):
    path = cat_copy / "shared.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n  - {name: broken, label: [\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_catalog(cat_copy)
    assert "shared.yaml:" in str(e.value) and "invalid YAML" in str(e.value)


def test_phrase_with_a_slot_its_role_cannot_fill(cat_copy):
    _edit(cat_copy / "core_steps.yaml", '"hand the work off as a new {table}"',
          '"hand the work off to {who} as a new {table}"')
    with pytest.raises(DataError) as e:
        load_catalog(cat_copy)
    assert "core_steps.yaml" in str(e.value) and "{who}" in str(e.value)


def test_missing_catalog_file(tmp_path):
    with pytest.raises(DataError, match="catalog file not found"):
        load_catalog(tmp_path)


def test_frequency_groups_head_holds_the_share():
    from helpers.data.report import frequency_groups

    counts = {"a": 50, "b": 20, "c": 20, "d": 5, "e": 5}
    assert frequency_groups(counts, 0.5) == {"a": "head", "b": "tail", "c": "tail", "d": "tail", "e": "tail"}
    # 0.6 of 100 needs a (50) and one of the tied b, c: b by id
    assert frequency_groups(counts, 0.6) == {"a": "head", "b": "head", "c": "tail", "d": "tail", "e": "tail"}
    with pytest.raises(ValueError):
        frequency_groups(counts, 0)
