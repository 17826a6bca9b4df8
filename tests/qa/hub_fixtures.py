"""Tiny TF-Hub encoder modules of both formats, built in a few seconds, for tests.

They follow the conventions `components.qa.encoders` documents (TF2: dict in/out with
`input_word_ids`/`input_mask`/`input_type_ids`; TF1: `tokens`, `tokenization_info` and
optionally `squad` signatures with `input_ids`/`input_mask`/`segment_ids`), with a toy
network (embeddings + one dense layer), not MobileBERT: they stand in for third-party
modules. Use `components.qa.encoders.make_encoder` for a real MobileBERT.

    from tests.qa import hub_fixtures
    uri = hub_fixtures.make_module(str(tmp_path / "m"), "tf1", squad=True)
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_hub as hub

from components.qa import encoders

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "of", "is", "what", "who", "where", "when", "a", "an", "and", "in", "was",
    "capital", "color", "city", "river", "paris", "france", "blue", "red", "green",
    "north", "south", "year", "name", "?", ".", ",", "un", "##able", "##s", "##ing",
]
TINY_VOCAB = SPECIAL_TOKENS + WORDS


def write_vocab(path: str, tokens: list[str] | None = None) -> str:
    """Writes a WordPiece vocab (one token a line; default `TINY_VOCAB`); returns the path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{token}\n" for token in tokens or TINY_VOCAB))
    return path


def _toy_encoder(vocab_size: int, hidden: int) -> tuple[tf.keras.Model, tf.keras.Model]:
    """(encoder, squad model) on TF2-named int32 inputs; the squad model shares the encoder."""
    inputs = {
        name: tf.keras.Input(shape=(None,), dtype=tf.int32, name=name)
        for name in encoders.TF2_INPUT_NAMES.values()
    }
    words = tf.keras.layers.Embedding(vocab_size, hidden)(inputs["input_word_ids"])
    segments = tf.keras.layers.Embedding(2, hidden)(inputs["input_type_ids"])
    mask = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]
    sequence = tf.keras.layers.Dense(hidden, activation="tanh")(words + segments) * mask
    encoder = tf.keras.Model(
        inputs, {"sequence_output": sequence, "pooled_output": sequence[:, 0]}
    )
    logits = tf.keras.layers.Dense(2)(sequence)
    squad = tf.keras.Model(
        inputs, {"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}
    )
    return encoder, squad


def make_tf2_module(
    out_dir: str, vocab_path: str | None = None, do_lower_case: bool = True,
    hidden: int = 8, squad: bool = False, with_vocab: bool = True, seed: int = 0,
) -> str:
    """A tiny TF2 SavedModel Hub module (optionally with a `squad` signature).

    A given `vocab_path` must be named vocab.txt (the asset keeps its file name).
    """
    tf.keras.utils.set_random_seed(seed)
    vocab_path = vocab_path or write_vocab(os.path.join(out_dir + "_src", "vocab.txt"))
    encoder, squad_model = _toy_encoder(encoders.vocab_size_of(vocab_path), hidden)
    signatures = None
    if squad:
        specs = {
            name: tf.TensorSpec([None, None], tf.int32, name=name)
            for name in encoders.TF2_INPUT_NAMES.values()
        }
        squad_fn = tf.function(squad_model.call, input_signature=[specs])
        signatures = {encoders.SQUAD_SIGNATURE: squad_fn.get_concrete_function()}
        encoder.squad_head = squad_model
    if with_vocab:
        encoder.vocab_file = tf.saved_model.Asset(vocab_path)
    encoder.do_lower_case = tf.Variable(do_lower_case, trainable=False)
    tf.saved_model.save(encoder, out_dir, signatures=signatures)
    return out_dir


def make_tf1_module(
    out_dir: str, vocab_path: str | None = None, do_lower_case: bool = True,
    hidden: int = 8, squad: bool = False, with_vocab: bool = True, seed: int = 0,
) -> str:
    """A tiny TF1 Hub format module: `tokens`, `tokenization_info` (and `squad`) signatures."""
    vocab_path = vocab_path or write_vocab(os.path.join(out_dir + "_src", "vocab.txt"))
    vocab_size = encoders.vocab_size_of(vocab_path)

    def module_fn() -> None:
        tf.compat.v1.set_random_seed(seed)
        inputs = {
            name: tf.compat.v1.placeholder(tf.int32, [None, None], name=name)
            for name in encoders.TF2_INPUT_NAMES
        }
        encoder, squad_model = _toy_encoder(vocab_size, hidden)
        features = {encoders.TF2_INPUT_NAMES[k]: v for k, v in inputs.items()}
        hub.add_signature("tokens", inputs=inputs, outputs=encoder(features))
        if squad:
            hub.add_signature(encoders.SQUAD_SIGNATURE, inputs=inputs,
                              outputs=squad_model(features))
        if with_vocab:
            encoders.add_tokenization_info_signature(vocab_path, do_lower_case)

    encoders.export_tf1_module(module_fn, out_dir)
    return out_dir


def make_module(out_dir: str, tf_format: str, **kwargs) -> str:
    """`make_tf1_module` or `make_tf2_module` by `tf_format` ('tf1' or 'tf2')."""
    make = make_tf1_module if tf_format == encoders.TF1 else make_tf2_module
    return make(out_dir, **kwargs)
