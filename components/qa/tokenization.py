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

import bisect
import functools
import re
import sys
import unicodedata

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

UNK = "[UNK]"
CLS = "[CLS]"
SEP = "[SEP]"
MAX_INPUT_CHARS_PER_WORD = 200

# BERT's CJK ideograph blocks (`BasicTokenizer._is_chinese_char`).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def _is_control(char: str) -> bool:
    cp = ord(char)
    if char in "\t\n\r":
        return False
    return cp == 0 or cp == 0xFFFD or unicodedata.category(char) in ("Cc", "Cf")


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_mark(char: str) -> bool:
    return unicodedata.category(char) == "Mn"


def _char_class(predicate) -> str:
    """A regex character class `[...]` of every code point (no surrogates) matching predicate."""
    ranges = []
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF or not predicate(chr(cp)):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])

    def esc(cp: int) -> str:
        char = chr(cp)
        return "\\" + char if char in "\\]^-[" else char

    parts = (esc(lo) if lo == hi else f"{esc(lo)}-{esc(hi)}" for lo, hi in ranges)
    return "[" + "".join(parts) + "]"


@functools.lru_cache(maxsize=1)
def _char_classes() -> dict[str, str]:
    """BERT's character classes as regex classes (built once per process, ~1 s)."""
    return {
        "control": _char_class(_is_control),
        "whitespace": _char_class(lambda c: c != " " and _is_whitespace(c)),
        "mark": _char_class(_is_mark),
        "split": _char_class(lambda c: _is_punctuation(c) or _is_cjk(c)),
    }


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

    def _prepare(self, text: str) -> str:
        # Python's str.lower knows the final sigma; HF's per-character Lowercase does not.
        if self.do_lower_case and "Σ" in text:
            return _python_control_re().sub("", text).lower()
        return text

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of a text."""
        return self._tokenizer.encode(self._prepare(text), add_special_tokens=False).tokens

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        """The WordPiece tokens of a text and their ids."""
        encoding = self._tokenizer.encode(self._prepare(text), add_special_tokens=False)
        return encoding.tokens, encoding.ids

    def encode_words(self, words: list[str]) -> tuple[list[str], list[int], list[int]]:
        """Tokenizes each word separately: (tokens, ids, index of each token's word).

        Words must not contain whitespace. A word may give no token (e.g. only control
        characters) or several.
        """
        if not words:
            return [], [], []
        if self.do_lower_case and any("Σ" in w for w in words):
            encoding = self._tokenizer.encode(
                [self._prepare(w) for w in words], is_pretokenized=True, add_special_tokens=False
            )
            return encoding.tokens, encoding.ids, encoding.word_ids
        # Whitespace separates BERT's words too, so tokenizing the words joined by spaces
        # gives each word's tokens in turn (and is faster than one pre-tokenized word at a
        # time); a token's word is found from its character offset.
        starts = []
        position = 0
        for word in words:
            starts.append(position)
            position += len(word) + 1
        encoding = self._tokenizer.encode(" ".join(words), add_special_tokens=False)
        token_words = [bisect.bisect_right(starts, begin) - 1 for begin, _ in encoding.offsets]
        return encoding.tokens, encoding.ids, token_words

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        """The vocab ids of tokens (KeyError for a token outside the vocab)."""
        return [self.vocab[t] for t in tokens]
