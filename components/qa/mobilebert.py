"""MobileBERT encoder configs (the published `bert_config.json` keys) and Model Garden's
`MobileBERTEncoder` built from them: the one place both the Hub module readers
(`components.qa.encoders`, `components.qa.tf1_hub`) and the module writers take them from.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The embedded default encoder: MobileBERT's architecture at 2 layers. Unlike the published
# config it uses layer_norm and initializer_range 0.1: MobileBERT's no_norm is trained by
# distillation from a teacher, and from random weights a no_norm (or 0.02-initialized)
# tiny model does not learn to use the question within minutes (README, "Benchmarks").
TINY_CONFIG_PATH = os.path.join(_PACKAGE_DIR, "configs", "tiny_mobilebert.json")
# The published MobileBERT's config (uncased_L-24_H-128_B-512_A-4_F-4_OPT).
PUBLISHED_CONFIG_PATH = os.path.join(
    _PACKAGE_DIR, "configs", "mobilebert_uncased_L-24_H-128_B-512_A-4_F-4_OPT.json"
)

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
