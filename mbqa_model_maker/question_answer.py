"""Model Maker's `question_answer` API on this package's code.

Model Maker code runs with only its imports changed (`tflite_model_maker` →
`mbqa_model_maker`). Windows come from the Transform's `WindowMaker`, training is the
Trainer's `train_and_export` (Model Maker's recipe, every `distribution_strategy`), answers
come from the evaluator's postprocessing, scores from the same SQuAD scripts Model Maker
calls (tf-models-official `squad_evaluate_v1_1` / `v2_0`: SQuAD 1.1 gives `exact_match`
and `final_f1` as fractions, 2.0 gives `final_exact`/`final_f1` in percent), and the TFLite
file from the Pusher's exporter, with Task Library metadata.

Moving the same job to the TFX pipeline (`mbqa run --set KEY=VALUE`, README "Settings"):

| Model Maker                                  | pipeline setting                           |
| -------------------------------------------- | ------------------------------------------ |
| `model_spec` (its class, its parameters)     | `spec_class`, `spec` (JSON) / `spec.PARAM` |
| `DataLoader.from_squad(train, validation)`   | `data_root`, `train_pattern`, `eval_pattern` |
| `batch_size`                                 | `spec.default_batch_size`                  |
| `epochs * steps_per_epoch`                   | `train_steps`                              |
| `export(quantization_config=...)`            | `quantizations` (the first one ships)      |
| `export(export_dir)`                         | `push_destination`                         |
| `evaluate(null_score_diff_threshold=...)`    | the `QaEvaluator` component's argument of  |
|                                              | that name (not a pipeline setting)         |

The pipeline adds what a script cannot: a gate on EM/F1 against the last blessed model,
warm start from it, caching of unchanged steps, and Vertex AI / Kubeflow runners.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

import tensorflow as tf
from official.nlp.tools import squad_evaluate_v1_1, squad_evaluate_v2_0

from components.qa import answering, encoders, inference, metrics, postprocess, tflite, windows
from components.qa import model as model_lib
from components.qa.spec import BertQaSpec, MobileBertQaSpec, MobileBertQaSquadSpec
from components.qa.squad import SquadExample
from components.trainer import run_fn
from mbqa_model_maker import model_spec as model_spec_lib
from mbqa_model_maker.config import ExportFormat, QuantizationConfig
from mbqa_model_maker.data_loader import DataLoader

__all__ = ["BertQaSpec", "DataLoader", "MobileBertQaSpec", "MobileBertQaSquadSpec",
           "QuestionAnswer", "create"]


class QuestionAnswer:
    """A question-answering model trained or built from a spec (Model Maker's class)."""

    DEFAULT_EXPORT_FORMAT = (ExportFormat.TFLITE, ExportFormat.VOCAB)
    ALLOWED_EXPORT_FORMAT = (ExportFormat.TFLITE, ExportFormat.VOCAB, ExportFormat.SAVED_MODEL)

    def __init__(self, model_spec: BertQaSpec, shuffle: bool):
        self.model_spec = model_spec
        self.shuffle = shuffle  # training windows are always shuffled (seeded)
        self.model: tf.keras.Model | None = None
        self._work_dir = tempfile.TemporaryDirectory(prefix="mbqa_model_maker_")
        self._serving_dir: str | None = None

    @classmethod
    def create(cls, train_data: DataLoader, model_spec, batch_size: int | None = None,
               epochs: int = 2, steps_per_epoch: int | None = None, shuffle: bool = False,
               do_train: bool = True) -> QuestionAnswer:
        """Trains a model of `model_spec` on `train_data` (or only builds it)."""
        model = cls(model_spec_lib.get(model_spec), shuffle=shuffle)
        if do_train:
            model.train(train_data, epochs, batch_size, steps_per_epoch)
        else:
            model.create_model()
        return model

    def create_model(self) -> tf.keras.Model:
        """The spec's model with a new span head, untrained."""
        self.model = model_lib.build_qa_model(self.model_spec)
        self._serving_dir = None
        return self.model

    def train(self, train_data: DataLoader, epochs: int | None = None,
              batch_size: int | None = None, steps_per_epoch: int | None = None):
        """Trains for `epochs` (default 2) of `steps_per_epoch` (default: the windows of
        `train_data` over `batch_size`, default `model_spec.default_batch_size`)."""
        spec = self.model_spec
        batch_size = batch_size or spec.default_batch_size
        if len(train_data) < batch_size:
            raise ValueError(f"The size of the train_data ({len(train_data)}) couldn't be "
                             f"smaller than batch_size ({batch_size}).")
        steps_per_epoch = steps_per_epoch or len(train_data) // batch_size
        train_steps = (epochs or 2) * steps_per_epoch
        model_dir = spec.model_dir or os.path.join(self._work_dir.name, "model")
        self._serving_dir = run_fn.train_and_export(
            spec, train_data.files, train_data.files, self._serving_path(), model_dir,
            train_steps=train_steps, eval_steps=0, batch_size=batch_size,
        )
        self.model = model_lib.build_qa_model(spec)
        self.model.load_weights(os.path.join(model_dir, "checkpoints", "final")).expect_partial()
        return self.model

    def summary(self) -> None:
        self._require_model().summary()

    def evaluate(self, data: DataLoader, max_answer_length: int = 30,
                 null_score_diff_threshold: float = 0.0, verbose_logging: bool = False,
                 output_dir: str | None = None) -> dict:
        """SQuAD metrics of the model on `data` (see the module docstring for the keys).
        With `output_dir`, writes predictions.json, nbest_predictions.json (and
        null_odds.json for SQuAD 2.0) there."""
        predictor = inference.SavedModelPredictor(self._serving())
        return self._score(predictor, data, max_answer_length, null_score_diff_threshold,
                           verbose_logging, output_dir)

    def evaluate_tflite(self, tflite_filepath: str, data: DataLoader,
                        max_answer_length: int = 30, null_score_diff_threshold: float = 0.0,
                        verbose_logging: bool = False, output_dir: str | None = None) -> dict:
        """`evaluate` for an exported `.tflite` file."""
        predictor = inference.TFLitePredictor(tflite_filepath)
        return self._score(predictor, data, max_answer_length, null_score_diff_threshold,
                           verbose_logging, output_dir)

    def answer(self, context: str, question: str) -> str:
        """The model's answer to `question` about `context` (the Task Library's order)."""
        example = SquadExample(id="question", title="", context=context, question=question)
        maker = windows.WindowMaker(self._vocab(),
                                    windows.WindowConfig.from_spec(self.model_spec))
        answers = answering.answer_questions(
            inference.SavedModelPredictor(self._serving()), [example], maker,
            answering.AnswerSettings(batch_size=self.model_spec.predict_batch_size),
        )
        return answers.predictions[example.id]

    def export(self, export_dir: str, tflite_filename: str = "model.tflite",
               label_filename: str = "labels.txt", vocab_filename: str = "vocab.txt",
               saved_model_filename: str = "saved_model", tfjs_folder_name: str = "tfjs",
               export_format: Any = None, **kwargs) -> None:
        """Writes the model in `export_format` (default: the TFLite file with metadata).

        kwargs: `quantization_config` (a `QuantizationConfig`, 'default' = dynamic range,
        None = float32) and `export_metadata_json_file` for the TFLite file.
        """
        del label_filename, tfjs_folder_name  # formats question answering does not allow
        with_metadata = kwargs.pop("with_metadata", True)
        if not with_metadata:
            logging.warning("with_metadata=False: the TFLite file carries its metadata "
                            "anyway (the Task Library needs it)")
        formats = export_format or ((ExportFormat.TFLITE,) if with_metadata
                                    else self.DEFAULT_EXPORT_FORMAT)
        formats = formats if isinstance(formats, list | tuple) else (formats,)
        for export in formats:
            if export not in self.ALLOWED_EXPORT_FORMAT:
                raise ValueError(f"Export format {export} is not allowed.")
        quantization_config = kwargs.pop("quantization_config", "default")
        metadata_json = kwargs.pop("export_metadata_json_file", False)
        if kwargs:
            raise TypeError(f"export() got unknown parameters {sorted(kwargs)}")
        tf.io.gfile.makedirs(export_dir)
        if ExportFormat.TFLITE in formats:
            self._export_tflite(os.path.join(export_dir, tflite_filename), quantization_config,
                                metadata_json)
        if ExportFormat.SAVED_MODEL in formats:
            path = os.path.join(export_dir, saved_model_filename)
            model_lib.export_serving_model(self._require_model(), path, self.model_spec)
        if ExportFormat.VOCAB in formats:
            path = os.path.join(export_dir, vocab_filename)
            tf.io.gfile.copy(self._vocab(), path, overwrite=True)
            logging.info("Saved the vocab to %s", path)

    def _export_tflite(self, path: str, quantization_config: Any = "default",
                       export_metadata_json_file: bool = False) -> str:
        if quantization_config == "default":
            quantization_config = QuantizationConfig.for_dynamic()
        quantization = quantization_config.quantization if quantization_config else "float32"
        representative = None
        if quantization == "int8":
            representative = quantization_config.representative_data.window_arrays(
                quantization_config.quantization_steps)
        tflite.export_tflite(self._serving(), path, self.model_spec, self._vocab(),
                             quantization=quantization, representative_windows=representative)
        if export_metadata_json_file:
            with tf.io.gfile.GFile(path, "rb") as f:
                metadata = inference.read_tflite_metadata(f.read())
            with tf.io.gfile.GFile(os.path.splitext(path)[0] + ".json", "w") as f:
                json.dump(metadata, f, indent=2)
        return path

    def _score(self, predictor: inference.Predictor, data: DataLoader, max_answer_length: int,
               null_score_diff_threshold: float, verbose_logging: bool,
               output_dir: str | None) -> dict:
        if not data.examples:
            raise ValueError(f"{data.squad_file}: evaluation needs DataLoader.from_squad(..., "
                             "is_training=False)")
        if verbose_logging:
            logging.info("Evaluating %s on %s", predictor, data.squad_file)
        answers = answering.answer_questions(
            predictor, data.examples, data.window_maker, answering.AnswerSettings(
                batch_size=self.model_spec.predict_batch_size,
                version_2_with_negative=data.version_2_with_negative,
                null_score_diff_threshold=null_score_diff_threshold,
                max_answer_length=max_answer_length,
            ))
        if output_dir:
            postprocess.write_answers(answers, os.path.join(output_dir, "predictions.json"),
                                      data.version_2_with_negative)
        dataset = metrics.examples_to_dataset(data.examples)
        if data.version_2_with_negative:
            return squad_evaluate_v2_0.evaluate(dataset, answers.predictions, answers.null_odds)
        return squad_evaluate_v1_1.evaluate(dataset, answers.predictions)

    def _require_model(self) -> tf.keras.Model:
        if self.model is None:
            raise ValueError("No model: call create() (or create_model()) first")
        return self.model

    def _serving_path(self) -> str:
        return os.path.join(self._work_dir.name, "serving")

    def _serving(self) -> str:
        """The SavedModel of `self.model`, exported once (training exports it too)."""
        if self._serving_dir is None:
            self._serving_dir = model_lib.export_serving_model(
                self._require_model(), self._serving_path(), self.model_spec)
        return self._serving_dir

    def _vocab(self) -> str:
        return encoders.module_vocab_path(self.model_spec.uri)


create = QuestionAnswer.create
