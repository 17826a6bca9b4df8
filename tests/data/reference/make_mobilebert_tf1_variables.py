"""Writes mobilebert_tf1_variables.txt and mobilebert_tf1_heads.txt (this folder).

The variable names and shapes of the original MobileBERT TF1 checkpoint, derived by hand
from the ORIGINAL code, not from this package: google-research/google-research
`mobilebert/modeling.py` (read at commits 0c1bbe5fc971a1de1a427debc814e66ab4f1e7fa and
c3de5da58b30c0ba678ec7ccb2e1557d68a4d5a2: same variable scopes), `mobilebert/run_squad.py`
(ec663b464b060d24d9f86c6ac155f6734d82f0e1) and `mobilebert/run_pretraining.py`
(0c1bbe5fc971a1de1a427debc814e66ab4f1e7fa). The functions below restate the variable
scopes and `tf.get_variable` shapes of `BertModel.__init__`, `embedding_lookup`,
`embedding_postprocessor`, `layer_norm`, `transformer_model`, `attention_layer`,
`dense_layer_2d/3d/3d_proj`, `create_model` (run_squad.py) and `get_logits` /
`get_next_sentence_output` (run_pretraining.py); this package's own name tables
(`components.qa.tf1_hub`) are deliberately not used.

    .venv/bin/python tests/data/reference/make_mobilebert_tf1_variables.py [CONFIG_JSON]

CONFIG_JSON defaults to the published config (components/qa/configs/
mobilebert_uncased_L-24_H-128_B-512_A-4_F-4_OPT.json, the same values as the original's
mobilebert/config/uncased_L-24_H-128_B-512_A-4_F-4_OPT.json at commit 38e51d79).
"""

from __future__ import annotations

import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DEFAULT_CONFIG = os.path.join(
    ROOT, "components", "qa", "configs", "mobilebert_uncased_L-24_H-128_B-512_A-4_F-4_OPT.json"
)
SOURCE = "google-research/google-research mobilebert/"


def _norm(scope: str, c: dict, width: int) -> list[tuple[str, list[int]]]:
    """modeling.layer_norm with name=None: 'no_norm' -> FakeLayerNorm/{beta,gamma};
    'layer_norm' -> contrib layer_norm's LayerNorm/{beta,gamma}; both [width]."""
    name = "FakeLayerNorm" if c["normalization_type"] == "no_norm" else "LayerNorm"
    return [(f"{scope}/{name}/beta", [width]), (f"{scope}/{name}/gamma", [width])]


def _dense(scope: str, inputs: int, outputs: int) -> list[tuple[str, list[int]]]:
    """dense_layer_2d / tf.layers.dense: kernel [in, out], bias [out]."""
    return [(f"{scope}/kernel", [inputs, outputs]), (f"{scope}/bias", [outputs])]


def encoder_variables(c: dict) -> list[tuple[str, list[int]]]:
    """BertModel's variables (scope 'bert') in creation order."""
    hidden, embed = c["hidden_size"], c.get("embedding_size") or c["hidden_size"]
    bottleneck = c.get("intra_bottleneck_size") or hidden
    heads, inner = c["num_attention_heads"], c["intermediate_size"]
    use_bottleneck = c.get("use_bottleneck", False)
    out = [("bert/embeddings/word_embeddings", [c["vocab_size"], embed])]
    if c.get("trigram_input", False) or embed != hidden:
        # trigram_input concatenates the next, current and previous token's embedding.
        width = 3 * embed if c.get("trigram_input", False) else embed
        out += _dense("bert/embeddings/embedding_transformation", width, hidden)
    out += [("bert/embeddings/token_type_embeddings", [c["type_vocab_size"], hidden]),
            ("bert/embeddings/position_embeddings", [c["max_position_embeddings"], hidden])]
    out += _norm("bert/embeddings", c, hidden)
    true_hidden = bottleneck if use_bottleneck else hidden
    head_size = true_hidden // heads
    for i in range(c["num_hidden_layers"]):
        layer = f"bert/encoder/layer_{i}"
        query_in = key_in = value_in = hidden
        if use_bottleneck:
            out += _dense(f"{layer}/bottleneck/input/dense", hidden, bottleneck)
            out += _norm(f"{layer}/bottleneck/input", c, bottleneck)
            if c.get("use_bottleneck_attention", False):
                query_in = key_in = value_in = bottleneck
            elif c.get("key_query_shared_bottleneck", False):
                out += _dense(f"{layer}/bottleneck/attention/dense", hidden, bottleneck)
                out += _norm(f"{layer}/bottleneck/attention", c, bottleneck)
                query_in = key_in = bottleneck
        for name, inputs in (("query", query_in), ("key", key_in), ("value", value_in)):
            out += _dense(f"{layer}/attention/self/{name}", inputs, heads * head_size)
        out += _dense(f"{layer}/attention/output/dense", heads * head_size, true_hidden)
        out += _norm(f"{layer}/attention/output", c, true_hidden)
        for k in range(c.get("num_feedforward_networks", 1) - 1):
            out += _dense(f"{layer}/ffn_layer_{k}/intermediate/dense", true_hidden, inner)
            out += _dense(f"{layer}/ffn_layer_{k}/output/dense", inner, true_hidden)
            out += _norm(f"{layer}/ffn_layer_{k}/output", c, true_hidden)
        out += _dense(f"{layer}/intermediate/dense", true_hidden, inner)
        out += _dense(f"{layer}/output/dense", inner, true_hidden)
        out += _norm(f"{layer}/output", c, true_hidden)
        if use_bottleneck:
            out += _dense(f"{layer}/output/bottleneck/dense", true_hidden, hidden)
            out += _norm(f"{layer}/output/bottleneck", c, hidden)
    if c.get("classifier_activation", True):
        out += _dense("bert/pooler/dense", hidden, hidden)
    return out


def head_variables(c: dict) -> list[tuple[str, list[int]]]:
    """The heads outside BertModel: run_squad.py's cls/squad, run_pretraining.py's masked LM
    (cls/predictions, its transform normalized by modeling.layer_norm's default
    'layer_norm') and next-sentence (cls/seq_relationship) heads."""
    hidden, embed = c["hidden_size"], c.get("embedding_size") or c["hidden_size"]
    out = [("cls/squad/output_weights", [2, hidden]), ("cls/squad/output_bias", [2])]
    out += _dense("cls/predictions/transform/dense", hidden, hidden)
    out += [("cls/predictions/transform/LayerNorm/beta", [hidden]),
            ("cls/predictions/transform/LayerNorm/gamma", [hidden]),
            ("cls/predictions/output_bias", [c["vocab_size"]])]
    if hidden != embed:
        out += [("cls/predictions/extra_output_weights", [c["vocab_size"], hidden - embed])]
    out += [("cls/seq_relationship/output_weights", [2, hidden]),
            ("cls/seq_relationship/output_bias", [2])]
    return out


def _count(variables: list[tuple[str, list[int]]]) -> int:
    return sum(math.prod(shape) for _, shape in variables)


ENCODER_HEADER = """\
# The variables of the original MobileBERT TF1 checkpoint's encoder (TF1 Hub module
# `variables/`) for the published config uncased_L-24_H-128_B-512_A-4_F-4_OPT
# (tfhub.dev MobileBERT), whose values are in
# {config}.
# One `name<TAB>shape` per line (shape as JSON), in the order modeling.py creates them.
#
# Derived from the ORIGINAL code, not from this package's name tables:
# {source}modeling.py at commits 0c1bbe5fc971a1de1a427debc814e66ab4f1e7fa and
# c3de5da58b30c0ba678ec7ccb2e1557d68a4d5a2 (same scopes), by applying its variable scopes
# and tf.get_variable shapes to the config (generator: make_mobilebert_tf1_variables.py,
# this folder). The rules, with H=hidden_size, E=embedding_size, B=intra_bottleneck_size,
# I=intermediate_size, A heads of B/A each (use_bottleneck):
# - BertModel: variable_scope "bert"; "embeddings": word_embeddings [V, E]; trigram_input
#   concatenates 3 token embeddings -> dense_layer_2d "embedding_transformation" [3E, H];
#   token_type_embeddings [2, H], position_embeddings [512, H]; layer_norm(name=None).
# - layer_norm with normalization_type "no_norm": scope "FakeLayerNorm", beta/gamma [width]
#   ("layer_norm" would be contrib's "LayerNorm"/{{beta,gamma}}).
# - "encoder"/"layer_%d": "bottleneck"/"input" dense [H, B] + norm; key_query_shared_bottleneck:
#   "bottleneck"/"attention" dense [H, B] + norm (query and key read it, value reads the
#   layer input [H]); "attention"/"self"/query,key [B, A*B/A], value [H, A*B/A]
#   (dense_layer_3d keeps kernels 2-D: [in, heads*size]); "attention"/"output"/"dense"
#   [A*B/A, B] (dense_layer_3d_proj) + norm; num_feedforward_networks-1 times
#   "ffn_layer_%d"/{{"intermediate"/"dense" [B, I], "output"/"dense" [I, B] + norm}}; then
#   "intermediate"/"dense" [B, I], "output"/"dense" [I, B] + norm, "output"/"bottleneck"/
#   "dense" [B, H] + norm.
# - "pooler"/"dense" only with classifier_activation (false here: no pooler variables).
# Each dense has kernel [in, out] and bias [out].
#
# {count} variables, {params:,} parameters (the published MobileBERT's 24.6 M: encoder only;
# the cls/squad head adds 2*H+2 = {squad}).
#
# Beyond the encoder (not in this file; see mobilebert_tf1_heads.txt): a module fine-tuned
# with run_squad.py holds cls/squad/output_weights [2, H] and output_bias [2]; a checkpoint of
# run_pretraining.py also holds the masked-LM head cls/predictions/* and the next-sentence
# head cls/seq_relationship/*, plus global_step (int64) and optimizer slots. Which of these
# the published Hub module's `variables/` holds could not be checked offline (the module is
# not downloadable here); the reader's UNUSED_PREFIXES drops cls/predictions/,
# cls/seq_relationship/ and global_step if present.
"""

HEADS_HEADER = """\
# Variables outside the MobileBERT encoder that original MobileBERT checkpoints may hold,
# for the published config ({config});
# `name<TAB>shape` per line.
# Derived from the ORIGINAL code: {source}run_squad.py at commit
# ec663b464b060d24d9f86c6ac155f6734d82f0e1 (create_model: tf.get_variable
# "cls/squad/output_weights" [2, H], "cls/squad/output_bias" [2]) and run_pretraining.py at
# commit 0c1bbe5fc971a1de1a427debc814e66ab4f1e7fa (get_logits: variable_scope
# "cls/predictions"/"transform" tf.layers.dense [H, H] + modeling.layer_norm (default
# "layer_norm" -> LayerNorm/{{beta,gamma}}), output_bias [V], extra_output_weights [V, H-E]
# since H != E; get_next_sentence_output: "cls/seq_relationship" output_weights [2, H],
# output_bias [2]). Generator: make_mobilebert_tf1_variables.py (this folder).
# {count} variables, {params:,} parameters; not used by a MobileBERT encoder except cls/squad
# (the SQuAD head of `init_from_squad_model`).
"""


def _write(path: str, header: str, variables: list[tuple[str, list[int]]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        for name, shape in variables:
            f.write(f"{name}\t{json.dumps(shape)}\n")


def main(config_path: str = DEFAULT_CONFIG) -> None:
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    shown = os.path.relpath(config_path, ROOT)
    encoder = encoder_variables(config)
    heads = head_variables(config)
    _write(os.path.join(HERE, "mobilebert_tf1_variables.txt"), ENCODER_HEADER.format(
        config=shown, source=SOURCE, count=len(encoder), params=_count(encoder),
        squad=2 * config["hidden_size"] + 2,
    ), encoder)
    _write(os.path.join(HERE, "mobilebert_tf1_heads.txt"), HEADS_HEADER.format(
        config=shown, source=SOURCE, count=len(heads), params=_count(heads),
    ), heads)
    print(f"encoder: {len(encoder)} variables, {_count(encoder):,} parameters; "
          f"heads: {len(heads)} variables, {_count(heads):,} parameters")


if __name__ == "__main__":
    main(*sys.argv[1:])
