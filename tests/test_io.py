"""helpers.io: atomic writes keep the old file on failure and get ordinary permissions; JSONL errors name file and line."""

import os
import stat

import pytest

from helpers.io import (OUTPUT_MARKER, DataError, atomic_dir, atomic_write_json, atomic_write_text, check_output_dir,
                        check_output_file, check_writable, read_jsonl, write_jsonl)
from tests.fixtures import read_only_dir  # noqa: F401 (fixture)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_umask_permissions_not_0600(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    p = atomic_write_text(tmp_path / "a.txt", "x\n")
    assert _mode(p) == 0o666 & ~mask
    with atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("y")
    assert _mode(tmp_path / "d") == 0o777 & ~mask


def test_atomic_write_failure_keeps_previous_content_and_leaves_no_temp(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_json(p, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {"a": object()})  # not serialisable: fails before the rename
    assert p.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]


def test_atomic_dir_failure_keeps_previous_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target, creator="test") as d:
        (d / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "weights").write_text("half")
            raise RuntimeError("crash mid-write")
    assert (target / "weights").read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["model"]


def test_write_jsonl_is_byte_stable(tmp_path):
    recs = [{"b": 2, "a": "é"}, {"a": 1}]
    write_jsonl(tmp_path / "x.jsonl", recs)
    first = (tmp_path / "x.jsonl").read_bytes()
    write_jsonl(tmp_path / "x.jsonl", recs)
    assert (tmp_path / "x.jsonl").read_bytes() == first == '{"b":2,"a":"é"}\n{"a":1}\n'.encode()


@pytest.mark.parametrize("content, line, field, reason", [
    ('{"q": "a"}\n{"q": \n', 2, None, "invalid JSON"),
    ('{"q": "a"}\n\n[1, 2]\n', 3, None, "expected a JSON object"),
    ('{"q": "a"}\n{"x": 1}\n', 2, "q", "missing required field"),
    ('{"q": "  "}\n', 1, "q", "empty value"),
])
def test_read_jsonl_errors_name_file_line_and_field(tmp_path, content, line, field, reason):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(DataError) as e:
        list(read_jsonl(p, required=("q",)))
    assert e.value.line == line and e.value.field == field and reason in str(e.value)
    assert str(p) in str(e.value) and f":{line}" in str(e.value)


def test_read_jsonl_bad_utf8_and_missing_file(tmp_path):
    p = tmp_path / "bin.jsonl"
    p.write_bytes(b'{"q": "a"}\n{"q": "\xff"}\n')
    with pytest.raises(DataError, match="not valid UTF-8") as e:
        list(read_jsonl(p))
    assert e.value.line == 2
    with pytest.raises(DataError, match="file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


# ---------------------------------------------------------------------------------------------- output safety

def test_atomic_dir_refuses_a_folder_it_did_not_create_and_keeps_every_file(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="did not create.*--overwrite") as e:
        with atomic_dir(target, creator="test") as d:
            (d / "stats.json").write_text("{}")
    assert str(target) in str(e.value)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]          # no temporary folder left
    with atomic_dir(target, overwrite=True, creator="test") as d:          # --overwrite: write, keep the rest
        (d / "stats.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == sorted([OUTPUT_MARKER, "notes.txt", "stats.json"])
    assert (target / "notes.txt").read_text() == "keep me"


def test_atomic_dir_replaces_its_own_output_but_not_files_added_to_it(tmp_path):
    target = tmp_path / "built"
    with atomic_dir(target, creator="test") as d:
        (d / "beir").mkdir()
        (d / "beir" / "old.jsonl").write_text("old")
        (d / "stats.json").write_text("1")
    (target / "my-notes.md").write_text("mine")
    with atomic_dir(target, creator="test") as d:                           # ours (marker): no flag needed
        (d / "beir").mkdir()
        (d / "beir" / "new.jsonl").write_text("new")
        (d / "stats.json").write_text("2")
    assert sorted(p.name for p in (target / "beir").iterdir()) == ["new.jsonl"]
    assert (target / "stats.json").read_text() == "2" and (target / "my-notes.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built"]


def test_atomic_dir_refuses_a_file_where_a_folder_is_wanted(tmp_path):
    f = tmp_path / "out"
    f.write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="must be a folder, but this is a file"):
            with atomic_dir(f, overwrite=overwrite) as d:
                (d / "x").write_text("x")
    assert f.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_output_file(tmp_path):
    with pytest.raises(DataError, match="must be a file path, but this is a folder"):
        check_output_file(tmp_path)
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"a": 1}')
    with pytest.raises(DataError, match="--overwrite"):
        check_output_file(theirs, creator="me")
    check_output_file(theirs, creator="me", overwrite=True)
    ours = tmp_path / "ours.json"
    ours.write_text('{"created_by": "me"}')
    assert check_output_file(ours, creator="me") == ours
    with pytest.raises(DataError, match="is a file, so this path cannot be created"):
        check_output_file(theirs / "sub" / "x.json")


def test_unwritable_output_is_refused_before_any_work(read_only_dir):
    with pytest.raises(DataError, match="not writable") as e:
        check_output_dir(read_only_dir / "new")
    assert str(read_only_dir / "new") in str(e.value)
    with pytest.raises(DataError, match="not writable"):
        check_output_file(read_only_dir / "r.json")
    with pytest.raises(DataError, match="not writable"):
        check_writable(read_only_dir)


# ---------------------------------------------------------------------------------------------- file-by-file markers

def test_marker_lists_the_files_written_and_a_rebuild_keeps_user_files_in_subfolders(tmp_path):
    """Issue 26: a rebuild replaced whole subfolders (beir/, train/), deleting files a user had added there."""
    import json

    target = tmp_path / "built"
    with atomic_dir(target, creator="test") as d:
        for rel in ("beir/table/dev/corpus.jsonl", "beir/table/ood11/corpus.jsonl", "stats.json"):
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text("old")
    assert json.loads((target / OUTPUT_MARKER).read_text()) == {
        "created_by": "test", "entries": ["beir/table/dev/corpus.jsonl", "beir/table/ood11/corpus.jsonl", "stats.json"]}
    (target / "beir" / "table" / "my_extra_qrels.tsv").write_text("mine")
    (target / "beir" / "mytask").mkdir()
    (target / "beir" / "mytask" / "corpus.jsonl").write_text("mine too")
    with atomic_dir(target, creator="test") as d:                        # ood11 is gone from the new build
        (d / "beir" / "table" / "dev").mkdir(parents=True)
        (d / "beir" / "table" / "dev" / "corpus.jsonl").write_text("new")
        (d / "stats.json").write_text("new")
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == [OUTPUT_MARKER, "beir/mytask/corpus.jsonl", "beir/table/dev/corpus.jsonl",
                     "beir/table/my_extra_qrels.tsv", "stats.json"]
    assert not (target / "beir" / "table" / "ood11").exists()             # its own stale folder, emptied, goes
    assert (target / "beir" / "table" / "my_extra_qrels.tsv").read_text() == "mine"
    assert json.loads((target / OUTPUT_MARKER).read_text())["entries"] == ["beir/table/dev/corpus.jsonl", "stats.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built"]


def test_overwrite_into_a_user_folder_replaces_only_same_named_files(tmp_path):
    target = tmp_path / "mine"
    (target / "beir").mkdir(parents=True)
    (target / "beir" / "mine.txt").write_text("keep")
    (target / "stats.json").write_text("theirs")
    with atomic_dir(target, overwrite=True, creator="test") as d:
        (d / "beir").mkdir()
        (d / "beir" / "x.jsonl").write_text("ours")
        (d / "stats.json").write_text("ours")
    assert (target / "beir" / "mine.txt").read_text() == "keep" and (target / "stats.json").read_text() == "ours"


def test_a_user_file_where_a_new_file_goes_in_our_folder_is_refused_without_overwrite(tmp_path):
    target = tmp_path / "built"
    with atomic_dir(target, creator="test") as d:
        (d / "a.txt").write_text("ours")
    (target / "b.txt").write_text("theirs")                              # the next build also writes b.txt
    with pytest.raises(DataError, match="not written by this tool.*--overwrite") as e:
        with atomic_dir(target, creator="test") as d:
            (d / "a.txt").write_text("new")
            (d / "b.txt").write_text("new")
    assert str(target / "b.txt") in str(e.value)
    assert (target / "b.txt").read_text() == "theirs" and (target / "a.txt").read_text() == "ours"
    (target / "b.txt").unlink()
    (target / "sub").mkdir()
    (target / "sub" / "keep.txt").write_text("theirs")
    with pytest.raises(DataError, match="is a folder where this tool writes a file"):
        with atomic_dir(target, creator="test") as d:
            (d / "sub").write_text("a file now")
    assert (target / "sub" / "keep.txt").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built"]


def test_check_output_file_recognises_older_files_of_the_tool(tmp_path):
    from helpers.io import has_json_keys, written_by

    old = tmp_path / "report.json"
    old.write_text('{"variants": {}, "table": ""}')
    assert not written_by(old, "me") and written_by(old, "me", has_json_keys("variants", "table"))
    assert check_output_file(old, creator="me", ours=has_json_keys("variants", "table")) == old
    with pytest.raises(DataError, match="--json exists"):
        check_output_file(old, creator="me", flag="--json", ours=has_json_keys("rows"))
