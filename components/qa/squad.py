"""A SQuAD question as one record, and its tf.Example form.

`SquadExample` is what the ExampleGen writes (one tf.Example per question) and what
the windows, the evaluator and `mbqa predict` read. The feature names below are the
contract between the components. TensorFlow is imported only where a tf.Example is made or
read, so that the metrics and `mbqa evaluate` use `SquadExample` without it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

# tf.Example feature names written by SquadExampleGen.
ID = "id"
TITLE = "title"
CONTEXT = "context"
QUESTION = "question"
ANSWER_TEXTS = "answer_texts"
ANSWER_STARTS = "answer_starts"
IS_IMPOSSIBLE = "is_impossible"
PLAUSIBLE_ANSWER_TEXTS = "plausible_answer_texts"
PLAUSIBLE_ANSWER_STARTS = "plausible_answer_starts"


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """One question about one passage, as given in the SQuAD JSON."""

    id: str
    title: str
    context: str
    question: str
    answer_texts: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()
    is_impossible: bool = False
    plausible_answer_texts: tuple[str, ...] = ()
    plausible_answer_starts: tuple[int, ...] = ()


def to_tf_example(example: SquadExample) -> tf.train.Example:
    """Encodes a question as a tf.Example (strings as UTF-8 bytes)."""
    import tensorflow as tf

    def texts(values: tuple[str, ...]) -> tf.train.Feature:
        encoded = [v.encode("utf-8") for v in values]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))

    def ints(values: tuple[int, ...]) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    feature = {
        ID: texts((example.id,)),
        TITLE: texts((example.title,)),
        CONTEXT: texts((example.context,)),
        QUESTION: texts((example.question,)),
        ANSWER_TEXTS: texts(example.answer_texts),
        ANSWER_STARTS: ints(example.answer_starts),
        IS_IMPOSSIBLE: ints((int(example.is_impossible),)),
        PLAUSIBLE_ANSWER_TEXTS: texts(example.plausible_answer_texts),
        PLAUSIBLE_ANSWER_STARTS: ints(example.plausible_answer_starts),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def from_tf_example(example: tf.train.Example | bytes) -> SquadExample:
    """Decodes a tf.Example written by `to_tf_example` (or its serialized bytes)."""
    import tensorflow as tf

    if isinstance(example, bytes):
        example = tf.train.Example.FromString(example)
    f = example.features.feature

    def texts(name: str) -> tuple[str, ...]:
        return tuple(v.decode("utf-8") for v in f[name].bytes_list.value)

    def ints(name: str) -> tuple[int, ...]:
        return tuple(int(v) for v in f[name].int64_list.value)

    return SquadExample(
        id=texts(ID)[0],
        title=texts(TITLE)[0],
        context=texts(CONTEXT)[0],
        question=texts(QUESTION)[0],
        answer_texts=texts(ANSWER_TEXTS),
        answer_starts=ints(ANSWER_STARTS),
        is_impossible=bool(ints(IS_IMPOSSIBLE)[0]),
        plausible_answer_texts=texts(PLAUSIBLE_ANSWER_TEXTS),
        plausible_answer_starts=ints(PLAUSIBLE_ANSWER_STARTS),
    )
