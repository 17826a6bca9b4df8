"""BERT WordPiece tokenization, exactly as BERT's classic `FullTokenizer`, run by HF tokenizers.

BERT's `FullTokenizer` is a BasicTokenizer (remove control characters, map whitespace to
spaces, put spaces around CJK characters, split on whitespace, lower-case and strip accents
when `do_lower_case`, split off punctuation) followed by greedy longest-match-first
WordPiece (`##` continuations, `[UNK]` for words that cannot be matched or are longer than
200 characters).

The HF `tokenizers` pipeline below does the same steps in Rust. Its ready-made
`BertNormalizer` and `BertPreTokenizer` are not used because their Unicode tables differ from
BERT's (which uses Python's `unicodedata`): they delete private-use characters, miss newer
combining marks and punctuation, and have a different CJK extension range. The character
classes here are instead built from `unicodedata`, so the result is BERT's, character for
character. HF's `Lowercase` is applied per character, while Python's `str.lower` writes a
final capital sigma as 'ς'; texts with a 'Σ' are lower-cased in Python first.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

UNK = "[UNK]"
CLS = "[CLS]"
SEP = "[SEP]"
MAX_INPUT_CHARS_PER_WORD = 200
# Distinct words whose tokens are kept (the cache is emptied when full).
WORD_CACHE_SIZE = 200_000
# BERT's character classes for this Python's Unicode version (`build_char_classes`).
CHAR_CLASSES_FILE = os.path.join(os.path.dirname(__file__), "assets", "bert_char_classes.json")
_TAB_NEWLINE_RETURN = (0x09, 0x0A, 0x0D)

# BERT's CJK ideograph blocks (`BasicTokenizer._is_chinese_char`).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_ascii_punctuation(cp: int) -> bool:
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126


def _char_class(code_points: list[int]) -> str:
    """A regex character class `[...]` of the given (ascending) code points."""
    ranges: list[list[int]] = []
    for cp in code_points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])

    def esc(cp: int) -> str:
        char = chr(cp)
        return "\\" + char if char in "\\]^-[" else char

    parts = (esc(lo) if lo == hi else f"{esc(lo)}-{esc(hi)}" for lo, hi in ranges)
    return "[" + "".join(parts) + "]"


def build_char_classes() -> dict[str, str]:
    """BERT's character classes as regex classes, from this Python's `unicodedata`
    (one pass over every code point but the surrogates)."""
    members: dict[str, list[int]] = {"control": [], "whitespace": [], "mark": [], "split": []}
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        category = unicodedata.category(chr(cp))
        if cp in _TAB_NEWLINE_RETURN or category == "Zs":  # _is_whitespace (space aside)
            if cp != 0x20:
                members["whitespace"].append(cp)
        elif cp in (0, 0xFFFD) or category in ("Cc", "Cf"):  # _is_control
            members["control"].append(cp)
        if category == "Mn":  # the accents _run_strip_accents removes
            members["mark"].append(cp)
        if _is_ascii_punctuation(cp) or category.startswith("P") or _is_cjk(cp):
            members["split"].append(cp)
    return {name: _char_class(cps) for name, cps in members.items()}


@functools.lru_cache(maxsize=1)
def _char_classes() -> dict[str, str]:
    """BERT's character classes: `CHAR_CLASSES_FILE` when it was built with this Python's
    Unicode version (`build_char_classes` run by `python -m components.qa.tokenization`),
    else built now."""
    with open(CHAR_CLASSES_FILE, encoding="utf-8") as f:
        stored = json.load(f)
    if stored.pop("unidata_version") == unicodedata.unidata_version:
        return stored
    return build_char_classes()


@functools.lru_cache(maxsize=1)
def _python_control_re() -> re.Pattern:
    return re.compile(_char_classes()["control"])


def load_vocab(path: str) -> dict[str, int]:
    """The WordPiece vocab, one token a line (as BERT reads it: stripped, line number = id)."""
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "r") as f:
            lines = f.read().splitlines()
    else:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    vocab = {line.strip(): index for index, line in enumerate(lines)}
    missing = [t for t in (UNK, CLS, SEP) if t not in vocab]
    if missing:
        raise ValueError(f"The vocab {path!r} lacks the special token(s) {missing}")
    return vocab


class WordPieceTokenizer:
    """BERT's `FullTokenizer` over a WordPiece vocab file.

    Args:
      vocab_path: the vocab file (a Hub module's `assets/vocab.txt`), local or gs://.
      do_lower_case: lower-case and strip accents (True for uncased models).
    """

    def __init__(self, vocab_path: str, do_lower_case: bool = True):
        self.vocab_path = vocab_path
        self.do_lower_case = do_lower_case
        self.vocab = load_vocab(vocab_path)
        classes = _char_classes()
        steps = [
            normalizers.Replace(Regex(classes["control"]), ""),
            normalizers.Replace(Regex(classes["whitespace"]), " "),
        ]
        if do_lower_case:
            steps += [
                normalizers.Lowercase(),
                normalizers.NFD(),
                normalizers.Replace(Regex(classes["mark"]), ""),
            ]
        tokenizer = Tokenizer(models.WordPiece(
            vocab=self.vocab, unk_token=UNK, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD
        ))
        tokenizer.normalizer = normalizers.Sequence(steps)
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(classes["split"]), "isolated"),
        ])
        self._tokenizer = tokenizer
        # BERT's whitespace (after its control characters are removed): text splits there.
        self._whitespace = re.compile("[ " + classes["whitespace"][1:] + "+")
        self._word_cache: dict[str, tuple[list[str], list[int]]] = {}

    def _prepare(self, text: str) -> str:
        # Python's str.lower knows the final sigma; HF's per-character Lowercase does not.
        if self.do_lower_case and "Σ" in text:
            return _python_control_re().sub("", text).lower()
        return text

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of a text."""
        return self.encode(text)[0]

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        """The WordPiece tokens of a text and their ids."""
        # BERT splits the text on whitespace before lower-casing, accent stripping,
        # punctuation splitting and WordPiece, so its tokens are those of its pieces.
        entries = self._cached(self.split_words(text))
        return (
            [token for word_tokens, _ in entries for token in word_tokens],
            [i for _, word_ids in entries for i in word_ids],
        )

    def encode_words(self, words: list[str]) -> tuple[list[str], list[int], list[int]]:
        """Tokenizes each word separately: (tokens, ids, index of each token's word).

        A word may give no token (e.g. only control characters or whitespace) or several.
        Each distinct word is tokenized once per `WORD_CACHE_SIZE` words (the words of a
        language repeat).
        """
        entries = self._cached(words)
        tokens = [token for word_tokens, _ in entries for token in word_tokens]
        ids = [i for _, word_ids in entries for i in word_ids]
        token_words = [index for index, (_, word_ids) in enumerate(entries) for _ in word_ids]
        return tokens, ids, token_words

    def _cached(self, words: list[str]) -> list[tuple[list[str], list[int]]]:
        cache = self._word_cache
        try:
            return [cache[w] for w in words]
        except KeyError:
            self.cache_words(words)
            return [cache[w] for w in words]

    def split_words(self, text: str) -> list[str]:
        """The text's pieces between BERT's whitespace: `encode(text)` tokenizes these."""
        return [piece for piece in self._whitespace.split(text) if piece]

    def cache_words(self, words: Iterable[str]) -> None:
        """Tokenizes the words not yet cached, all in one call (a batch of texts is quicker
        to tokenize when their words are cached first)."""
        cache = self._word_cache
        words = list(dict.fromkeys(words))
        new_words = [w for w in words if w not in cache]
        if not new_words:
            return
        if len(cache) + len(new_words) > WORD_CACHE_SIZE:
            cache.clear()
            new_words = words
        if self.do_lower_case and any("Σ" in w for w in new_words):
            encoding = self._tokenizer.encode(
                [self._prepare(w) for w in new_words], is_pretokenized=True,
                add_special_tokens=False,
            )
            token_words = np.asarray(encoding.word_ids, dtype=np.int64)
        else:
            # Tokenizing the words joined by spaces gives each word's tokens in turn (faster
            # than pre-tokenized words); a token's word is found from its character offset.
            encoding = self._tokenizer.encode(" ".join(new_words), add_special_tokens=False)
            starts = np.cumsum([0] + [len(w) + 1 for w in new_words[:-1]])
            begins = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
            token_words = np.searchsorted(starts, begins, side="right") - 1
        # Tokens come in word order: word i's tokens are bounds[i]:bounds[i + 1].
        bounds = np.searchsorted(token_words, np.arange(len(new_words) + 1)).tolist()
        tokens, ids = encoding.tokens, encoding.ids
        cache.update(
            (word, (tokens[a:b], ids[a:b]))
            for word, a, b in zip(new_words, bounds, bounds[1:], strict=False)
        )

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        """The vocab ids of tokens (KeyError for a token outside the vocab)."""
        return [self.vocab[t] for t in tokens]


if __name__ == "__main__":
    # Rebuilds CHAR_CLASSES_FILE for this Python's Unicode version.
    with open(CHAR_CLASSES_FILE, "w", encoding="utf-8") as f:
        json.dump({"unidata_version": unicodedata.unidata_version, **build_char_classes()},
                  f, indent=1)
        f.write("\n")
    print(f"Wrote {CHAR_CLASSES_FILE} (Unicode {unicodedata.unidata_version})")
