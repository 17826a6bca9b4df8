"""Sliding windows over a passage: BERT's classic SQuAD preprocessing (run_squad.py).

This is `read_squad_examples` + `convert_examples_to_features` of BERT's `run_squad.py`,
which Model Maker's `MobileBertQaSpec` uses: the passage is split into whitespace-separated
words, each word is WordPiece-tokenized on its own, and the passage tokens are cut into
windows `[CLS] query [SEP] span [SEP]` (query truncated to `query_len` tokens, spans of
`seq_len - len(query) - 3` tokens starting every `doc_stride` tokens), zero-padded to
`seq_len`. In training mode each window gets the answer's token positions (after
`_improve_answer_span`), or (0, 0) when the answer is not wholly inside the window or the
question is unanswerable. Every passage token records its word (`token_to_orig_map`) and
whether this window gives it the most context (`token_is_max_context`).

Training uses a question's first answer. Where that answer's text cannot be found in the
passage's words, BERT skips the question ("Could not find answer"); `make_windows` raises
`AnswerNotFoundError` for it, which callers count and report.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np

from components.qa.squad import SquadExample
from components.qa.tokenization import CLS, SEP, WordPieceTokenizer

# run_squad.py's whitespace for splitting the passage into words.
_DOC_WORD = re.compile("[^ \t\r\n\u202f]+")
# Passages whose tokenization is kept (questions about one passage usually come together).
_PASSAGE_CACHE_SIZE = 16

# tf.Example feature names of a window (docs/architecture.md, "Windows").
EXAMPLE_ID = "example_id"
WINDOW_INDEX = "window_index"
INPUT_IDS = "input_ids"
INPUT_MASK = "input_mask"
SEGMENT_IDS = "segment_ids"
START_POSITIONS = "start_positions"
END_POSITIONS = "end_positions"
TOKEN_TO_ORIG_MAP = "token_to_orig_map"
TOKEN_IS_MAX_CONTEXT = "token_is_max_context"


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    """How passages are cut into windows (the spec's `seq_len`, `query_len`, `doc_stride`,
    `do_lower_case`)."""

    seq_len: int = 384
    query_len: int = 64
    doc_stride: int = 128
    do_lower_case: bool = True

    def __post_init__(self):
        for name in ("seq_len", "query_len", "doc_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"WindowConfig.{name}={value!r} must be a positive integer")
        if self.query_len + 3 >= self.seq_len:
            raise ValueError(
                f"WindowConfig: query_len + 3 ({self.query_len + 3}) must be < seq_len "
                f"({self.seq_len}): no room is left for the passage"
            )

    @classmethod
    def from_spec(cls, spec) -> WindowConfig:
        """The window settings of a `components.qa.spec` spec."""
        return cls(spec.seq_len, spec.query_len, spec.doc_stride, spec.do_lower_case)


@dataclasses.dataclass
class Window:
    """One model input: a question with one span of its passage.

    `input_ids`, `input_mask`, `segment_ids`, `word_of_position` and
    `max_context_of_position` have `seq_len` entries; `tokens` has one per real (unpadded)
    position. `word_of_position` gives, per position, the index of its token's word in
    `WindowMaker.doc_words(context)` (-1 for [CLS], the query, [SEP] and padding);
    `max_context_of_position` is 1 where this window gives a passage token its most context,
    else 0 (the tf.Example's `token_to_orig_map` and `token_is_max_context`).
    """

    example_id: str
    window_index: int
    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    start_position: int
    end_position: int
    tokens: list[str]
    word_of_position: list[int]
    max_context_of_position: list[int]

    @functools.cached_property
    def token_to_orig_map(self) -> dict[int, int]:
        """run_squad.py's map: passage token position -> word index."""
        return {p: w for p, w in enumerate(self.word_of_position) if w >= 0}

    @functools.cached_property
    def token_is_max_context(self) -> dict[int, bool]:
        """run_squad.py's map: passage token position -> whether it has its max context."""
        flags = self.max_context_of_position
        return {p: bool(flags[p]) for p in self.token_to_orig_map}


class AnswerNotFoundError(ValueError):
    """Training mode: the question's answer cannot be located in the passage's words
    (BERT skips such questions). `example_id` names the question."""

    def __init__(self, example_id: str, reason: str):
        super().__init__(f"Question {example_id!r}: {reason}")
        self.example_id = example_id


@dataclasses.dataclass(frozen=True)
class _Passage:
    context: str
    words: list[str]
    tokens: list[str]
    ids: list[int]
    token_words: list[int]

    @functools.cached_property
    def word_starts(self) -> list[int]:
        """Where each word starts in the context (only training needs them)."""
        return [match.start() for match in _DOC_WORD.finditer(self.context)]


class WindowMaker:
    """Cuts questions into windows with a WordPiece vocab.

    Args:
      vocab_path: the encoder's WordPiece vocab (`encoders.module_vocab_path(spec.uri)`).
      config: the window settings (default: `WindowConfig()`).
    """

    def __init__(self, vocab_path: str, config: WindowConfig | None = None):
        self.config = config = config or WindowConfig()
        self.tokenizer = WordPieceTokenizer(vocab_path, config.do_lower_case)
        self._cls_id = self.tokenizer.vocab[CLS]
        self._sep_id = self.tokenizer.vocab[SEP]
        self._passages: collections.OrderedDict[str, _Passage] = collections.OrderedDict()

    def doc_words(self, context: str) -> list[str]:
        """The passage's whitespace-separated words, which `token_to_orig_map` indexes."""
        return _DOC_WORD.findall(context)

    def passage_length(self, context: str) -> int:
        """The passage's WordPiece tokens (all windows together)."""
        return len(self._passage(context).tokens)

    def training_windows(self, examples: Iterable[SquadExample]) -> tuple[list[Window], int]:
        """(the training windows of `examples`, how many questions were skipped because their
        answer is not in the passage: `AnswerNotFoundError`, as the SquadTransform skips)."""
        examples = list(examples)
        self.tokenize_ahead(examples)
        windows, skipped = [], 0
        for example in examples:
            try:
                windows.extend(self.make_windows(example, training=True))
            except AnswerNotFoundError:
                skipped += 1
        return windows, skipped

    def tokenize_ahead(self, examples: Sequence[SquadExample]) -> None:
        """Tokenizes the distinct words of these questions, their passages and first answers
        in one call, so that `make_windows` finds them cached (quicker for a batch)."""
        split = self.tokenizer.split_words
        words = [w for c in dict.fromkeys(e.context for e in examples) for w in self.doc_words(c)]
        for example in examples:
            words += split(example.question)
            if example.answer_texts:
                words += split(example.answer_texts[0])
        self.tokenizer.cache_words(words)

    def make_windows(self, example: SquadExample, training: bool) -> list[Window]:
        """The windows of one question, in passage order (none for a passage without tokens).

        Args:
          example: the question.
          training: set the answer positions from the first answer (unanswerable
            questions and windows without the whole answer get (0, 0)); otherwise
            every window gets (0, 0).

        Raises:
          AnswerNotFoundError: in training mode, the first answer's text is not found in
            the passage's words where `answer_starts` points (or points outside it).
        """
        cfg = self.config
        passage = self._passage(example.context)
        query_tokens, query_ids = self.tokenizer.encode(example.question)
        query_tokens = query_tokens[: cfg.query_len]
        query_ids = query_ids[: cfg.query_len]
        answer = self._answer_tokens(example, passage) if training else None

        offset = len(query_tokens) + 2
        head_tokens = [CLS, *query_tokens, SEP]
        head_ids = [self._cls_id, *query_ids, self._sep_id]
        no_words = [-1] * offset
        no_flags = [0] * offset
        windows = []
        for index, (start, length, max_context) in enumerate(
            _layout(len(passage.tokens), cfg.seq_len - offset - 1, cfg.doc_stride)
        ):
            end = start + length
            used = offset + length + 1
            padding = [0] * (cfg.seq_len - used)
            start_position = end_position = 0
            if answer is not None and start <= answer[0] and answer[1] < end:
                start_position = answer[0] - start + offset
                end_position = answer[1] - start + offset
            windows.append(Window(
                example_id=example.id,
                window_index=index,
                input_ids=head_ids + passage.ids[start:end] + [self._sep_id] + padding,
                input_mask=[1] * used + padding,
                segment_ids=no_flags + [1] * (length + 1) + padding,
                start_position=start_position,
                end_position=end_position,
                tokens=head_tokens + passage.tokens[start:end] + [SEP],
                word_of_position=no_words + passage.token_words[start:end]
                + [-1] * (cfg.seq_len - offset - length),
                max_context_of_position=no_flags + max_context + [0] + padding,
            ))
        return windows

    def _passage(self, context: str) -> _Passage:
        passage = self._passages.get(context)
        if passage is None:
            words = self.doc_words(context)
            passage = _Passage(context, words, *self.tokenizer.encode_words(words))
            self._passages[context] = passage
            if len(self._passages) > _PASSAGE_CACHE_SIZE:
                self._passages.popitem(last=False)
        else:
            self._passages.move_to_end(context)
        return passage

    def _answer_tokens(self, example: SquadExample, passage: _Passage) -> tuple[int, int] | None:
        """The answer's first and last passage token, or None if unanswerable."""
        if example.is_impossible:
            return None
        if not example.answer_texts or not example.answer_starts:
            raise AnswerNotFoundError(example.id, "is answerable but has no answer")
        text, char_start = example.answer_texts[0], example.answer_starts[0]
        char_end = char_start + len(text) - 1
        if not text or char_start < 0 or char_end >= len(example.context):
            raise AnswerNotFoundError(
                example.id,
                f"answer_starts[0]={char_start} with answer text of {len(text)} characters "
                f"is outside the passage of {len(example.context)} characters",
            )
        # run_squad.py's char_to_word_offset: the word holding (or last before) a character.
        first_word = bisect.bisect_right(passage.word_starts, char_start) - 1
        last_word = bisect.bisect_right(passage.word_starts, char_end) - 1
        if first_word < 0:
            raise AnswerNotFoundError(
                example.id, f"answer_starts[0]={char_start} is before the passage's first word"
            )
        actual = " ".join(passage.words[first_word : last_word + 1])
        if " ".join(text.split()) not in actual:
            raise AnswerNotFoundError(
                example.id,
                f"could not find the answer {text!r} in the passage words {actual!r} "
                f"at answer_starts[0]={char_start}",
            )
        token_words = passage.token_words
        first = bisect.bisect_left(token_words, first_word)
        if last_word < len(passage.words) - 1:
            last = bisect.bisect_left(token_words, last_word + 1) - 1
        else:
            last = len(passage.tokens) - 1
        return _improve_answer_span(passage.tokens, first, last, self.tokenizer.tokenize(text))


def _improve_answer_span(
    doc_tokens: list[str], first: int, last: int, answer_tokens: list[str]
) -> tuple[int, int]:
    """run_squad.py's `_improve_answer_span`: the first sub-span of [first, last] whose
    tokens are exactly the answer's tokens (e.g. '1895' in '(1895-1943).'), else unchanged."""
    if answer_tokens:
        n = len(answer_tokens)
        for start in range(first, last - n + 2):
            if doc_tokens[start : start + n] == answer_tokens:
                return start, start + n - 1
    return first, last


@functools.lru_cache(maxsize=4096)
def _layout(
    num_tokens: int, max_span: int, doc_stride: int
) -> tuple[tuple[int, int, list[int]], ...]:
    """The windows' passage spans: (start, length, per token 1 if it has its max context
    in this span, else 0); callers must not change the cached lists.

    Spans of at most `max_span` tokens start every `doc_stride` tokens until the last
    token is covered. A token has its max context in the span where min(left, right
    context) + 0.01 * span length is highest, the first such span on ties
    (run_squad.py's `_check_is_max_context`).
    """
    spans = []
    start = 0
    while start < num_tokens:
        length = min(num_tokens - start, max_span)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    if len(spans) == 1:
        return ((0, num_tokens, [1] * num_tokens),)
    best_span = np.zeros(num_tokens, dtype=np.int64)
    best_score = np.full(num_tokens, -np.inf)
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        position = np.arange(start, end + 1)
        score = np.minimum(position - start, end - position) + 0.01 * length
        better = position[score > best_score[start : end + 1]]
        best_span[better] = index
        best_score[better] = score[better - start]
    return tuple(
        (start, length, (best_span[start : start + length] == index).astype(int).tolist())
        for index, (start, length) in enumerate(spans)
    )


def windows_to_tf_examples(windows: Sequence[Window], encoder=None) -> list[bytes]:
    """Windows as serialized tf.Examples (feature names in docs/architecture.md, "Windows";
    `token_to_orig_map` and `token_is_max_context` are `word_of_position` and
    `max_context_of_position`).

    Encoded in one batch by `tfx_bsl.coders.example_coder` (C++ over Arrow; no TensorFlow,
    so that Beam workers need not import it, and ~3x faster than TensorFlow's proto classes).
    `encoder`: a `RecordBatchToExamplesEncoder` to reuse.
    """
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    if not windows:
        return []

    def int_lists(rows: Sequence[Sequence[int]]) -> pa.Array:
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in rows], out=offsets[1:])
        values = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64,
                             count=int(offsets[-1]))
        return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))

    example_ids = pa.array([w.example_id.encode("utf-8") for w in windows],
                           type=pa.large_binary())
    columns = {
        EXAMPLE_ID: pa.LargeListArray.from_arrays(
            pa.array(np.arange(len(windows) + 1, dtype=np.int64)), example_ids),
        WINDOW_INDEX: int_lists([[w.window_index] for w in windows]),
        INPUT_IDS: int_lists([w.input_ids for w in windows]),
        INPUT_MASK: int_lists([w.input_mask for w in windows]),
        SEGMENT_IDS: int_lists([w.segment_ids for w in windows]),
        START_POSITIONS: int_lists([[w.start_position] for w in windows]),
        END_POSITIONS: int_lists([[w.end_position] for w in windows]),
        TOKEN_TO_ORIG_MAP: int_lists([w.word_of_position for w in windows]),
        TOKEN_IS_MAX_CONTEXT: int_lists([w.max_context_of_position for w in windows]),
    }
    batch = pa.RecordBatch.from_arrays(list(columns.values()), list(columns))
    return (encoder or example_coder.RecordBatchToExamplesEncoder()).encode(batch)


def window_from_tf_example(example, vocab: dict[str, int] | None = None) -> Window:
    """Decodes one of `windows_to_tf_examples`'s records (or its parsed tf.Example).

    The tokens are not stored: with `vocab` (token -> id) they are rebuilt from the ids,
    else `tokens` is empty.
    """
    import tensorflow as tf

    if isinstance(example, bytes):
        example = tf.train.Example.FromString(example)
    f = example.features.feature

    def ints(name: str) -> list[int]:
        return [int(v) for v in f[name].int64_list.value]

    input_ids, input_mask = ints(INPUT_IDS), ints(INPUT_MASK)
    tokens = []
    if vocab is not None:
        id_to_token = {i: t for t, i in vocab.items()}
        tokens = [id_to_token[i] for i, m in zip(input_ids, input_mask, strict=True) if m]
    return Window(
        example_id=f[EXAMPLE_ID].bytes_list.value[0].decode("utf-8"),
        window_index=ints(WINDOW_INDEX)[0],
        input_ids=input_ids,
        input_mask=input_mask,
        segment_ids=ints(SEGMENT_IDS),
        start_position=ints(START_POSITIONS)[0],
        end_position=ints(END_POSITIONS)[0],
        tokens=tokens,
        word_of_position=ints(TOKEN_TO_ORIG_MAP),
        max_context_of_position=ints(TOKEN_IS_MAX_CONTEXT),
    )
