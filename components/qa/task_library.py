"""The TFLite Task Library's `BertQuestionAnswerer`: whether a .tflite file works in it,
its answers, and what part of a passage it reads.

The Task Library feeds exactly `SEQ_LEN` tokens with a query of at most `QUERY_LEN`, takes
its lower-case WordPiece tokenizer and vocab from the model's metadata, and refuses other
shapes only when it answers (`RuntimeError`). `compatibility` checks all of that, then
loads the file in the real `BertQuestionAnswerer` and answers one question with it.

It does not slide windows (tensorflow/tflite-support,
`cc/task/text/bert_question_answerer.cc`, `Preprocess`): it splits the passage on ASCII
spaces, WordPiece-tokenizes each piece and keeps only the first
`SEQ_LEN - 3 - query tokens` tokens; it returns at most `MAX_ANSWERS` spans of at most
`MAX_ANSWER_TOKENS` tokens, never the null answer ([CLS] is not in the passage), and no
answer only when none of the 5 best starts and 5 best ends make a valid span.
`kept_context_end` says where that kept passage ends.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from components.qa import contracts, inference
from components.qa.squad import SquadExample
from components.qa.tokenization import WordPieceTokenizer

SEQ_LEN = 384
QUERY_LEN = 64
# The answers it returns (kPredictAnsNum) and their longest span in tokens (kMaxAnsLen).
MAX_ANSWERS = 5
MAX_ANSWER_TOKENS = 32


def load(path: str, threads: int | None = None):
    """The real `BertQuestionAnswerer` of a .tflite file (`threads`: None = its default)."""
    from tensorflow_lite_support.python.task.core.base_options import BaseOptions
    from tensorflow_lite_support.python.task.text.bert_question_answerer import (
        BertQuestionAnswerer,
        BertQuestionAnswererOptions,
    )

    options = BaseOptions(file_name=path, num_threads=threads or -1)
    return BertQuestionAnswerer.create_from_options(BertQuestionAnswererOptions(options))


def answers(answerer, context: str, question: str) -> list[dict[str, Any]]:
    """Its answers, best first: {'text', 'logit' (start + end logits)}."""
    return [{"text": a.text, "logit": float(a.pos.logit)}
            for a in answerer.answer(context, question).answers]


def answer(path: str, context: str, question: str) -> str:
    """The Task Library's best answer ('' when it gives none)."""
    best = answers(load(path), context, question)
    return best[0]["text"] if best else ""


def kept_context_end(context: str, question: str, tokenizer: WordPieceTokenizer) -> int:
    """Where the part of `context` that `BertQuestionAnswerer` reads ends: the character
    offset of the first space-separated piece none of whose tokens it keeps (`len(context)`
    when it keeps them all). An answer that starts at or after it cannot be found there.

    `tokenizer`: the model's lower-case WordPiece vocab (the package's tokenizer stands in
    for the Task Library's C++ one; both are BERT's FullTokenizer).
    """
    budget = SEQ_LEN - 3 - min(len(tokenizer.tokenize(question)), QUERY_LEN)
    offset = 0
    for piece in context.split(" "):
        if piece:
            tokens = len(tokenizer.tokenize(piece))
            if tokens and budget <= 0:
                return offset
            budget -= tokens
        offset += len(piece) + 1
    return len(context)


def beyond_kept_context(example: SquadExample, tokenizer: WordPieceTokenizer) -> bool:
    """Whether every gold answer of an answerable question starts past the part of the
    passage the Task Library reads (False for unanswerable questions)."""
    if not example.answer_starts:
        return False
    end = kept_context_end(example.context, example.question, tokenizer)
    return min(example.answer_starts) >= end


def compatibility(
    path: str, query_len: int, do_lower_case: bool, context: str, question: str
) -> dict[str, Any]:
    """{'compatible', 'problems' (in words), 'answer' (the Task Library's, or None)}.

    `query_len`/`do_lower_case` are the settings the file was trained and scored with;
    `context`/`question` one question to answer in the Task Library.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        model_buffer = f.read()
    problems = []
    shapes = [list(d["shape"]) for d in
              tf.lite.Interpreter(model_content=model_buffer).get_input_details()]
    if any(shape != [1, SEQ_LEN] for shape in shapes):
        problems.append(f"input shapes {shapes} (needs [1, {SEQ_LEN}])")
    if query_len != QUERY_LEN:
        problems.append(f"query_len {query_len} (the Task Library truncates queries to "
                        f"{QUERY_LEN} tokens)")
    if not do_lower_case:
        problems.append("cased WordPiece (the Task Library lower-cases)")
    metadata = inference.read_tflite_metadata(model_buffer)
    if metadata is None:
        problems.append("no TFLite metadata")
    elif contracts.VOCAB_FILE not in str(metadata):
        problems.append("no WordPiece vocab in the metadata")
    result = {"compatible": False, "problems": problems, "answer": None}
    if problems:
        return result
    try:
        result["answer"] = answer(path, context, question)
    except RuntimeError as e:
        problems.append(f"BertQuestionAnswerer failed: {e}")
        return result
    result["compatible"] = True
    return result
