"""The label audit (helpers.data.audit) and the generator patterns it guards against."""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict

import pytest

from helpers.data.__main__ import main as data_main
from helpers.data.audit import Namer, _norm, audit_dataset, audit_split, failures
from helpers.data.build import generate_flows, render_split
from helpers.data.language import load_pools
from helpers.data.validate import validate_dataset
from helpers.splits import LANGUAGES


@pytest.fixture(scope="module")
def dev_render(catalog):
    flows = generate_flows(catalog, "dev", 200, seed=1)
    rendered, _ = render_split(catalog, flows, load_pools(catalog, "en", "test"), seed=1, lang="en")
    return flows, rendered


def _read_qrels(path):
    out = defaultdict(dict)
    for line in path.read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        out[q][d] = int(g)
    return dict(out)


def test_built_dataset_passes_the_audit_on_every_split(built):
    report = audit_dataset(built)
    assert set(report) == {"step", "table", "field"}
    splits = set(report["field"])
    assert {"dev", "train", "ood01", "ood10"} <= splits and {f"dev-{x}" for x in LANGUAGES} <= splits
    assert failures(report, 0.95) == []
    for per in report.values():
        for r in per.values():
            assert r["queries"] > 0 and r["gold"] >= r["queries"]


def test_a_noisy_split_fails_the_audit_and_validate(built, tmp_path, capsys):
    noisy = tmp_path / "noisy"
    shutil.copytree(built, noisy)
    # Replace the gold of dev field queries by other fields of the same table: the old generator's
    # pattern of fields drawn at random, which the note never names.
    folder = noisy / "beir/field/dev"
    corpus = [json.loads(x)["_id"] for x in (folder / "corpus.jsonl").read_text().splitlines()]
    qrels = _read_qrels(folder / "qrels/test.tsv")
    rng = random.Random(0)
    lines = ["query-id\tcorpus-id\tscore"]
    for q, rel in sorted(qrels.items()):
        table = next(iter(rel)).split(".")[0]
        others = [d for d in corpus if d.startswith(table + ".") and d not in rel
                  and d.split(".")[1] not in ("comments", "work_notes", "manager")]
        lines += [f"{q}\t{d}\t1" for d in rng.sample(others, min(2, len(others)))]
    (folder / "qrels/test.tsv").write_text("\n".join(lines) + "\n")
    report = audit_dataset(noisy, splits="dev")
    assert report["field"]["dev"]["explained_per_query"] < 0.5
    assert report["field"]["dev"]["patterns"], "unexplained labels are listed with examples"
    assert report["table"]["dev"]["explained_per_query"] >= 0.95
    assert data_main(["audit", str(noisy), "--min", "0.95", "--splits", "dev"]) == 1
    assert "FAIL audit: field/dev" in capsys.readouterr().out
    assert any(e.startswith("audit: field/dev") for e in validate_dataset(noisy))


def test_audit_cli_passes_and_writes_json(built, tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert data_main(["audit", str(built), "--min", "0.95", "--splits", "ood0*", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    report = written["report"]
    assert written["created_by"] == "helpers.data audit" and written["splits"] == "ood0*"
    assert set(report["step"]) == {f"ood{i:02d}" for i in range(1, 10)}
    assert data_main(["audit", str(built / "beir"), "--min", "0.95"]) == 2  # not a dataset folder
    assert "no beir/ folder" in capsys.readouterr().err


def test_namer_names_by_label_alias_id_and_phrase(catalog):
    en = Namer(catalog, "en")
    assert en.named(_norm("escalate the incidents to the team"), "table", "incident")  # plural label
    assert en.named(_norm("update the resolver group of the problem"), "field", "problem.assignment_group")
    assert en.named(_norm("set assignment_group"), "field", "incident.assignment_group")  # id
    assert not en.named(_norm("update the problem record"), "field", "problem.assignment_group")
    assert not en.named(_norm("email the caller"), "table", "problem")
    # a step is named by its phrasing's fixed words in order, slots matching anything
    assert en.named(_norm("Wait a fortnight then continue."), "step", "wait_for_a_duration")
    fired = en.rules(_norm("email the caller's supervisor about it"))
    assert ("field", "sys_user.manager") in fired["manager"]


def test_translated_namer_uses_the_glossary(catalog):
    de = Namer(catalog, "de")
    term = load_pools(catalog, "de", "test").glossary["support ticket"]
    assert de.named(_norm(f"Den {term} prüfen"), "table", "incident")


def test_audit_split_counts_rules_and_unexplained(catalog):
    en = Namer(catalog, "en")
    queries = {"q1": "respond publicly (table: incident)", "q2": "update the priority (table: incident)",
               "q3": "email the caller's direct superior (table: incident)"}
    qrels = {"q1": {"incident.comments": 1}, "q2": {"incident.priority": 1, "incident.state": 1},
             "q3": {"incident.caller_id": 1, "sys_user.manager": 1}}
    r = audit_split(en, queries, qrels, "field")
    assert r["gold"] == 5 and r["unexplained"] == 1
    assert r["rules_pooled"] == {"journal": 0.2, "manager": 0.2}
    assert r["explained_per_query"] == pytest.approx((1 + 0.5 + 1) / 3, abs=1e-4)
    assert r["patterns"][0]["object"] == "state"


# -- the generator patterns the audit found (issue: every gold label earned by its query) ----------


def test_table_queries_only_from_notes_that_name_their_table(dev_render, catalog):
    _, rendered = dev_render
    en = Namer(catalog, "en")
    for qid, rel in rendered["qrels"]["table"].items():
        text = _norm(rendered["queries"]["table"][qid])
        for t in rel:
            assert en.named(text, "table", t) or t in ("sys_user", "kb_knowledge"), (qid, text, t)


def test_same_note_text_never_points_to_different_tables(dev_render):
    _, rendered = dev_render
    gold_by_text = defaultdict(set)
    for qid, text in rendered["queries"]["table"].items():
        if not qid.endswith("-req"):
            gold_by_text[text].add(tuple(sorted(rendered["qrels"]["table"][qid])))
    clashes = {t: g for t, g in gold_by_text.items() if len(g) > 1}
    # an alias two tables share can still collide; the old generator had 44 in dev alone
    assert len(clashes) <= 2, clashes


def test_field_gold_is_named_or_ruled(dev_render, catalog):
    _, rendered = dev_render
    r = audit_split(Namer(catalog, "en"), rendered["queries"]["field"], rendered["qrels"]["field"], "field")
    assert r["unexplained"] == 0, r["patterns"]


def test_lookup_then_update_fields_belong_to_the_updated_table(catalog):
    for split in ("train", "dev", "ood03"):
        for fl in generate_flows(catalog, split, 150, seed=2):
            for s in fl.all_steps():
                if s.table is not None and s.values:
                    names = {f.name for f in s.table.fields}
                    assert all(v.field.name in names for v in s.values), (fl.flow_id, s.step.name)


def test_journal_and_knowledge_steps_get_their_positives(dev_render):
    flows, rendered = dev_render
    seen = defaultdict(int)
    for fl in flows:
        for s in fl.all_steps():
            qid = f"{fl.flow_id}-s{s.sid}"
            if s.step.name in ("add_comment", "add_work_note") and qid in rendered["qrels"]["field"]:
                want = "comments" if s.step.name == "add_comment" else "work_notes"
                assert f"{s.table.name}.{want}" in rendered["qrels"]["field"][qid]
                seen["journal"] += 1
            if s.step.name.endswith("knowledge_article"):
                assert s.table.name == "kb_knowledge"
                assert "kb_knowledge" in rendered["qrels"]["table"].get(f"{fl.flow_id}-req", {})
                seen["knowledge"] += 1
    assert seen["journal"] > 0 and seen["knowledge"] > 0, seen


def test_manager_recipient_routes_through_sys_user_manager(dev_render):
    flows, rendered = dev_render
    n = 0
    for fl in flows:
        for s in fl.all_steps():
            qid = f"{fl.flow_id}-s{s.sid}"
            if s.who is not None and s.who.via_manager and qid in rendered["qrels"]["field"]:
                assert "sys_user.manager" in rendered["qrels"]["field"][qid]
                n += 1
    assert n > 0


def test_translated_qrels_are_devs_minus_unnamed(built):
    dev = _read_qrels(built / "beir/field/dev/qrels/test.tsv")
    stats = json.loads((built / "stats.json").read_text())
    for lang in LANGUAGES:
        tr = _read_qrels(built / f"beir/field/dev-{lang}/qrels/test.tsv")
        # the same questions as English dev; a language's gold is what its own text names
        assert set(tr) <= set(dev)
        assert len(dev) - len(tr) == stats["unnamed_dropped"][f"dev-{lang}"]["field"]
