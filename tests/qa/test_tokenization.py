"""WordPieceTokenizer gives exactly the tokens of classic BERT FullTokenizer (classic_squad.py)."""

import json
import sys
import unicodedata

import pytest

from components.qa import tokenization
from components.qa.tokenization import WordPieceTokenizer, load_vocab
from tests.qa.classic_squad import ClassicTokenizer, split_doc

VOCAB = "tests/data/vocab/vocab.txt"
SQUAD = "tests/data/squad/dev-v2.0-first5articles.official.json"

UNICODE_CASES = [
    "Café résumé naïve Ångström Øresund Straße ǅ",
    "ÉCOLE NORMALE SUPÉRIEURE",
    "e\u0301 a\u0300\u0323 combining\u0308marks \u0363",  # combining marks
    "北京大学 東京 서울 中文abc字 \U0002b820\U0002b91f ext-F",  # CJK, Hangul, extensions
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "zero\u200bwidth\u200c joiner\u200d bom\ufeff soft\u00adhyphen",
    "control\x00chars\x01\x07\x1f\x7f\x85 and\x0bvt\x0cff \ufffd",
    "no\u00a0break thin\u2009space narrow\u202fnbsp ideographic\u3000space",
    "line\u2028separator paragraph\u2029separator tab\tnew\nline\rcr",
    "ΟΔΟΣ Σ ΣΑΣ. ΑΣ\u0301 Ἀθῆναι ΑΣ\x01Β",  # final sigma, Greek accents
    "İstanbul ǈ ﬁ ẞ Ⅻ ①",  # special case mappings, compatibility characters
    "private\ue000use \U000f0000 unassigned\u0378 surrogate-free",
    "punctuation: «quotes» „low“ ‘single’ — – … ¿¡ ‽ ⸮ 〜 ・ ॥ ၊ ꧁",
    "Москва Київ Ελληνικά עברית العربية हिन्दी ไทย ქართული",
    "x" * 200 + " " + "y" * 201 + " " + "é" * 199 + "e\u0301",  # the 200-character limit
    "",
    "   \t\n ",
]


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def tokenizers(request):
    return WordPieceTokenizer(VOCAB, request.param), ClassicTokenizer(VOCAB, request.param)


@pytest.fixture(scope="module")
def squad_texts():
    with open(SQUAD, encoding="utf-8") as f:
        data = json.load(f)["data"]
    texts = []
    for article in data:
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            texts.extend(qa["question"] for qa in paragraph["qas"])
            for qa in paragraph["qas"]:
                for key in ("answers", "plausible_answers"):
                    texts.extend(a["text"] for a in qa.get(key, ()))
    return texts


def test_every_squad_text_matches_classic(tokenizers, squad_texts):
    ours, classic = tokenizers
    assert len(squad_texts) > 4000
    mismatches = [t for t in squad_texts if ours.tokenize(t) != classic.tokenize(t)]
    assert mismatches == []


@pytest.mark.parametrize("text", UNICODE_CASES)
def test_unicode_edge_cases_match_classic(tokenizers, text):
    ours, classic = tokenizers
    expected = classic.tokenize(text)
    assert ours.tokenize(text) == expected
    tokens, ids = ours.encode(text)
    assert tokens == expected
    assert ids == classic.convert_tokens_to_ids(expected)


def test_code_points_match_classic(tokenizers):
    """A sample of every Unicode block, each code point alone and inside words."""
    ours, classic = tokenizers
    code_points = [cp for cp in range(0, 0x3100)] + list(range(0x3100, sys.maxunicode, 61))
    texts = [
        template.format(chr(cp))
        for cp in code_points
        if not 0xD800 <= cp <= 0xDFFF
        for template in ("ab{}cd", "{}", "ΑΣ{}Σ")
    ]
    mismatches = [
        (hex(ord(t[2] if len(t) == 5 else t[0])), t)
        for t in texts
        if ours.tokenize(t) != classic.tokenize(t)
    ]
    assert mismatches == []


def test_known_tokens():
    tokenizer = WordPieceTokenizer(VOCAB)
    assert tokenizer.tokenize("Hello, unaffable Ñandú! 北京") == [
        "hello", ",", "una", "##ffa", "##ble", "nan", "##du", "!", "北", "京"
    ]
    assert tokenizer.tokenize("ΟΔΟΣ") == ["ο", "##δ", "##ος"]  # final sigma
    assert WordPieceTokenizer(VOCAB, do_lower_case=False).tokenize("Hello") == ["[UNK]"]


def test_encode_words_matches_classic_per_word(tokenizers, squad_texts):
    ours, classic = tokenizers
    contexts = squad_texts[:: 50] + ["ΟΔΟΣ \x00\x01 ΑΣ", "a \u200b b\u00a0c"]
    for context in contexts:
        words, _ = split_doc(context)
        expected_tokens, expected_words = [], []
        for index, word in enumerate(words):
            for token in classic.tokenize(word):
                expected_tokens.append(token)
                expected_words.append(index)
        tokens, ids, token_words = ours.encode_words(words)
        assert (tokens, token_words) == (expected_tokens, expected_words), context
        assert ids == classic.convert_tokens_to_ids(expected_tokens)
    assert ours.encode_words([]) == ([], [], [])


def test_vocab_without_special_tokens_is_rejected(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.txt.*\[CLS\]"):
        WordPieceTokenizer(str(path))
    assert load_vocab(VOCAB)["[UNK]"] == 100


def test_stored_char_classes_are_this_pythons():
    """The shipped classes are what `build_char_classes` gives for this Unicode version
    (rebuild them with `python -m components.qa.tokenization`)."""
    with open(tokenization.CHAR_CLASSES_FILE, encoding="utf-8") as f:
        stored = json.load(f)
    assert stored.pop("unidata_version") == unicodedata.unidata_version
    assert stored == tokenization.build_char_classes()


def test_word_cache_is_emptied_when_full(monkeypatch):
    tokenizer = WordPieceTokenizer(VOCAB)
    monkeypatch.setattr(tokenization, "WORD_CACHE_SIZE", 3)
    assert tokenizer.encode_words(["Hello,", "world", "Hello,"]) == (
        ["hello", ",", "world", "hello", ","], [7592, 1010, 2088, 7592, 1010], [0, 0, 1, 2, 2])
    assert tokenizer.tokenize("un affable") == ["un", "af", "##fa", "##ble"]
    assert len(tokenizer._word_cache) == 2  # emptied, then "un" and "affable"
