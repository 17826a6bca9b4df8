"""TF-Hub encoder modules: locating them, their vocab, loading and building them.

Both Hub formats of Model Maker's `BertQaSpec` (`is_tf2`) load through `load_encoder`:

- TF2 SavedModel (the BERT TF2 convention): `module(inputs)` with a dict `input_word_ids`,
  `input_mask`, `input_type_ids` returns a dict with `sequence_output`, `pooled_output`;
  the vocab is the `vocab_file` asset, `do_lower_case` a variable. It trains through
  `hub.KerasLayer` (`HubEncoder`).
- TF1 Hub format (`tfhub_module.pb`, like the published MobileBERT): signature `tokens`
  with inputs `input_ids`, `input_mask`, `segment_ids` and outputs `sequence_output`,
  `pooled_output`; signature `tokenization_info` gives `vocab_file` and `do_lower_case`.
  Only its weights are used: they are read into Model Garden's native `MobileBERTEncoder`
  (`components.qa.tf1_hub`), so it trains under every distribution strategy.

A module fine-tuned on SQuAD (`spec.init_from_squad_model`) has a `squad` signature with
the inputs of its format and outputs `start_logits`, `end_logits` (TF1: the `cls/squad`
head of BERT's run_squad.py).

`make_encoder` writes a randomly initialized MobileBERT (TF Model Garden's
`MobileBERTEncoder`) in either format, so the pipeline runs without downloads; the TF1
format has the published module's layout (original variable names, signatures, assets).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import tensorflow as tf
import tensorflow_hub as hub

from components.qa import mobilebert, tf1_hub

TF1 = "tf1"
TF2 = "tf2"
FORMAT_NAMES = {TF1: "TF1 Hub format", TF2: "TF2 SavedModel format"}
TF1_MODULE_FILE = "tfhub_module.pb"
# Our input names (as in contracts.SERVING_INPUTS) -> the TF2 BERT convention's names.
TF2_INPUT_NAMES = {
    "input_ids": "input_word_ids",
    "input_mask": "input_mask",
    "segment_ids": "input_type_ids",
}

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VOCAB_PATH = os.path.join(_PACKAGE_DIR, "assets", "vocab.txt")



def resolve_module_dir(uri: str) -> str:
    """The local (or gs://) directory of a Hub module given as URL, directory or gs:// path."""
    if uri.startswith(("http://", "https://")):
        return hub.resolve(uri)
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return uri


def module_vocab_path(uri: str) -> str:
    """The module's `assets/vocab.txt`; raises FileNotFoundError naming the module if absent."""
    path = os.path.join(resolve_module_dir(uri), "assets", "vocab.txt")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"The encoder module {uri!r} has no vocab at {path!r}; a BERT/MobileBERT Hub "
            "module ships its WordPiece vocab as assets/vocab.txt"
        )
    return path


def module_format(uri: str) -> str:
    """`TF1` or `TF2`: the Hub format of the module; raises if `uri` is not a Hub module."""
    module_dir = resolve_module_dir(uri)
    if not tf.io.gfile.isdir(module_dir):
        raise FileNotFoundError(
            f"The encoder module {uri!r} does not exist: no directory {module_dir!r}"
        )
    saved_models = [
        os.path.join(module_dir, name)
        for name in (tf.saved_model.SAVED_MODEL_FILENAME_PB,
                     tf.saved_model.SAVED_MODEL_FILENAME_PBTXT)
    ]
    if not any(tf.io.gfile.exists(path) for path in saved_models):
        raise ValueError(
            f"{uri!r} is not a TF-Hub module: looked for {saved_models[0]!r} (present in both "
            "the TF2 SavedModel and the TF1 Hub format) and found none"
        )
    return TF1 if tf.io.gfile.exists(os.path.join(module_dir, TF1_MODULE_FILE)) else TF2


class HubEncoder(hub.KerasLayer):
    """A TF2 SavedModel Hub encoder, trainable.

    `call(inputs)` takes a dict of int32 [batch, seq_len] tensors `input_ids`, `input_mask`,
    `segment_ids` and returns the float32 sequence output [batch, seq_len, hidden], or with
    `squad=True` the tuple `(start_logits, end_logits)`, each [batch, seq_len].
    """

    def __init__(self, handle: str, squad: bool = False, trainable: bool = True, **kwargs):
        self._squad = squad
        if squad:
            outputs = {"signature": tf1_hub.SQUAD_SIGNATURE, "signature_outputs_as_dict": True}
        else:
            outputs = {"output_key": "sequence_output"}
        super().__init__(handle, trainable=trainable, **outputs, **kwargs)

    def _check_trainability(self) -> None:
        if self._signature:  # hub.KerasLayer refuses to train signatures; ours is a SavedModel's.
            return
        super()._check_trainability()

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> Any:
        features = {TF2_INPUT_NAMES[key]: tf.cast(inputs[key], tf.int32)
                    for key in TF2_INPUT_NAMES}
        outputs = super().call(features, training=training)
        if self._squad:
            return outputs["start_logits"], outputs["end_logits"]
        return outputs

    def get_config(self) -> dict[str, Any]:
        config = tf.keras.layers.Layer.get_config(self)
        config.update(handle=self._handle, squad=self._squad)
        return config


def check_module(spec: Any) -> str:
    """The local (or gs://) directory of `spec.uri`, checked against `is_tf2` and for a vocab.

    Raises FileNotFoundError/ValueError naming the uri for a missing module, a directory
    that is not a Hub module, a format that does not match `is_tf2`, or a missing vocab.
    """
    found = module_format(spec.uri)
    expected = TF2 if spec.is_tf2 else TF1
    if found != expected:
        raise ValueError(
            f"is_tf2={spec.is_tf2} expects the {FORMAT_NAMES[expected]}, but {spec.uri!r} is "
            f"in the {FORMAT_NAMES[found]}; set is_tf2={found == TF2}"
        )
    module_vocab_path(spec.uri)
    return resolve_module_dir(spec.uri)


def load_encoder(spec: Any) -> tf.keras.layers.Layer:
    """The spec's Hub encoder (`spec.uri`, `is_tf2`, `trainable`, `init_from_squad_model`).

    Returns a layer: `layer({'input_ids', 'input_mask', 'segment_ids'})` (int32 [B, L])
    gives the sequence output [B, L, H], or `(start_logits, end_logits)` when
    `spec.init_from_squad_model` (the module's SQuAD head). Build it inside the
    distribution strategy's scope. Under a mixed precision policy the native encoder of a
    TF1 module computes in float16/bfloat16; a TF2 SavedModel (`hub.KerasLayer`) keeps the
    float32 it was saved in. Errors as `check_module`.
    """
    module_dir = check_module(spec)
    found = TF2 if spec.is_tf2 else TF1
    logging.info(
        "Loading the encoder %s (%s, trainable=%s%s)", spec.uri, FORMAT_NAMES[found],
        spec.trainable, ", squad signature" if spec.init_from_squad_model else "",
    )
    try:
        if found == TF1:
            return tf1_hub.build_native_encoder(
                module_dir, squad=spec.init_from_squad_model, trainable=spec.trainable
            )
        return HubEncoder(module_dir, squad=spec.init_from_squad_model, trainable=spec.trainable)
    except ValueError as error:
        raise ValueError(f"Cannot use the encoder module {spec.uri!r}: {error}") from error


def vocab_size_of(vocab_path: str) -> int:
    """The number of entries (lines) of a WordPiece vocab file."""
    with tf.io.gfile.GFile(vocab_path) as f:
        return sum(1 for _ in f)


def make_encoder(
    out_dir: str,
    config: dict[str, Any] | str = mobilebert.TINY_CONFIG_PATH,
    vocab_path: str | None = None,
    do_lower_case: bool = True,
    tf_format: str = TF2,
    seed: int = 0,
    squad: bool = False,
) -> str:
    """Writes a randomly initialized MobileBERT encoder as a Hub module; returns `out_dir`.

    `config` is a MobileBERT config (dict or JSON file; default: the tiny embedded one),
    `vocab_path` a WordPiece vocab (default: BERT uncased), `tf_format` `'tf2'` or `'tf1'`
    (load it with `is_tf2` to match; TF1 has the published module's layout, and with
    `squad` a `squad` signature, like the published SQuAD module). The same seed gives the
    same weights.
    """
    if squad and tf_format != TF1:
        raise ValueError("squad=True writes the TF1 Hub format's squad signature: use 'tf1'")
    if tf_format not in FORMAT_NAMES:
        raise ValueError(f"tf_format={tf_format!r} must be one of {sorted(FORMAT_NAMES)}")
    if tf.io.gfile.exists(out_dir) and tf.io.gfile.listdir(out_dir):
        raise FileExistsError(f"{out_dir!r} is not empty; choose a new directory")
    vocab_path = vocab_path or DEFAULT_VOCAB_PATH
    if not tf.io.gfile.exists(vocab_path):
        raise FileNotFoundError(f"The vocab file {vocab_path!r} does not exist")
    config = mobilebert.load_encoder_config(config)
    vocab_size = vocab_size_of(vocab_path)
    mobilebert.build_mobilebert_encoder(config, vocab_size)  # Fails fast on a bad config.
    config["vocab_size"] = vocab_size
    with tempfile.TemporaryDirectory() as staging:
        # Hub modules ship the vocab as assets/vocab.txt: the asset keeps its file name.
        vocab_file = os.path.join(staging, "vocab.txt")
        tf.io.gfile.copy(vocab_path, vocab_file)
        logging.info(
            "Writing a random MobileBERT encoder (%s, %d layers, hidden %d, vocab %d) to %s",
            FORMAT_NAMES[tf_format], config.get("num_hidden_layers", 24),
            config.get("hidden_size", 512), vocab_size, out_dir,
        )
        if tf_format == TF2:
            _export_tf2(config, vocab_size, out_dir, vocab_file, do_lower_case, seed)
        else:
            tf1_hub.export_module(config, out_dir, vocab_file, do_lower_case, seed, squad)
    return out_dir


def _export_tf2(
    config: dict[str, Any], vocab_size: int, out_dir: str, vocab_file: str,
    do_lower_case: bool, seed: int,
) -> None:
    tf.keras.utils.set_random_seed(seed)
    encoder = mobilebert.build_mobilebert_encoder(config, vocab_size)
    inputs = {
        name: tf.keras.Input(shape=(None,), dtype=tf.int32, name=name)
        for name in TF2_INPUT_NAMES.values()
    }
    outputs = encoder(inputs)
    model = tf.keras.Model(
        inputs,
        {key: outputs[key] for key in ("sequence_output", "pooled_output")},
    )
    model.vocab_file = tf.saved_model.Asset(vocab_file)
    model.do_lower_case = tf.Variable(do_lower_case, trainable=False)
    tf.saved_model.save(model, out_dir)
