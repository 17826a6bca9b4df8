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

import json
import logging
import os
import tempfile
from typing import Any

import tensorflow as tf
import tensorflow_hub as hub

from components.qa import tf1_hub

TF1 = "tf1"
TF2 = "tf2"
FORMAT_NAMES = {TF1: "TF1 Hub format", TF2: "TF2 SavedModel format"}
TF1_MODULE_FILE = "tfhub_module.pb"
# Our input names (as in spec.SERVING_INPUTS) -> the TF2 BERT convention's names.
TF2_INPUT_NAMES = {
    "input_ids": "input_word_ids",
    "input_mask": "input_mask",
    "segment_ids": "input_type_ids",
}
SQUAD_SIGNATURE = "squad"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The embedded default encoder: MobileBERT's architecture at 2 layers. Unlike the published
# config it uses layer_norm and initializer_range 0.1: MobileBERT's no_norm is trained by
# distillation from a teacher, and from random weights a no_norm (or 0.02-initialized)
# tiny model does not learn to use the question within minutes (README, "Benchmarks").
TINY_CONFIG_PATH = os.path.join(_PACKAGE_DIR, "configs", "tiny_mobilebert.json")
DEFAULT_VOCAB_PATH = os.path.join(_PACKAGE_DIR, "assets", "vocab.txt")

# MobileBERT config keys (as in the published bert_config.json) -> MobileBERTEncoder args.
_CONFIG_TO_ENCODER_ARGS = {
    "vocab_size": "word_vocab_size",
    "embedding_size": "word_embed_size",
    "type_vocab_size": "type_vocab_size",
    "max_position_embeddings": "max_sequence_length",
    "num_hidden_layers": "num_blocks",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "hidden_act": "intermediate_act_fn",
    "hidden_dropout_prob": "hidden_dropout_prob",
    "attention_probs_dropout_prob": "attention_probs_dropout_prob",
    "intra_bottleneck_size": "intra_bottleneck_size",
    "initializer_range": "initializer_range",
    "use_bottleneck_attention": "use_bottleneck_attention",
    "key_query_shared_bottleneck": "key_query_shared_bottleneck",
    "num_feedforward_networks": "num_feedforward_networks",
    "normalization_type": "normalization_type",
    "classifier_activation": "classifier_activation",
}
# Features MobileBERTEncoder always has: a config may only confirm them.
_ALWAYS_ON = ("trigram_input", "use_bottleneck")


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
            outputs = {"signature": SQUAD_SIGNATURE, "signature_outputs_as_dict": True}
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


def load_encoder_config(config: dict[str, Any] | str) -> dict[str, Any]:
    """A MobileBERT config (a dict or a JSON file), checked against what can be built."""
    source = "config"
    if isinstance(config, str):
        source = config
        if not tf.io.gfile.exists(config):
            raise FileNotFoundError(f"The MobileBERT config file {config!r} does not exist")
        with tf.io.gfile.GFile(config) as f:
            config = json.load(f)
    unknown = set(config) - set(_CONFIG_TO_ENCODER_ARGS) - set(_ALWAYS_ON)
    if unknown:
        raise ValueError(
            f"{source}: unknown MobileBERT config key(s) {sorted(unknown)}; known: "
            f"{sorted(set(_CONFIG_TO_ENCODER_ARGS) | set(_ALWAYS_ON))}"
        )
    for key in _ALWAYS_ON:
        if not config.get(key, True):
            raise ValueError(f"{source}: {key}=false is not supported (MobileBERT uses it)")
    return dict(config)


def mobilebert_encoder_args(
    config: dict[str, Any] | str, vocab_size: int | None = None
) -> dict[str, Any]:
    """Every argument of Model Garden's `MobileBERTEncoder` for a MobileBERT config.

    `vocab_size`, if given, is the vocab's size; it must match the config's `vocab_size`.
    Arguments the config does not set keep the encoder's defaults.
    """
    import inspect

    from official.nlp.modeling.networks import MobileBERTEncoder

    config = load_encoder_config(config)
    if vocab_size is not None:
        if config.setdefault("vocab_size", vocab_size) != vocab_size:
            raise ValueError(
                f"The config's vocab_size={config['vocab_size']} does not match the vocab's "
                f"{vocab_size} entries"
            )
    parameters = inspect.signature(MobileBERTEncoder.__init__).parameters.values()
    args = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    args.update(
        {_CONFIG_TO_ENCODER_ARGS[k]: v for k, v in config.items() if k not in _ALWAYS_ON}
    )
    return args


def build_mobilebert_encoder(
    config: dict[str, Any] | str, vocab_size: int | None = None
) -> tf.keras.Model:
    """Model Garden's `MobileBERTEncoder` for a MobileBERT config, with random weights."""
    from official.nlp.modeling.networks import MobileBERTEncoder

    return MobileBERTEncoder(**mobilebert_encoder_args(config, vocab_size))


def vocab_size_of(vocab_path: str) -> int:
    """The number of entries (lines) of a WordPiece vocab file."""
    with tf.io.gfile.GFile(vocab_path) as f:
        return sum(1 for _ in f)


def make_encoder(
    out_dir: str,
    config: dict[str, Any] | str = TINY_CONFIG_PATH,
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
    config = load_encoder_config(config)
    vocab_size = vocab_size_of(vocab_path)
    build_mobilebert_encoder(config, vocab_size)  # Fails fast on a bad config.
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
    encoder = build_mobilebert_encoder(config, vocab_size)
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
