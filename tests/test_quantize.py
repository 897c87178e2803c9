"""The int8 path (helpers.quantize exports, helpers.int8 encodes), the per-text embedding cache through
DenseRetriever at each precision, and bench --precision (the precision policy: test_precision.py).

All on minilm-l6 (22M parameters, a ~4 s export). No timing is asserted: speed is for helpers.bench.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.fixtures import CORPUS
from helpers import bench, quantize
from helpers.encoders import DenseEncoder
from helpers.beir import write_beir
from helpers.io import DataError
from helpers.embeddings import weights_fingerprint
from helpers.int8 import int8_model
from helpers.retrieval import DenseRetriever

pytestmark = pytest.mark.slow

TEXTS = ["How do I reset my password?", "The email server is down and nobody can send mail",
         "Set u_cost_center on the sys_user record from the department",
         "Read sys_user.manager to find who approves the request " * 12]


def cos(a, b):
    return (np.asarray(a) * np.asarray(b)).sum(-1)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """CASE_STUDY_CACHE for the module: minilm-l6's folder is inside site-packages, so its export goes here."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CASE_STUDY_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def minilm(cache_root):
    from helpers.models import load_encoder

    return load_encoder("minilm-l6")


@pytest.fixture(scope="module")
def int8(minilm):
    return int8_model(minilm)


@pytest.fixture
def exported(minilm, int8, tmp_path):
    """A private copy of the module's export (exporting again would cost seconds per test)."""
    import shutil

    return shutil.copytree(quantize.export_dir(minilm), tmp_path / "export")


def test_export_lands_in_cache_with_manifest(minilm, int8, cache_root):
    fp = weights_fingerprint(minilm)
    folder = cache_root / "onnx" / f"minilm-l6-{fp[:16]}"
    assert quantize.export_dir(minilm) == folder
    info = json.loads((folder / quantize.MANIFEST_NAME).read_text())
    assert info["weights_sha256"] == fp and info["scheme"]["version"] == quantize.SCHEME_VERSION
    assert info["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert info["check"]["fp32_graph_max_abs_diff"] < 1e-3
    assert (folder / quantize.ONNX_NAME).stat().st_size == info["onnx_bytes"]
    assert set(info["fp32_layers"]) == {n for n, r in info["outlier_ratios"].items() if r > quantize.OUTLIER_RATIO}
    assert not list(folder.glob(".export-*"))  # temporary files are gone
    assert int8._helpers_encoder["precision"] == "int8" and int8._helpers_encoder["name"] == "minilm-l6"


def test_export_goes_next_to_a_writable_model_folder(tmp_path, minilm):
    class Loaded:  # what helpers.models.load_encoder stamps on a model loaded from a folder
        _helpers_encoder = {"name": str(tmp_path), "path": str(tmp_path)}

    assert quantize.export_dir(Loaded()) == tmp_path / "onnx"  # e.g. runs/<profile>/<config>/model/onnx
    # A folder inside an installed package (minilm-l6) is never written to.
    assert quantize._inside_installed_package(quantize._model_folder(minilm))
    assert not quantize._inside_installed_package(tmp_path)


def test_int8_is_close_to_fp32_and_shares_settings(minilm, int8):
    ref = minilm.encode_document(TEXTS, prompt="passage: ", normalize_embeddings=True)
    got = int8.encode_document(TEXTS, prompt="passage: ", normalize_embeddings=True)
    c = cos(ref, got)
    # int8 moves embeddings a little (0.994 mean on 300 field documents); a broken graph lands far lower.
    assert c.mean() > 0.98 and c.min() > 0.95, c
    assert not np.allclose(ref, got)  # it really is another engine
    # The tokenizer is shared: a length set on the fp32 model applies to the int8 view.
    own = minilm.max_seq_length
    try:
        minilm.max_seq_length = 8
        assert int8.max_seq_length == 8
        short = int8.encode_document(TEXTS[3:], normalize_embeddings=True)
        assert cos(short, minilm.encode_document(TEXTS[3:], normalize_embeddings=True))[0] > 0.95
        assert cos(short, got[3:])[0] < 0.99  # truncated: not the full-length embedding
    finally:
        minilm.max_seq_length = own


def test_int8_embedding_does_not_depend_on_batch_partners(int8):
    # Per-tensor dynamic activation scales would let a long partner (and its padding) change how a
    # short text is rounded; the int8 view runs each text alone, so the result is bit-identical.
    alone = int8.encode_document(TEXTS[:1], normalize_embeddings=True, batch_size=1)
    in_batch = int8.encode_document(TEXTS, normalize_embeddings=True, batch_size=len(TEXTS))
    np.testing.assert_array_equal(alone[0], in_batch[0])


def test_int8_applies_prompts_like_fp32(minilm, int8):
    text = ["leave policy for new parents"]
    plain_fp32 = minilm.encode_query(text, prompt="", normalize_embeddings=True)
    prompted_fp32 = minilm.encode_query(text, prompt="query: ", normalize_embeddings=True)
    plain_int8 = int8.encode_query(text, prompt="", normalize_embeddings=True)
    prompted_int8 = int8.encode_query(text, prompt="query: ", normalize_embeddings=True)
    assert not np.allclose(plain_int8, prompted_int8)
    # The prompt moves int8 the way it moves fp32: each is nearest to its own fp32 counterpart.
    assert cos(prompted_int8, prompted_fp32)[0] > cos(prompted_int8, plain_fp32)[0]
    assert cos(plain_int8, plain_fp32)[0] > cos(plain_int8, prompted_fp32)[0]


def test_reload_uses_the_export_and_other_weights_reexport(minilm, exported, monkeypatch):
    out = exported
    calls = []
    real = quantize.export_int8
    monkeypatch.setattr(quantize, "export_int8", lambda *a, **k: calls.append(a) or real(*a, **k))
    quantize.load_int8_session(minilm, out)
    assert calls == []  # valid export: loaded, not rebuilt
    info = json.loads((out / quantize.MANIFEST_NAME).read_text())
    info["weights_sha256"] = "0" * 64  # as if exported from other weights
    (out / quantize.MANIFEST_NAME).write_text(json.dumps(info))
    quantize.load_int8_session(minilm, out)
    assert len(calls) == 1
    assert json.loads((out / quantize.MANIFEST_NAME).read_text())["weights_sha256"] == weights_fingerprint(minilm)


def test_outlier_layers_stay_fp32(minilm, tmp_path, monkeypatch):
    import onnx

    ratios = quantize.outlier_ratios(minilm)
    assert len(ratios) == 6 * 6 + 1 and all(r > 1 for r in ratios.values())  # 6 per layer, and the pooler
    ratios.pop("pooler.dense")  # not on the way to last_hidden_state: pruned from the graph
    threshold = sorted(ratios.values())[-3]  # so that exactly the two most extreme inputs stay fp32
    monkeypatch.setattr(quantize, "OUTLIER_RATIO", threshold)
    onnx_path = quantize.export_int8(minilm, tmp_path)
    info = json.loads((tmp_path / quantize.MANIFEST_NAME).read_text())
    assert len(info["fp32_layers"]) == 2
    nodes = {n.name: n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert len(info["fp32_nodes"]) == 2 and all(nodes[n] == "MatMul" for n in info["fp32_nodes"])
    # Every other Linear became an int8 matmul.
    n_int8 = sum(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in nodes.values())
    assert n_int8 == len(ratios) - 2


def test_corrupt_export_names_the_file(minilm, exported):
    out = exported
    onnx = out / quantize.ONNX_NAME
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt exported model") as e:
        quantize.load_int8_session(minilm, out)
    assert str(onnx) in str(e.value)
    onnx.write_bytes(b"not an onnx file")
    info = json.loads((out / quantize.MANIFEST_NAME).read_text())
    import hashlib

    info["onnx_sha256"] = hashlib.sha256(b"not an onnx file").hexdigest()
    (out / quantize.MANIFEST_NAME).write_text(json.dumps(info))
    with pytest.raises(DataError, match="unreadable exported model") as e:
        quantize.load_int8_session(minilm, out)
    assert str(onnx) in str(e.value)


def test_precision_is_validated(minilm):
    with pytest.raises(ValueError, match="precision must be one of"):
        DenseRetriever(minilm, precision="fp16")


def test_dense_int8_retrieves_and_says_so(minilm, int8):
    r = DenseRetriever(minilm, show_progress=False, precision="int8").index(CORPUS)
    run = r.search({"q1": "my mail server stopped working", "q2": "maternity and paternity leave question"}, k=2)
    assert next(iter(run["q1"])) == "inc" and next(iter(run["q2"])) == "hr"
    ident = r.identity()
    assert ident["precision"] == "int8" and ident["int8"]["version"] == quantize.SCHEME_VERSION
    assert DenseRetriever(minilm, show_progress=False).identity()["precision"] == "fp32"
    assert r.encoder is int8  # one int8 view per model, shared by retrievers


# ------------------------------------------------------------------------------ per-text cache


def test_cache_separates_precisions_and_shares_texts(minilm, tmp_path, monkeypatch):
    fp32 = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False).index(CORPUS)
    assert fp32.n_encoded_docs == 5
    i8 = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False, precision="int8").index(CORPUS)
    assert i8.n_encoded_docs == 5 and not i8.cache_hit  # int8 never reuses fp32 vectors
    assert cos(i8.embeddings, fp32.embeddings).min() < 0.99999

    # Another corpus sharing four texts under other ids (as OOD splits share tables): one encoded.
    other = {f"x-{k}": v for k, v in CORPUS.items() if k != "hr"}
    other["new"] = {"title": "Badge", "text": "Print a visitor badge at the front desk"}
    again = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False, precision="int8").index(other)
    assert again.timings["n_encoded_docs"] == 1 and again.n_cached_docs == 4 and not again.cache_hit
    pos = {d: i for i, d in enumerate(again.doc_ids)}
    np.testing.assert_array_equal(again.embeddings[pos["x-inc"]], i8.embeddings[i8.doc_ids.index("inc")])

    # Same texts, fresh process state: served from disk, nothing encoded.
    monkeypatch.setattr(type(i8.encoder), "encode_document", lambda *a, **k: pytest.fail("encoded on a cache hit"))
    from helpers.embeddings import EmbeddingCache

    EmbeddingCache._spaces.clear()
    hit = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False, precision="int8").index(other)
    assert hit.cache_hit and hit.n_encoded_docs == 0
    np.testing.assert_array_equal(hit.embeddings, again.embeddings)


def test_duplicate_texts_encoded_once(minilm):
    corpus = {"a": {"title": "", "text": "same text"}, "b": {"title": "", "text": "same text"},
              "c": {"title": "", "text": "other text"}}
    r = DenseRetriever(minilm, show_progress=False).index(corpus)
    assert r.n_encoded_docs == 2
    np.testing.assert_array_equal(r.embeddings[0], r.embeddings[1])


def test_query_cache_small_batches_stay_in_memory(minilm, tmp_path):
    r = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False).index(CORPUS)
    n_files = len(list(tmp_path.glob("*.npy")))
    r.search({"q": "email outage"}, k=2)
    assert len(list(tmp_path.glob("*.npy"))) == n_files  # a single query: no shard on disk
    many = {f"q{i}": f"question number {i} about the mail server" for i in range(DenseEncoder.min_query_shard)}
    r.search(many, k=2)
    assert len(list(tmp_path.glob("*.npy"))) == n_files + 1
    assert r.last_encode["side"] == "query" and r.last_encode["n_encoded"] == len(many)
    r.search(many, k=2)
    assert r.last_encode["n_encoded"] == 0



# ------------------------------------------------------------------------------------- bench


def test_bench_precision_side_by_side(minilm, tmp_path, capsys):
    data = tmp_path / "ds"
    queries = {"q1": "parental leave question for the people team", "q2": "email server down",
               "q3": "which cost center is the user in", "q4": "who approves: the manager"}
    qrels = {"q1": {"hr": 1}, "q2": {"inc": 1}, "q3": {"cost": 1}, "q4": {"mgr": 1}}
    for task in ("table", "field"):
        write_beir(data / "beir" / task / "dev", CORPUS, queries, qrels)
    out = tmp_path / "bench.json"
    assert bench.main(["--precision", "fp32", "int8", "--retrievers", "minilm-l6", "--data", str(data),
                       "--tasks", "table", "field", "--chunk", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Table@5" in printed and "Field@5" in printed and "int8-fp32" in printed and "target for int8" in printed
    (res,) = json.loads(out.read_text())["precision"]
    assert set(res["precisions"]) == {"fp32", "int8"}
    for p in ("fp32", "int8"):
        # Both tasks share the corpus and queries: each text is encoded once per precision.
        assert res["precisions"][p]["n_docs"] == len(CORPUS) and res["precisions"][p]["n_queries"] == len(queries)
        assert res["precisions"][p]["docs_per_s"] > 0
    assert res["recall"]["table"]["fp32"] == res["recall"]["field"]["fp32"]
    assert res["delta"]["table"]["fp32"] == 0.0
    assert 0.95 < res["cosine_to_first"]["int8"]["mean"] < 1.0
    tg = res["target"]["by_precision"]["int8"]
    assert tg["met"] == bool(tg["speedup_ok"] and tg["recall_ok"])
    assert bench.main(["--precision", "fp32", "int8", "--retrievers", "minilm-l6", "--data", str(tmp_path / "no")]) == 2
    assert "no BEIR folder for task" in capsys.readouterr().err


# ------------------------------------------------------------------------------ bf16


def test_bf16_encodes_under_autocast_close_to_fp32(minilm, tmp_path, monkeypatch):
    import torch

    seen = []
    original = type(minilm).encode_document

    def spy(self, *a, **k):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return original(self, *a, **k)

    monkeypatch.setattr(type(minilm), "encode_document", spy)
    fp32 = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False).index(CORPUS)
    bf16 = DenseRetriever(minilm, cache_dir=tmp_path, show_progress=False, precision="bf16").index(CORPUS)
    assert seen == [False, True]  # the same model, only the bf16 retriever under autocast
    assert bf16.encoder is minilm and bf16.identity()["precision"] == "bf16"
    assert bf16.n_encoded_docs == 5 and not bf16.cache_hit  # its own cache space, never fp32's vectors
    assert bf16.embeddings.dtype == np.float32
    c = cos(bf16.embeddings, fp32.embeddings)
    # bf16 products with fp32 accumulation: 0.9999+ here; a dropped autocast would give exactly 1.
    assert c.min() > 0.995 and not np.array_equal(bf16.embeddings, fp32.embeddings), c
    assert not torch.is_autocast_enabled("cpu")  # the context ended with the encoding
