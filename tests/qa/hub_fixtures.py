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

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from components.qa import encoders, tf1_hub

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
        signatures = {tf1_hub.SQUAD_SIGNATURE: squad_fn.get_concrete_function()}
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
            hub.add_signature(tf1_hub.SQUAD_SIGNATURE, inputs=inputs,
                              outputs=squad_model(features))
        if with_vocab:
            tf1_hub.add_tokenization_info_signature(vocab_path, do_lower_case)

    tf1_hub.export_tf1_module(module_fn, out_dir)
    return out_dir


def make_module(out_dir: str, tf_format: str, **kwargs) -> str:
    """`make_tf1_module` or `make_tf2_module` by `tf_format` ('tf1' or 'tf2')."""
    make = make_tf1_module if tf_format == encoders.TF1 else make_tf2_module
    return make(out_dir, **kwargs)


# The original MobileBERT TF1 checkpoint's layout, from the original code (not this
# package's name tables): tests/data/reference/ (see make_mobilebert_tf1_variables.py there).
REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "reference")
ORIGINAL_VARIABLES = os.path.join(REFERENCE_DIR, "mobilebert_tf1_variables.txt")
ORIGINAL_HEADS = os.path.join(REFERENCE_DIR, "mobilebert_tf1_heads.txt")


def read_reference_variables(path: str = ORIGINAL_VARIABLES) -> dict[str, list[int]]:
    """`name -> shape` of a reference file (`name<TAB>shape` lines, `#` comments)."""
    variables = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, shape = line.rstrip("\n").split("\t")
                variables[name] = json.loads(shape)
    return variables


def original_layout(config: dict[str, Any]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(encoder, heads) `name -> shape` of the original checkpoint for a MobileBERT config (the
    original's BertConfig keys; unset keys take modeling.BertConfig's defaults), by the
    generator of the reference files (tests/data/reference/make_mobilebert_tf1_variables.py)."""
    import importlib.util

    path = os.path.join(REFERENCE_DIR, "make_mobilebert_tf1_variables.py")
    spec = importlib.util.spec_from_file_location("make_mobilebert_tf1_variables", path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    return (dict(generator.encoder_variables(config)), dict(generator.head_variables(config)))


def random_original_weights(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, Any]:
    """Distinct random float32 values for the original variables `shapes`, scaled so that the
    24-layer no_norm network stays finite and its attention far from uniform: kernels
    N(0, (0.7/sqrt(fan_in))^2) (query, key: 3/sqrt(fan_in)), FakeLayerNorm gammas 0.8 +- 0.05,
    other vectors N(0, 0.1^2), tables N(0, 0.5^2)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in shapes.items():
        if name.endswith("/gamma"):
            value = 0.8 + 0.05 * rng.standard_normal(shape)
        elif len(shape) == 1:
            value = 0.1 * rng.standard_normal(shape)
        elif name.endswith(("/query/kernel", "/key/kernel")):
            value = rng.standard_normal(shape) * 3.0 / np.sqrt(shape[0])
        elif name.endswith("/kernel"):
            value = rng.standard_normal(shape) * 0.7 / np.sqrt(shape[0])
        else:  # embedding tables, head weights
            value = 0.5 * rng.standard_normal(shape)
        weights[name] = value.astype(np.float32)
    return weights


def write_tf1_checkpoint(module_dir: str, values: dict[str, Any]) -> str:
    """Writes `values` (name -> array) as a TF1 Hub module's `variables/variables`
    checkpoint, under exactly those names; returns `module_dir`."""
    prefix = os.path.join(module_dir, "variables", "variables")
    tf.io.gfile.makedirs(os.path.dirname(prefix))
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[name]) for name in names])
    return module_dir


def original_encoder_outputs(weights: dict[str, Any], input_ids, input_mask, segment_ids,
                             num_attention_heads: int = 4) -> list[np.ndarray]:
    """The embedding output and every layer's output ([B, L, H] each) of MobileBERT as the
    original modeling.py computes them (eval mode), in numpy, from original-named weights:
    trigram_input, use_bottleneck, key_query_shared_bottleneck, no_norm (FakeLayerNorm),
    relu, any number of FFNs, any number of layers."""
    def dense(x, scope):
        return x @ weights[scope + "/kernel"] + weights[scope + "/bias"]

    def norm(x, scope):  # FakeLayerNorm: x * gamma + beta
        return x * weights[scope + "/FakeLayerNorm/gamma"] + weights[scope + "/FakeLayerNorm/beta"]

    def heads(t):  # [B, L, N*H] -> [B, N, L, H]
        return t.reshape(*t.shape[:2], num_attention_heads, -1).transpose(0, 2, 1, 3)

    e = "bert/embeddings/"
    words = weights[e + "word_embeddings"][input_ids]  # [B, L, E]
    after = np.pad(words[:, 1:], ((0, 0), (0, 1), (0, 0)))
    before = np.pad(words[:, :-1], ((0, 0), (1, 0), (0, 0)))
    x = dense(np.concatenate([after, words, before], axis=2), e + "embedding_transformation")
    x = x + weights[e + "token_type_embeddings"][segment_ids]
    x = norm(x + weights[e + "position_embeddings"][None, : x.shape[1]], "bert/embeddings")
    outputs = [x]
    adder = (1.0 - input_mask[:, None, None, :].astype(np.float32)) * -10000.0
    layers = sorted({int(n.split("/")[2][len("layer_"):]) for n in weights
                     if n.startswith("bert/encoder/layer_")})
    for i in layers:
        s = f"bert/encoder/layer_{i}/"
        prev = x
        layer_input = norm(dense(prev, s + "bottleneck/input/dense"), s + "bottleneck/input")
        shared = norm(dense(prev, s + "bottleneck/attention/dense"), s + "bottleneck/attention")
        q = heads(dense(shared, s + "attention/self/query"))
        k = heads(dense(shared, s + "attention/self/key"))
        v = heads(dense(prev, s + "attention/self/value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + adder
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(*x.shape[:2], -1)
        h = norm(dense(context, s + "attention/output/dense") + layer_input,
                 s + "attention/output")
        ffns = sorted({n.split("/")[3] for n in weights
                       if n.startswith(s + "ffn_layer_")}, key=lambda n: int(n.split("_")[-1]))
        for block in [f"{f}/" for f in ffns] + [""]:
            inner = np.maximum(dense(h, s + block + "intermediate/dense"), 0.0)  # relu
            h = norm(dense(inner, s + block + "output/dense") + h, s + block + "output")
        x = norm(dense(h, s + "output/bottleneck/dense") + prev, s + "output/bottleneck")
        outputs.append(x)
    return outputs
