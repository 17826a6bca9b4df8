"""TFLitePusher's executor: a blessed model to a new numbered version directory.

`<push_destination>/<version>/` holds:
  model.tflite             the first quantization the QaEvaluator exported (the one to ship)
  model_<quantization>.tflite   each other quantization
  vocab.txt                the WordPiece vocab (also packed in the .tflite metadata)
  saved_model/             the Trainer's SavedModel
  metrics.json, report.html   the QaEvaluator's evaluation
  manifest.json            version, content hash, the files and their sha256, the model's URI

Versions are 1, 2, 3, ...: one more than the highest existing numeric directory. A version is
never overwritten: the files are written into a temporary directory beside it, which is
renamed into place only when complete (removed on any error); if another pusher took the
number meanwhile, the next one is used. Pushing is idempotent: when an existing version's
manifest has the same content hash (of the model files: TFLite files, vocab, SavedModel),
that version is reported and nothing is written.

On gs://, a directory rename copies object by object (it is not atomic as on a local
disk): read a version once its `manifest.json` exists and lists files that all exist.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs

from components.evaluator import executor as evaluator
from components.qa import inference

PUSH_DESTINATION_KEY = "push_destination"
PUSHED_KEY = "pushed"
PUSHED_DESTINATION_KEY = "pushed_destination"
PUSHED_VERSION_KEY = "pushed_version"
MANIFEST_FILE = "manifest.json"
TFLITE_FILE = "model.tflite"
SAVED_MODEL_DIR = "saved_model"
VOCAB_FILE = "vocab.txt"
_TEMP_PREFIX = ".tmp-"
# Attempts at taking a version number other pushers may be taking at the same time.
_MAX_ATTEMPTS = 5


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _dir_files(root: str, prefix: str) -> dict[str, str]:
    """{`prefix/relative path`: path} of every file under `root`."""
    files = {}
    for directory, _, names in tf.io.gfile.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            files[f"{prefix}/{os.path.relpath(path, root)}"] = path
    return files


def files_to_push(model: types.Artifact, evaluation: types.Artifact) -> tuple[
    dict[str, str], dict[str, str]
]:
    """({relative path: source} of the model files, the same of the evaluation files)."""
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, evaluator.METRICS_FILE)) as f:
        quantizations = json.load(f)["quantizations"]
    model_files = {}
    for i, quantization in enumerate(quantizations):
        name = TFLITE_FILE if i == 0 else f"model_{quantization}.tflite"
        model_files[name] = os.path.join(evaluation.uri,
                                         evaluator.tflite_relative_path(quantization))
    serving = evaluator.serving_dir(model)
    model_files.update(_dir_files(serving, SAVED_MODEL_DIR))
    vocab = os.path.join(serving, "assets", VOCAB_FILE)
    if not tf.io.gfile.exists(vocab):  # The vocab packed in the TFLite metadata.
        vocab = inference.load_predictor(model_files[TFLITE_FILE]).vocab_path
    model_files[VOCAB_FILE] = vocab
    evaluation_files = {
        name: os.path.join(evaluation.uri, name)
        for name in (evaluator.METRICS_FILE, evaluator.REPORT_FILE)
    }
    missing = [p for p in {**model_files, **evaluation_files}.values()
               if not tf.io.gfile.exists(p)]
    if missing:
        raise FileNotFoundError(f"Cannot push: missing {missing}")
    return model_files, evaluation_files


def content_hash(file_hashes: dict[str, str]) -> str:
    """One sha256 over the files' relative paths and sha256s."""
    digest = hashlib.sha256()
    for name in sorted(file_hashes):
        digest.update(f"{name}\0{file_hashes[name]}\n".encode())
    return digest.hexdigest()


def existing_versions(destination: str) -> dict[int, dict | None]:
    """{version: its manifest (None if it has none)} of the numeric dirs in `destination`."""
    if not tf.io.gfile.isdir(destination):
        return {}
    versions = {}
    for entry in tf.io.gfile.listdir(destination):
        name = entry.rstrip("/")
        if not name.isdigit():
            continue
        manifest_path = os.path.join(destination, name, MANIFEST_FILE)
        manifest = None
        if tf.io.gfile.exists(manifest_path):
            with tf.io.gfile.GFile(manifest_path) as f:
                manifest = json.load(f)
        versions[int(name)] = manifest
    return versions


def push(
    destination: str,
    model_files: dict[str, str],
    evaluation_files: dict[str, str],
    manifest_extra: dict[str, Any],
) -> tuple[int, bool]:
    """Pushes the files to a new version (or finds them pushed); returns (version, is_new)."""
    file_hashes = {name: _sha256(path) for name, path in model_files.items()}
    digest = content_hash(file_hashes)
    for attempt in range(_MAX_ATTEMPTS):
        versions = existing_versions(destination)
        for version, manifest in sorted(versions.items()):
            if manifest and manifest.get("content_sha256") == digest:
                logging.info("Already pushed as version %d (content sha256 %s)", version, digest)
                return version, False
        version = max(versions, default=0) + 1
        final = os.path.join(destination, str(version))
        temp = os.path.join(destination, f"{_TEMP_PREFIX}{version}-{uuid.uuid4().hex}")
        try:
            tf.io.gfile.makedirs(temp)
            for name, source in {**model_files, **evaluation_files}.items():
                target = os.path.join(temp, name)
                tf.io.gfile.makedirs(os.path.dirname(target))
                tf.io.gfile.copy(source, target)
            manifest = {
                "version": version,
                "content_sha256": digest,
                "files": file_hashes,
                "evaluation_files": sorted(evaluation_files),
                "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **manifest_extra,
            }
            with tf.io.gfile.GFile(os.path.join(temp, MANIFEST_FILE), "w") as f:
                json.dump(manifest, f, indent=2, sort_keys=True)
            if tf.io.gfile.exists(final):  # Taken meanwhile: try the next number.
                raise FileExistsError(final)
            tf.io.gfile.rename(temp, final, overwrite=False)
        except (FileExistsError, tf.errors.AlreadyExistsError) as e:
            _remove(temp)
            logging.warning("Version %d was taken meanwhile (%s); attempt %d", version, e,
                            attempt + 1)
            continue
        except BaseException:
            _remove(temp)
            raise
        logging.info("Pushed version %d to %s", version, final)
        return version, True
    raise RuntimeError(f"Could not take a new version under {destination!r} "
                       f"in {_MAX_ATTEMPTS} attempts")


def _remove(path: str) -> None:
    try:
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
    except tf.errors.OpError as e:
        logging.error("Could not remove the temporary directory %s: %s", path, e)


class Executor(base_executor.BaseExecutor):
    """Pushes a blessed model's TFLite files, vocab, SavedModel and evaluation."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        model = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_BLESSING_KEY])
        evaluation = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.EVALUATION_KEY])
        if blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) != 1:
            logging.info("The model %s is not blessed: not pushed", model.uri)
            pushed.set_int_custom_property(PUSHED_KEY, 0)
            return
        blessed_id = blessing.get_int_custom_property(
            constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY)
        if blessed_id and model.id and blessed_id != model.id:
            raise ValueError(f"The blessing {blessing.uri!r} is for model id {blessed_id}, "
                             f"not for the model to push (id {model.id}, {model.uri!r})")
        destination = exec_properties[PUSH_DESTINATION_KEY]
        model_files, evaluation_files = files_to_push(model, evaluation)
        version, is_new = push(destination, model_files, evaluation_files,
                               {"model_uri": model.uri, "evaluation_uri": evaluation.uri})
        version_dir = os.path.join(destination, str(version))
        tf.io.gfile.makedirs(pushed.uri)
        tf.io.gfile.copy(os.path.join(version_dir, MANIFEST_FILE),
                         os.path.join(pushed.uri, MANIFEST_FILE), overwrite=True)
        pushed.set_int_custom_property(PUSHED_KEY, 1)
        pushed.set_string_custom_property(PUSHED_DESTINATION_KEY, version_dir)
        pushed.set_string_custom_property(PUSHED_VERSION_KEY, str(version))
        logging.info("%s version %d: %s", "Pushed" if is_new else "Already pushed", version,
                     os.path.join(version_dir, TFLITE_FILE))
