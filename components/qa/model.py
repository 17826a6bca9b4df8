"""The span-prediction head on a Hub encoder, Model Maker's training recipe, and export.

The recipe is Model Maker's (`BertQaModel.train`): AdamW (weight decay 0.01, not on
LayerNorm/layer_norm/bias variables), a linear warm-up over the first 10% of the steps
then a linear decay to 0, gradients clipped to a global norm of 1.0, and the loss the mean
of the start and end sparse categorical cross-entropies. The optimizer is
tf-models-official's `create_optimizer(..., optimizer_type='adamw')`, which Model Maker uses.
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging
from official.nlp import optimization

from components.qa import contracts, encoders
from components.qa import spec as spec_lib

WARMUP_PROPORTION = 0.1
START_LOGITS, END_LOGITS = contracts.SERVING_OUTPUTS


def build_qa_model(spec: spec_lib.BertQaSpec) -> tf.keras.Model:
    """The encoder of `spec.uri` with a span head: int32 `[B, L]` inputs → `[B, L]` logits.

    `L` is any length up to the encoder's position embeddings; the SavedModel
    (`export_serving_model`) fixes it at `spec.seq_len`.

    The model takes a dict keyed `contracts.SERVING_INPUTS` and returns a dict keyed
    `contracts.SERVING_OUTPUTS`. With `spec.init_from_squad_model` the module's own SQuAD
    logits are the outputs (no new head). The layers take the global Keras policy; the
    logits are float32 in any policy.
    """
    inputs = {  # Any length: training may trim padded batches (see trainer/dataset.py).
        name: tf.keras.Input(shape=(None,), dtype=tf.int32, name=name)
        for name in contracts.SERVING_INPUTS
    }
    encoder = encoders.load_encoder(spec)
    if spec.init_from_squad_model:
        start_logits, end_logits = encoder(inputs)
    else:
        sequence_output = encoder(inputs)
        dropped = tf.keras.layers.Dropout(spec.dropout_rate, name="span_dropout")(sequence_output)
        logits = tf.keras.layers.Dense(
            2,
            kernel_initializer=tf.keras.initializers.TruncatedNormal(
                stddev=spec.initializer_range
            ),
            name="span_logits",
        )(dropped)
        start_logits, end_logits = tf.unstack(logits, axis=-1)
    outputs = {
        START_LOGITS: tf.keras.layers.Activation("linear", dtype=tf.float32, name=START_LOGITS)(
            start_logits
        ),
        END_LOGITS: tf.keras.layers.Activation("linear", dtype=tf.float32, name=END_LOGITS)(
            end_logits
        ),
    }
    return tf.keras.Model(inputs=inputs, outputs=outputs, name=f"{spec.name}_qa")


def create_optimizer(
    learning_rate: float, train_steps: int
) -> tf.keras.optimizers.Optimizer:
    """Model Maker's AdamW: warm-up over 10% of `train_steps`, linear decay to 0, clip 1.0."""
    if train_steps <= 0:
        raise ValueError(f"train_steps={train_steps} must be > 0")
    warmup_steps = int(train_steps * WARMUP_PROPORTION)
    logging.info(
        "AdamW: learning rate %g, %d steps (%d warm-up), weight decay 0.01, clip norm 1.0",
        learning_rate, train_steps, warmup_steps,
    )
    return optimization.create_optimizer(
        learning_rate, train_steps, warmup_steps, optimizer_type="adamw"
    )


def span_losses() -> tuple[dict[str, tf.keras.losses.Loss], dict[str, float]]:
    """Keras losses and weights: the mean of the start and end cross-entropies (from logits)."""
    losses = {
        name: tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        for name in contracts.SERVING_OUTPUTS
    }
    return losses, {name: 0.5 for name in contracts.SERVING_OUTPUTS}


def compile_qa_model(
    model: tf.keras.Model,
    spec: spec_lib.BertQaSpec,
    train_steps: int,
    steps_per_execution: int = 1,
) -> None:
    """Compiles `model` with Model Maker's recipe for `train_steps` optimizer steps."""
    losses, weights = span_losses()
    model.compile(
        optimizer=create_optimizer(spec.learning_rate, train_steps),
        loss=losses,
        loss_weights=weights,
        steps_per_execution=steps_per_execution,
    )


def export_serving_model(model: tf.keras.Model, path: str, spec: spec_lib.BertQaSpec) -> str:
    """Saves `model` as a SavedModel with the serving contract, and returns `path`.

    `serving_default` maps `input_ids`, `input_mask`, `segment_ids` (int32 `[None, seq_len]`)
    to `start_logits`, `end_logits` (float32 `[None, seq_len]`).
    """
    input_signature = [
        tf.TensorSpec([None, spec.seq_len], tf.int32, name=name)
        for name in contracts.SERVING_INPUTS
    ]

    @tf.function(input_signature=input_signature)
    def serve(input_ids, input_mask, segment_ids):
        inputs = (input_ids, input_mask, segment_ids)
        features = dict(zip(contracts.SERVING_INPUTS, inputs, strict=True))
        outputs = model(features, training=False)
        return {name: tf.cast(outputs[name], tf.float32) for name in contracts.SERVING_OUTPUTS}

    model.save(
        path,
        signatures={contracts.SERVING_SIGNATURE: serve.get_concrete_function()},
        include_optimizer=False,
        save_format="tf",
        save_traces=False,  # Readers use the signature; tracing every layer takes minutes.
    )
    logging.info("Exported the serving model to %s", path)
    return path
