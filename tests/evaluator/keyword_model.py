"""A QA model with known logits, for the inference, TFLite, evaluator and pusher tests.

`save_keyword_model` exports, with the Trainer's `export_serving_model`, a SavedModel that
scores one keyword token: its best span is that word wherever it occurs, so the EM/F1 it
gets on questions whose answer is (or is not) the keyword are known exactly.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from components.qa import model as model_lib
from components.qa import spec as spec_lib
from components.qa import squad

SEQ_LEN = 32
WORDS = ["houston", "texas", "beyonce", "born", "where", "was", "in", "she", "sang", "choirs",
         "the", "a", ".", ",", "?"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def write_vocab(directory) -> str:
    """A small WordPiece vocab (special tokens + `WORDS`) as `directory/vocab.txt`."""
    path = directory / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


def save_keyword_model(
    path, vocab_path: str, seq_len: int = SEQ_LEN, keyword: str = "houston"
) -> str:
    """A SavedModel with the Trainer's serving contract whose answer is `keyword`.

    Its logits are known: 5.0 at every `keyword` token, 0.0 at other tokens and at padding
    (mask 0); the start logits add 0.1 × the segment id, so the two outputs differ.
    Exported with the Trainer's `export_serving_model`, with the vocab as an asset.
    """
    vocab = open(vocab_path, encoding="utf-8").read().split("\n")
    weights = np.zeros((len(vocab), 1), np.float32)
    weights[vocab.index(keyword)] = 5.0
    inputs = {name: tf.keras.Input((seq_len,), dtype=tf.int32, name=name)
              for name in spec_lib.SERVING_INPUTS}
    score = tf.keras.layers.Embedding(
        len(vocab), 1, embeddings_initializer=tf.keras.initializers.Constant(weights)
    )(inputs["input_ids"])[..., 0]
    mask = tf.cast(inputs["input_mask"], tf.float32)
    segment = tf.cast(inputs["segment_ids"], tf.float32)
    model = tf.keras.Model(inputs, {"start_logits": (score + 0.1 * segment) * mask,
                                    "end_logits": score * mask})
    model.vocab_file = tf.saved_model.Asset(vocab_path)
    spec = spec_lib.MobileBertQaSpec(uri="unused", seq_len=seq_len, query_len=8, doc_stride=8)
    return model_lib.export_serving_model(model, str(path), spec)


def expected_logits(ids, mask, segments, keyword_id):
    score = np.where(ids == keyword_id, 5.0, 0.0) * mask
    return score + 0.1 * segments * mask, score


def random_windows(n: int, seq_len: int = SEQ_LEN, seed: int = 0) -> dict[str, np.ndarray]:
    """`n` windows of random ids, a real-token prefix and two segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(VOCAB), (n, seq_len)).astype(np.int32)
    lengths = rng.integers(seq_len // 2, seq_len + 1, n)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int32)
    segments = ((np.arange(seq_len)[None, :] >= 6) & (mask > 0)).astype(np.int32)
    return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}


def question(qid: str, answer: str | None, context: str = "she was born in houston in texas .",
             text: str = "where was she born ?") -> squad.SquadExample:
    """A question about `context` whose answer is the word `answer` (None: unanswerable)."""
    if answer is None:
        return squad.SquadExample(id=qid, title="t", context=context, question=text,
                                  is_impossible=True)
    return squad.SquadExample(id=qid, title="t", context=context, question=text,
                              answer_texts=(answer,), answer_starts=(context.index(answer),))


def write_records(directory: str, records) -> str:
    """Writes serialized records (or tf.Examples) as one gzipped TFRecord file."""
    tf.io.gfile.makedirs(directory)
    path = f"{directory}/data_tfrecord-00000-of-00001.gz"
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for record in records:
            writer.write(record if isinstance(record, bytes) else record.SerializeToString())
    return path
