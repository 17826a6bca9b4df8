"""Whether a .tflite file works in the TFLite Task Library's `BertQuestionAnswerer`.

The Task Library feeds exactly `SEQ_LEN` tokens with a query of at most `QUERY_LEN`, takes
its lower-case WordPiece tokenizer and vocab from the model's metadata, and refuses other
shapes only when it answers (`RuntimeError`). `compatibility` checks all of that, then
loads the file in the real `BertQuestionAnswerer` and answers one question with it.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from components.qa import inference

SEQ_LEN = 384
QUERY_LEN = 64


def answer(path: str, context: str, question: str) -> str:
    """The Task Library's best answer ('' when it gives none)."""
    from tensorflow_lite_support.python.task.text.bert_question_answerer import (
        BertQuestionAnswerer,
    )

    result = BertQuestionAnswerer.create_from_file(path).answer(context, question)
    return result.answers[0].text if result.answers else ""


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
    elif inference.VOCAB_FILE_NAME not in str(metadata):
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
