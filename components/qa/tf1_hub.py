"""MobileBERT TF1 Hub modules as native Keras encoders, and writing such modules.

A TF1 Hub module (the published MobileBERT's format) holds a TF1 graph. Trained through
`hub.KerasLayer`, its variables live outside any distribution strategy's scope, so it
cannot train under `one_device`, `mirrored`, multi-worker, parameter servers or TPUs.
Instead, only the module's *weights* are used: its `variables/` checkpoint, with the
variable names of the original MobileBERT checkpoints (`bert/embeddings/...`,
`bert/encoder/layer_N/...`, `cls/squad/...`), is read into Model Garden's native
`MobileBERTEncoder`, created inside the strategy's scope. The names are mapped by Model
Garden's own table (`official.projects.mobilebert.tf2_model_checkpoint_converter`), and the
per-head attention weights are reshaped as that converter does.

The encoder's shape comes from the checkpoint (layers, sizes, bottlenecks, normalization);
what shapes cannot tell (attention heads, activation, dropout) from the module's
`assets/mobilebert_config.json` if it has one, else from the published MobileBERT config.
`check_conversion` runs the module's own `tokens` (or `squad`) signature next to the
native encoder as built for export (float32), on the same input, so a wrong guess fails
before training, naming what to set. Under a mixed precision policy the native encoder
computes in float16 or bfloat16, like the rest of the QA model.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
from absl import logging

from components.qa import mobilebert

# The signature of a module fine-tuned on SQuAD (outputs start_logits, end_logits).
SQUAD_SIGNATURE = "squad"
# The name of `build_native_encoder`'s model (a layer of the QA model).
NATIVE_MODEL_NAME = "mobilebert_from_tf1_hub"
# An optional file of a module: the MobileBERT config (bert_config.json keys).
MODULE_CONFIG_ASSET = os.path.join("assets", "mobilebert_config.json")
# Input names of the `tokens` signature, in the order of `contracts.SERVING_INPUTS`.
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
TF2_INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
SQUAD_WEIGHTS = "cls/squad/output_weights"  # [2, hidden], as in BERT's run_squad.py
SQUAD_BIAS = "cls/squad/output_bias"  # [2]
# Module variables the QA model does not use (pre-training heads, step counters).
UNUSED_PREFIXES = ("cls/predictions/", "cls/seq_relationship/", "global_step")
# Settings the checkpoint's shapes cannot tell.
SHAPELESS_KEYS = (
    "num_attention_heads", "hidden_act", "hidden_dropout_prob",
    "attention_probs_dropout_prob", "initializer_range", "use_bottleneck_attention",
)
# Largest |native - module| relative to the largest |module output| that passes the check.
CHECK_RELATIVE_TOLERANCE = 1e-3


def _name_replacements(num_feedforward_networks: int) -> list[tuple[str, str]]:
    """Model Garden's MobileBERT TF1 -> TF2 name table, for an encoder without model prefix."""
    from official.projects.mobilebert import tf2_model_checkpoint_converter as converter

    last = str(num_feedforward_networks - 1)
    table = [(src, dst.replace("LAST_FFN_LAYER_ID", last))
             for src, dst in converter._NAME_REPLACEMENT]  # Model Garden's maintained table
    return [("bert/", "") if src == "bert/" else (src, dst) for src, dst in table]


def native_name(original: str, num_feedforward_networks: int) -> str:
    """The native encoder's variable name for an original checkpoint name (the converter's rule:
    every matching pattern is replaced, in the table's order)."""
    name = original
    for src, dst in _name_replacements(num_feedforward_networks):
        if src in name:
            name = name.replace(src, dst)
    return name


_NATIVE_ROOT = re.compile(r"(mobile_bert_embedding|transformer_layer_\d+|pooler)(_\d+)?/")


def _original_shape(key: str, shape: tf.TensorShape) -> tf.TensorShape:
    """The original checkpoint's shape of the native variable `key` (a `_native_key`): the
    original merges the per-head dimensions that Model Garden's converter splits."""
    if key.endswith("attention_output/kernel"):  # [heads, size, out] -> [heads*size, out]
        return tf.TensorShape([shape[0] * shape[1], shape[2]])
    if "/attention/" in key and shape.rank == 3:  # [in, heads, size] -> [in, heads*size]
        return tf.TensorShape([shape[0], shape[1] * shape[2]])
    if "/attention/" in key and shape.rank == 2:  # [heads, size] -> [heads*size]
        return tf.TensorShape([shape[0] * shape[1]])
    return tf.TensorShape(shape)


def _native_key(name: str) -> str:
    """A native variable's name without `:0`, any outer scope, or Keras' `_N` uniquifier."""
    name = name.split(":")[0]
    match = _NATIVE_ROOT.search(name)
    return match.group(1) + "/" + name[match.end():] if match else name


def read_module_variables(module_dir: str) -> dict[str, np.ndarray]:
    """The float variables of a TF1 Hub module's `variables/` checkpoint, by name."""
    prefix = os.path.join(module_dir, "variables", "variables")
    if not tf.io.gfile.exists(prefix + ".index"):
        raise ValueError(f"The TF1 Hub module {module_dir!r} has no variables at {prefix!r}")
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    return {name: reader.get_tensor(name) for name, dtype in dtypes.items() if dtype.is_floating}


def _is_mobilebert(names: set[str]) -> bool:
    return "bert/embeddings/embedding_transformation/kernel" in names


def infer_config(module_dir: str, variables: dict[str, np.ndarray]) -> dict[str, Any]:
    """The MobileBERT config of a module: shapes from its checkpoint, the rest from its
    `assets/mobilebert_config.json` or the published config. Raises ValueError naming
    the module if it is not a MobileBERT module or the config file contradicts the shapes."""
    names = set(variables)
    if not _is_mobilebert(names):
        kind = "a BERT" if "bert/embeddings/word_embeddings" in names else "an unknown"
        raise ValueError(
            f"{module_dir!r} is {kind} TF1 Hub module: training reads TF1 modules with the "
            "original MobileBERT checkpoint layout (bert/embeddings/embedding_transformation"
            "); use a TF2 SavedModel module for BERT (is_tf2=True)"
        )
    layer0 = "bert/encoder/layer_0/"
    norm = "FakeLayerNorm" if "bert/embeddings/FakeLayerNorm/gamma" in names else "LayerNorm"
    word = variables["bert/embeddings/word_embeddings"].shape
    types = variables["bert/embeddings/token_type_embeddings"].shape
    ffn_blocks = {m.group(1) for n in names if (m := re.match(layer0 + r"ffn_layer_(\d+)/", n))}
    shapes = {
        "vocab_size": word[0],
        "embedding_size": word[1],
        "type_vocab_size": types[0],
        "hidden_size": types[1],
        "max_position_embeddings": variables["bert/embeddings/position_embeddings"].shape[0],
        "num_hidden_layers": len({n.split("/")[2] for n in names
                                  if n.startswith("bert/encoder/layer_")}),
        "intra_bottleneck_size": variables[layer0 + "bottleneck/input/dense/kernel"].shape[1],
        "intermediate_size": variables[layer0 + "intermediate/dense/kernel"].shape[1],
        "num_feedforward_networks": len(ffn_blocks) + 1,
        "key_query_shared_bottleneck": layer0 + "bottleneck/attention/dense/kernel" in names,
        "normalization_type": "no_norm" if norm == "FakeLayerNorm" else "layer_norm",
        "classifier_activation": "bert/pooler/dense/kernel" in names,
    }
    shapes = {k: v if isinstance(v, bool | str) else int(v) for k, v in shapes.items()}
    config_path = os.path.join(module_dir, MODULE_CONFIG_ASSET)
    source = config_path if tf.io.gfile.exists(config_path) else mobilebert.PUBLISHED_CONFIG_PATH
    with tf.io.gfile.GFile(source) as f:
        given = json.load(f)
    if source == config_path:
        conflicts = [f"{k}={given[k]!r} (the checkpoint says {v!r})"
                     for k, v in shapes.items() if k in given and given[k] != v]
        if conflicts:
            raise ValueError(f"{config_path} contradicts the module's variables: "
                             + "; ".join(conflicts))
    config = {k: given[k] for k in SHAPELESS_KEYS if k in given}
    config.update(shapes)
    logging.info("MobileBERT config of %s (shapes from its checkpoint, %s from %s): %s",
                 module_dir, ", ".join(SHAPELESS_KEYS), source, config)
    return config


def _input_layers() -> dict[str, tf.keras.Input]:
    return {name: tf.keras.Input(shape=(None,), dtype=tf.int32, name=name)
            for name in INPUT_NAMES}


def build_native_encoder(
    module_dir: str, squad: bool = False, trainable: bool = True
) -> tf.keras.Model:
    """Model Garden's `MobileBERTEncoder` holding the module's weights (build it in scope).

    The model maps int32 `input_ids`, `input_mask`, `segment_ids` [B, L] to the sequence
    output [B, L, H], or with `squad` to `(start_logits, end_logits)` from the module's
    `cls/squad` head, computed in the global Keras policy's dtype. Raises ValueError naming
    every variable that has no counterpart, or for a 'layer_norm' module under a mixed policy.
    """
    variables = read_module_variables(module_dir)
    config = infer_config(module_dir, variables)
    compute_dtype = tf.keras.mixed_precision.global_policy().compute_dtype
    if config["normalization_type"] == "layer_norm" and compute_dtype != "float32":
        # Its LayerNormalization is float32 and its residual sums do not cast (TF 2.15).
        raise ValueError(
            f"Model Garden's MobileBERTEncoder with normalization_type='layer_norm' cannot "
            f"compute in {compute_dtype}: train this module without mixed_precision (the "
            "published MobileBERT's 'no_norm' can)"
        )
    encoder = mobilebert.build_mobilebert_encoder(config)
    inputs = _input_layers()
    sequence = encoder(dict(zip(TF2_INPUT_NAMES, inputs.values(), strict=True)))[
        "sequence_output"
    ]
    outputs: Any = sequence
    head = None
    if squad:
        head = tf.keras.layers.Dense(2, name="squad_logits")
        start, end = tf.unstack(head(sequence), axis=-1)
        outputs = (start, end)
    model = tf.keras.Model(inputs, outputs, name=NATIVE_MODEL_NAME)
    _assign(module_dir, variables, encoder, config["num_feedforward_networks"], head)
    model.trainable = trainable
    return model


def _assign(
    module_dir: str, variables: dict[str, np.ndarray], encoder: tf.keras.Model,
    num_ffn: int, head: tf.keras.layers.Dense | None,
) -> None:
    by_native = {native_name(name, num_ffn): name for name in variables}
    missing, used = [], set()
    for variable in encoder.variables:
        original = by_native.get(_native_key(variable.name))
        if original is None:
            missing.append(_native_key(variable.name))
            continue
        value = variables[original]
        needed = _original_shape(_native_key(variable.name), variable.shape)
        if list(value.shape) != needed.as_list():  # Same size is not enough (transposed).
            raise ValueError(f"{module_dir!r}: {original} has shape {list(value.shape)}, the "
                             f"encoder needs {needed.as_list()} ({_native_key(variable.name)})")
        # [in, heads * size] -> [in, heads, size]: the converter's per-head reshape.
        variable.assign(np.reshape(value, variable.shape))
        used.add(original)
    if head is not None:
        for name in (SQUAD_WEIGHTS, SQUAD_BIAS):
            if name not in variables:
                missing.append(name)
        if SQUAD_WEIGHTS in variables and SQUAD_BIAS in variables:
            head.set_weights([variables[SQUAD_WEIGHTS].T, variables[SQUAD_BIAS]])
            used.update((SQUAD_WEIGHTS, SQUAD_BIAS))
    unused = sorted(n for n in set(variables) - used
                    if not n.startswith(UNUSED_PREFIXES) and not n.startswith("cls/squad/"))
    if missing or unused:
        raise ValueError(
            f"{module_dir!r} does not match a MobileBERT encoder"
            + (f"; missing from the module: {missing}" if missing else "")
            + (f"; not used by the encoder: {unused}" if unused else "")
        )
    logging.info("Read %d variables of %s into a native MobileBERT encoder", len(used),
                 module_dir)


def check_conversion(
    module_dir: str, native: tf.keras.Model, squad: bool = False, seed: int = 0
) -> float:
    """Runs the module's own `tokens` signature (with `squad`, its `squad` signature) and
    `native` (a `build_native_encoder` model, as built) on the same random input.

    Returns the largest absolute difference of the outputs; raises ValueError if it
    exceeds `CHECK_RELATIVE_TOLERANCE` of the output's scale (wrong heads or activation).
    Call it outside any distribution strategy's scope: the module's graph is loaded here.
    """
    from official.nlp.modeling.networks import MobileBERTEncoder

    encoder = next(layer for layer in native.layers if isinstance(layer, MobileBERTEncoder))
    vocab_size = encoder.get_config()["word_vocab_size"]
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(2, 24)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 16:] = 0
    segments = np.zeros_like(ids)
    segments[:, 10:] = 1
    features = dict(zip(INPUT_NAMES, (ids, mask, segments), strict=True))
    signature = hub.load(module_dir).signatures["squad" if squad else "tokens"]
    outputs = signature(**{k: tf.constant(v) for k, v in features.items()})
    if squad:
        expected = np.stack([outputs["start_logits"], outputs["end_logits"]])
        actual = np.stack([t.numpy() for t in native(features, training=False)])
    else:
        expected = outputs["sequence_output"].numpy()
        actual = native(features, training=False).numpy()
    difference = float(np.abs(actual - expected).max())
    scale = float(np.abs(expected).max())
    logging.info("Native encoder vs the TF1 module %s: max abs difference %.3g (outputs up "
                 "to %.3g)", module_dir, difference, scale)
    if difference > CHECK_RELATIVE_TOLERANCE * max(scale, 1.0):
        raise ValueError(
            f"The native MobileBERT built from {module_dir!r} differs from the module's own "
            f"output by {difference:.3g} (outputs up to {scale:.3g}): the settings its "
            f"checkpoint cannot tell ({', '.join(SHAPELESS_KEYS[:2])}) are not the module's; "
            f"write its MobileBERT config to {os.path.join(module_dir, MODULE_CONFIG_ASSET)}"
        )
    return difference


# Writing a module with the original layout (`mbqa make-encoder --format tf1`).


def original_names(encoder_config: dict[str, Any]) -> list[str]:
    """The original checkpoint names of a `MobileBERTEncoder`'s variables (its get_config)."""
    norm = "FakeLayerNorm" if encoder_config["normalization_type"] == "no_norm" else "LayerNorm"
    num_ffn = encoder_config["num_feedforward_networks"]
    dense = ("kernel", "bias")
    scale = ("beta", "gamma")
    names = [f"bert/embeddings/{n}" for n in
             ("word_embeddings", "token_type_embeddings", "position_embeddings")]
    names += [f"bert/embeddings/embedding_transformation/{v}" for v in dense]
    names += [f"bert/embeddings/{norm}/{v}" for v in scale]
    blocks = ["attention/self/query", "attention/self/key", "attention/self/value",
              "attention/output/dense", "bottleneck/input/dense", "output/bottleneck/dense"]
    norms = ["attention/output", "bottleneck/input", "output/bottleneck"]
    if encoder_config["key_query_shared_bottleneck"]:
        blocks.append("bottleneck/attention/dense")
        norms.append("bottleneck/attention")
    for k in range(num_ffn - 1):
        blocks += [f"ffn_layer_{k}/intermediate/dense", f"ffn_layer_{k}/output/dense"]
        norms.append(f"ffn_layer_{k}/output")
    blocks += ["intermediate/dense", "output/dense"]
    norms.append("output")
    for i in range(encoder_config["num_blocks"]):
        layer = f"bert/encoder/layer_{i}"
        names += [f"{layer}/{b}/{v}" for b in blocks for v in dense]
        names += [f"{layer}/{n}/{norm}/{v}" for n in norms for v in scale]
    if encoder_config["classifier_activation"]:
        names += [f"bert/pooler/dense/{v}" for v in dense]
    return names


@contextlib.contextmanager
def _original_layout(encoder_config: dict[str, Any]) -> Iterator[None]:
    """While a `MobileBERTEncoder` is built in a TF1 graph: its variables get the original
    checkpoint names, and attention weights the original [in, heads * size] shapes."""
    from keras.src.layers.core import einsum_dense

    num_ffn = encoder_config["num_feedforward_networks"]
    inverse = {native_name(n, num_ffn): n for n in original_names(encoder_config)}
    native_shapes: dict[int, tf.TensorShape] = {}

    def creator(next_creator, **kwargs):
        scope = tf.compat.v1.get_default_graph().get_name_scope()
        key = _native_key(f"{scope}/{kwargs['name']}")
        if key not in inverse:
            raise ValueError(f"No original MobileBERT name for the variable {key!r}")
        shape = tf.TensorShape(kwargs["shape"])
        merged = _original_shape(key, shape)
        initial = kwargs["initial_value"]
        kwargs.update(
            name=inverse[key].rsplit("/", 1)[1], shape=merged,
            initial_value=lambda: tf.reshape(initial() if callable(initial) else initial,
                                             merged),
        )
        with tf.compat.v1.name_scope(inverse[key].rsplit("/", 1)[0] + "/"):
            variable = next_creator(**kwargs)
        if tf.TensorShape(merged) != shape:
            native_shapes[id(variable)] = shape
        return variable

    original_build = einsum_dense.EinsumDense.build

    def build(layer, input_shape):
        original_build(layer, input_shape)
        for attribute in ("kernel", "bias"):
            variable = getattr(layer, attribute, None)
            if variable is not None and id(variable) in native_shapes:
                setattr(layer, attribute, tf.reshape(variable, native_shapes[id(variable)]))

    einsum_dense.EinsumDense.build = build
    try:
        with tf.variable_creator_scope(creator):
            yield
    finally:
        einsum_dense.EinsumDense.build = original_build


def export_module(
    config: dict[str, Any], out_dir: str, vocab_file: str, do_lower_case: bool, seed: int,
    squad: bool = False,
) -> None:
    """Writes a random MobileBERT as a TF1 Hub module with the published module's layout.

    Signatures `tokens` (`input_ids`, `input_mask`, `segment_ids` -> `sequence_output`,
    `pooled_output`), `tokenization_info` (`vocab_file`, `do_lower_case`) and, with
    `squad`, `squad` (-> `start_logits`, `end_logits`, from `cls/squad/*`); the original
    checkpoint's variable names; `assets/vocab.txt` and `assets/mobilebert_config.json`.
    """
    def module_fn() -> None:
        tf.compat.v1.set_random_seed(seed)
        inputs = {name: tf.compat.v1.placeholder(tf.int32, [None, None], name=name)
                  for name in INPUT_NAMES}
        with _original_layout(mobilebert.mobilebert_encoder_args(config)):
            encoder = mobilebert.build_mobilebert_encoder(config)
            outputs = encoder(
                dict(zip(TF2_INPUT_NAMES, inputs.values(), strict=True)), training=False
            )
        hub.add_signature("tokens", inputs=inputs, outputs={
            key: outputs[key] for key in ("sequence_output", "pooled_output")
        })
        if squad:
            hidden = outputs["sequence_output"].shape[-1]
            initializer = tf.compat.v1.truncated_normal_initializer(stddev=0.02)
            weights = tf.compat.v1.get_variable(SQUAD_WEIGHTS, [2, hidden],
                                                initializer=initializer)
            bias = tf.compat.v1.get_variable(SQUAD_BIAS, [2],
                                             initializer=tf.compat.v1.zeros_initializer())
            logits = tf.einsum("blh,kh->blk", outputs["sequence_output"], weights) + bias
            hub.add_signature(SQUAD_SIGNATURE, inputs=inputs, outputs={
                "start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1],
            })
        add_tokenization_info_signature(vocab_file, do_lower_case)

    export_tf1_module(module_fn, out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, MODULE_CONFIG_ASSET), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


def add_tokenization_info_signature(vocab_file: str, do_lower_case: bool) -> None:
    """In a TF1 module_fn: the `tokenization_info` signature, with the vocab as an asset."""
    vocab = tf.constant(vocab_file)
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, vocab)
    hub.add_signature(
        "tokenization_info", inputs={},
        outputs={"vocab_file": vocab, "do_lower_case": tf.constant(do_lower_case)},
    )


def export_tf1_module(module_fn: Any, out_dir: str) -> None:
    """Builds a TF1 Hub format module from `module_fn` and exports it with its variables."""
    spec = hub.create_module_spec(module_fn)
    with tf.Graph().as_default():
        module = hub.Module(spec)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            module.export(out_dir, session)
