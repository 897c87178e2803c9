"""helpers.io: atomic writes keep the old file on failure and get ordinary permissions; JSONL errors name file and line."""

import os
import stat

import pytest

from helpers.io import DataError, atomic_dir, atomic_write_json, atomic_write_text, read_jsonl, write_jsonl


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
    with atomic_dir(target) as d:
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
