"""An independent, plain-Python reference of BERT's classic SQuAD preprocessing.

Written from the description of BERT's `tokenization.py` (BasicTokenizer + WordPiece) and
`run_squad.py` (`read_squad_examples`, `convert_examples_to_features`), single-threaded and
without caching, for the tests and the benchmark. It deliberately shares no code with
`components.qa.tokenization` / `components.qa.windows`.
"""

from __future__ import annotations

import collections
import json
import unicodedata

# ---------------------------------------------------------------- tokenization


def load_vocab(path: str) -> dict[str, int]:
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            vocab[line.strip()] = index
    return vocab


def _is_whitespace(char: str) -> bool:
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def whitespace_tokenize(text: str) -> list[str]:
    text = text.strip()
    return text.split() if text else []


class ClassicTokenizer:
    """BERT's FullTokenizer: BasicTokenizer then greedy longest-match WordPiece."""

    def __init__(self, vocab_path: str, do_lower_case: bool = True):
        self.vocab = load_vocab(vocab_path)
        self.do_lower_case = do_lower_case

    def tokenize(self, text: str) -> list[str]:
        out = []
        for token in self._basic(text):
            out.extend(self._wordpiece(token))
        return out

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [self.vocab[t] for t in tokens]

    def _basic(self, text: str) -> list[str]:
        cleaned = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            cleaned.append(" " if _is_whitespace(char) else char)
        spaced = []
        for char in cleaned:
            if _is_chinese_char(ord(char)):
                spaced.extend([" ", char, " "])
            else:
                spaced.append(char)
        split_tokens = []
        for token in whitespace_tokenize("".join(spaced)):
            if self.do_lower_case:
                token = token.lower()
                token = "".join(
                    c for c in unicodedata.normalize("NFD", token)
                    if unicodedata.category(c) != "Mn"
                )
            split_tokens.extend(self._split_on_punc(token))
        return whitespace_tokenize(" ".join(split_tokens))

    @staticmethod
    def _split_on_punc(text: str) -> list[str]:
        output: list[list[str]] = []
        start_new_word = True
        for char in text:
            if _is_punctuation(char):
                output.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(char)
        return ["".join(x) for x in output]

    def _wordpiece(self, text: str) -> list[str]:
        output = []
        for token in whitespace_tokenize(text):
            chars = list(token)
            if len(chars) > 200:
                output.append("[UNK]")
                continue
            is_bad = False
            start = 0
            sub_tokens = []
            while start < len(chars):
                end = len(chars)
                cur = None
                while start < end:
                    substr = "".join(chars[start:end])
                    if start > 0:
                        substr = "##" + substr
                    if substr in self.vocab:
                        cur = substr
                        break
                    end -= 1
                if cur is None:
                    is_bad = True
                    break
                sub_tokens.append(cur)
                start = end
            if is_bad:
                output.append("[UNK]")
            else:
                output.extend(sub_tokens)
        return output


# ---------------------------------------------------------------- run_squad


def _squad_is_whitespace(c: str) -> bool:
    return c == " " or c == "\t" or c == "\r" or c == "\n" or ord(c) == 0x202F


ClassicExample = collections.namedtuple(
    "ClassicExample",
    ["qas_id", "question_text", "doc_tokens", "orig_answer_text", "start_position",
     "end_position", "is_impossible"],
)


def split_doc(context: str) -> tuple[list[str], list[int]]:
    doc_tokens: list[str] = []
    char_to_word_offset = []
    prev_is_whitespace = True
    for c in context:
        if _squad_is_whitespace(c):
            prev_is_whitespace = True
        else:
            if prev_is_whitespace:
                doc_tokens.append(c)
            else:
                doc_tokens[-1] += c
            prev_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def make_example(qas_id, doc, question, answers, is_impossible, is_training):
    """One ClassicExample, or None where training skips it ('Could not find answer').

    `doc` is `split_doc(context)`; `answers` is a list of {"text", "answer_start"};
    training uses the first.
    """
    doc_tokens, char_to_word_offset = doc
    start_position = end_position = None
    orig_answer_text = None
    if is_training:
        if not is_impossible:
            answer = answers[0]
            orig_answer_text = answer["text"]
            offset = answer["answer_start"]
            start_position = char_to_word_offset[offset]
            end_position = char_to_word_offset[offset + len(orig_answer_text) - 1]
            actual = " ".join(doc_tokens[start_position:end_position + 1])
            cleaned = " ".join(whitespace_tokenize(orig_answer_text))
            if actual.find(cleaned) == -1:
                return None
        else:
            start_position = end_position = -1
            orig_answer_text = ""
    return ClassicExample(qas_id, question, doc_tokens, orig_answer_text, start_position,
                          end_position, is_impossible)


def read_squad_examples(path: str, is_training: bool) -> tuple[list[ClassicExample], list[str]]:
    """Examples of a SQuAD (v1.1/v2.0) file, and the ids skipped as 'Could not find answer'."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    examples = []
    skipped = []
    for article in data:
        for paragraph in article["paragraphs"]:
            doc = split_doc(paragraph["context"])
            for qa in paragraph["qas"]:
                example = make_example(
                    qa["id"], doc, qa["question"], qa["answers"],
                    bool(qa.get("is_impossible", False)), is_training,
                )
                if example is None:
                    skipped.append(qa["id"])
                else:
                    examples.append(example)
    return examples, skipped


def _improve_answer_span(doc_tokens, input_start, input_end, tokenizer, orig_answer_text):
    tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
                return new_start, new_end
    return input_start, input_end


def _check_is_max_context(doc_spans, cur_span_index, position) -> bool:
    best_score = None
    best_span_index = None
    for span_index, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score = score
            best_span_index = span_index
    return cur_span_index == best_span_index


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                 max_query_length, is_training) -> list[dict]:
    """One dict per window with the classic feature fields."""
    features = []
    for example in examples:
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
        tok_to_orig_index = []
        orig_to_tok_index = []
        all_doc_tokens = []
        for i, token in enumerate(example.doc_tokens):
            orig_to_tok_index.append(len(all_doc_tokens))
            for sub_token in tokenizer.tokenize(token):
                tok_to_orig_index.append(i)
                all_doc_tokens.append(sub_token)
        tok_start = tok_end = None
        if is_training and not example.is_impossible:
            tok_start = orig_to_tok_index[example.start_position]
            if example.end_position < len(example.doc_tokens) - 1:
                tok_end = orig_to_tok_index[example.end_position + 1] - 1
            else:
                tok_end = len(all_doc_tokens) - 1
            tok_start, tok_end = _improve_answer_span(
                all_doc_tokens, tok_start, tok_end, tokenizer, example.orig_answer_text)
        max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
        doc_spans = []
        start_offset = 0
        while start_offset < len(all_doc_tokens):
            length = min(len(all_doc_tokens) - start_offset, max_tokens_for_doc)
            doc_spans.append((start_offset, length))
            if start_offset + length == len(all_doc_tokens):
                break
            start_offset += min(length, doc_stride)
        for span_index, (span_start, span_length) in enumerate(doc_spans):
            tokens = ["[CLS]"] + query_tokens + ["[SEP]"]
            segment_ids = [0] * len(tokens)
            token_to_orig_map = {}
            token_is_max_context = {}
            for i in range(span_length):
                split_index = span_start + i
                token_to_orig_map[len(tokens)] = tok_to_orig_index[split_index]
                token_is_max_context[len(tokens)] = _check_is_max_context(
                    doc_spans, span_index, split_index)
                tokens.append(all_doc_tokens[split_index])
                segment_ids.append(1)
            tokens.append("[SEP]")
            segment_ids.append(1)
            input_ids = tokenizer.convert_tokens_to_ids(tokens)
            input_mask = [1] * len(input_ids)
            while len(input_ids) < max_seq_length:
                input_ids.append(0)
                input_mask.append(0)
                segment_ids.append(0)
            start_position = end_position = 0
            if is_training and not example.is_impossible:
                doc_end = span_start + span_length - 1
                if tok_start >= span_start and tok_end <= doc_end:
                    offset = len(query_tokens) + 2
                    start_position = tok_start - span_start + offset
                    end_position = tok_end - span_start + offset
            features.append({
                "example_id": example.qas_id,
                "window_index": span_index,
                "tokens": tokens,
                "input_ids": input_ids,
                "input_mask": input_mask,
                "segment_ids": segment_ids,
                "start_position": start_position,
                "end_position": end_position,
                "token_to_orig_map": token_to_orig_map,
                "token_is_max_context": token_is_max_context,
            })
    return features
