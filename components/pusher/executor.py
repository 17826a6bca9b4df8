"""TFLitePusher's executor: a blessed model to a new numbered version directory.

`<push_destination>/<version>/` holds:
  model.tflite             the first quantization the QaEvaluator exported (the one to ship)
  model_<quantization>.tflite   each other quantization
  vocab.txt                the WordPiece vocab (also packed in the .tflite metadata)
  saved_model/             the Trainer's SavedModel
  metrics.json, report.html, model_card.md, model_card.json   the QaEvaluator's evaluation
  manifest.json            version, content hash, the files and their sha256, the model's URI,
                           the serving settings (`serving_config`) and the blessing's reasons
  _CLAIMED                 who claimed the version number, and when
  _COMPLETE                written last (the content sha256): the version may be served

The protocol works on a local disk and on gs:// alike (no renames: on gs:// a directory
rename copies object by object):
1. The next number is one more than the highest numeric directory, complete or not.
2. The number is claimed by an exclusive create of `<version>/_CLAIMED` (`open(..., "x")`
   locally, a create with `if_generation_match=0` on gs://); if another pusher holds it,
   the next number is tried. Two pushers never share a version.
3. The files and `manifest.json` are written into the claimed directory, `_COMPLETE` last.
4. Readers (`complete_versions`, `latest_complete_version`, the idempotency check) only see
   versions with `_COMPLETE`. A push that fails leaves its version claimed and incomplete
   (its files removed as far as possible): never served, its number never reused.

A version is never overwritten. Pushing is idempotent: when a complete version's manifest has
the same content hash (of the model files: TFLite files, vocab, SavedModel), that version is
reported and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs

from components.qa import contracts, inference

PUSH_DESTINATION_KEY = "push_destination"
PUSHED_KEY = "pushed"
PUSHED_DESTINATION_KEY = "pushed_destination"
PUSHED_VERSION_KEY = "pushed_version"
SAVED_MODEL_DIR = "saved_model"
# Created exclusively: whoever creates it owns the version number.
CLAIM_FILE = "_CLAIMED"
# Written last: a version without it is incomplete and must not be served.
COMPLETE_MARKER = "_COMPLETE"
_GCS_SCHEME = "gs://"
# Version numbers tried before giving up (each failure means another pusher claimed one).
_MAX_CLAIM_ATTEMPTS = 100


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


def read_evaluation(evaluation: types.Artifact) -> dict[str, Any]:
    """The QaEvaluator's metrics.json."""
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, contracts.METRICS_FILE)) as f:
        return json.load(f)


def files_to_push(model: types.Artifact, evaluation: types.Artifact,
                  quantizations: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({relative path: source} of the model files, the same of the evaluation files)."""
    model_files = {}
    for i, quantization in enumerate(quantizations):
        name = contracts.TFLITE_FILE if i == 0 else f"model_{quantization}.tflite"
        model_files[name] = os.path.join(evaluation.uri,
                                         contracts.tflite_relative_path(quantization))
    serving = contracts.serving_dir(model)
    model_files.update(_dir_files(serving, SAVED_MODEL_DIR))
    vocab = os.path.join(serving, "assets", contracts.VOCAB_FILE)
    if not tf.io.gfile.exists(vocab):  # The vocab packed in the TFLite metadata.
        vocab = inference.load_predictor(model_files[contracts.TFLITE_FILE]).vocab_path
    model_files[contracts.VOCAB_FILE] = vocab
    evaluation_files = {
        name: os.path.join(evaluation.uri, name)
        for name in (contracts.METRICS_FILE, contracts.REPORT_FILE,
                     contracts.MODEL_CARD_MARKDOWN_FILE,
                     contracts.MODEL_CARD_JSON_FILE)
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


def version_numbers(destination: str) -> set[int]:
    """The numeric directories in `destination`: claimed (complete or not) or in use."""
    if not tf.io.gfile.isdir(destination):
        return set()
    names = (entry.rstrip("/") for entry in tf.io.gfile.listdir(destination))
    return {int(name) for name in names if name.isdigit()}


def complete_versions(destination: str) -> dict[int, dict]:
    """{version: its manifest} of the versions in `destination` that are complete."""
    versions = {}
    for version in sorted(version_numbers(destination)):
        version_dir = os.path.join(destination, str(version))
        if tf.io.gfile.exists(os.path.join(version_dir, COMPLETE_MARKER)):
            with tf.io.gfile.GFile(os.path.join(version_dir, contracts.MANIFEST_FILE)) as f:
                versions[version] = json.load(f)
    return versions


def latest_complete_version(destination: str) -> int | None:
    """The newest servable version in `destination` (None if there is none)."""
    return max(complete_versions(destination), default=None)


def claim_version(destination: str, version: int, note: str = "") -> bool:
    """Exclusively creates `<destination>/<version>/_CLAIMED`; False if it already exists."""
    path = os.path.join(destination, str(version), CLAIM_FILE)
    if destination.startswith(_GCS_SCHEME):
        return _claim_gcs_object(path, note)
    if "://" in destination:
        raise ValueError(f"Cannot claim a version under {destination!r}: no exclusive create "
                         f"there (push to a local path or {_GCS_SCHEME})")
    tf.io.gfile.makedirs(os.path.dirname(path))
    try:
        with open(path, "x") as f:  # O_CREAT | O_EXCL: atomic on POSIX
            f.write(note)
    except FileExistsError:
        return False
    return True


def _claim_gcs_object(path: str, note: str) -> bool:
    """Creates the gs:// object `path` only if it does not exist (generation 0)."""
    from google.api_core import exceptions
    from google.cloud import storage

    bucket, _, name = path[len(_GCS_SCHEME):].partition("/")
    blob = storage.Client().bucket(bucket).blob(name)
    try:
        blob.upload_from_string(note, if_generation_match=0)
    except exceptions.PreconditionFailed:
        return False
    return True


def claim_next_version(destination: str, note: str) -> int:
    """Claims the lowest free version number above every existing one; returns it."""
    version = max(version_numbers(destination), default=0) + 1
    for _ in range(_MAX_CLAIM_ATTEMPTS):
        if claim_version(destination, version, note):
            return version
        logging.info("Version %d under %s is claimed by another pusher", version, destination)
        version = max(version + 1, max(version_numbers(destination), default=0) + 1)
    raise RuntimeError(f"Could not claim a new version under {destination!r} "
                       f"in {_MAX_CLAIM_ATTEMPTS} attempts")


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def push(
    destination: str,
    model_files: dict[str, str],
    evaluation_files: dict[str, str],
    manifest_extra: dict[str, Any],
) -> tuple[int, bool]:
    """Pushes the files to a new version (or finds them pushed); returns (version, is_new)."""
    file_hashes = {name: _sha256(path) for name, path in model_files.items()}
    digest = content_hash(file_hashes)
    for version, manifest in sorted(complete_versions(destination).items()):
        if manifest.get("content_sha256") == digest:
            logging.info("Already pushed as version %d (content sha256 %s)", version, digest)
            return version, False
    version = claim_next_version(
        destination,
        f"{socket.gethostname()} pid {os.getpid()} at {_timestamp()}: content sha256 {digest}\n")
    version_dir = os.path.join(destination, str(version))
    try:
        for name, source in {**model_files, **evaluation_files}.items():
            target = os.path.join(version_dir, name)
            tf.io.gfile.makedirs(os.path.dirname(target))
            tf.io.gfile.copy(source, target)
        manifest = {
            "version": version,
            "content_sha256": digest,
            "files": file_hashes,
            "evaluation_files": sorted(evaluation_files),
            "pushed_at": _timestamp(),
            **manifest_extra,
        }
        with tf.io.gfile.GFile(os.path.join(version_dir, contracts.MANIFEST_FILE), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        with tf.io.gfile.GFile(os.path.join(version_dir, COMPLETE_MARKER), "w") as f:
            f.write(f"{digest}\n")
    except BaseException:
        logging.error("Push to version %d failed: %s stays claimed and incomplete (no %s), "
                      "is never served and its number is not reused", version, version_dir,
                      COMPLETE_MARKER)
        _discard_partial(version_dir)
        raise
    logging.info("Pushed version %d to %s", version, version_dir)
    return version, True


def _discard_partial(version_dir: str) -> None:
    """Removes what a failed push wrote into its version, all but the claim."""
    try:
        for entry in tf.io.gfile.listdir(version_dir):
            name = entry.rstrip("/")
            if name == CLAIM_FILE:
                continue
            path = os.path.join(version_dir, name)
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
    except tf.errors.OpError as e:
        logging.error("Could not remove the partial files of %s: %s", version_dir, e)


def check_blessing_is_for(blessing: types.Artifact, model: types.Artifact) -> None:
    """Raises ValueError unless `blessing` names `model` by its URI.

    The URI is the one model reference that is the same on every runner: the blessing's
    `current_model_id` is an MLMD id locally and on Kubeflow, but an artifact resource name
    on Vertex AI, where the model's `id` is a hash of its name.
    """
    blessed_uri = blessing.get_string_custom_property(
        constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY)
    if not blessed_uri:
        raise ValueError(f"The blessing {blessing.uri!r} names no model (no "
                         f"{constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY!r} property)")
    if blessed_uri.rstrip("/") != model.uri.rstrip("/"):
        raise ValueError(f"The blessing {blessing.uri!r} is for the model {blessed_uri!r}, "
                         f"not for the model to push ({model.uri!r})")


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
        check_blessing_is_for(blessing, model)
        destination = exec_properties[PUSH_DESTINATION_KEY]
        summary = read_evaluation(evaluation)
        model_files, evaluation_files = files_to_push(model, evaluation,
                                                      summary["quantizations"])
        version, is_new = push(destination, model_files, evaluation_files,
                               {"model_uri": model.uri, "evaluation_uri": evaluation.uri,
                                "serving_config": contracts.ServingConfig.from_dict(
                                    summary["serving_config"]).to_dict(),
                                "blessing_reasons": summary["blessing"]["reasons"]})
        version_dir = os.path.join(destination, str(version))
        tf.io.gfile.makedirs(pushed.uri)
        tf.io.gfile.copy(os.path.join(version_dir, contracts.MANIFEST_FILE),
                         os.path.join(pushed.uri, contracts.MANIFEST_FILE), overwrite=True)
        pushed.set_int_custom_property(PUSHED_KEY, 1)
        pushed.set_string_custom_property(PUSHED_DESTINATION_KEY, version_dir)
        pushed.set_string_custom_property(PUSHED_VERSION_KEY, str(version))
        logging.info("%s version %d: %s", "Pushed" if is_new else "Already pushed", version,
                     os.path.join(version_dir, contracts.TFLITE_FILE))
