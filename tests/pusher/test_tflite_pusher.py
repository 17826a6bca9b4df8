"""Tests of the TFLitePusher: only blessed models, numbered versions, nothing partial served."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.evaluator import executor as evaluator
from components.pusher import component, executor
from components.qa import inference
from tests.evaluator.evaluator_fixtures import (
    EVAL_QUESTIONS,
    examples_artifact,
    model_artifact,
    run_evaluator,
)
from tests.evaluator.evaluator_fixtures import write_vocab as write_keyword_vocab


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Two evaluated models: houston (blessed, EM 80) and texas (NOT blessed: EM 20 < 50)."""
    root = tmp_path_factory.mktemp("evaluated")
    vocab = write_keyword_vocab(root)
    examples = examples_artifact(root, EVAL_QUESTIONS)
    result = {}
    for keyword, model_id in (("houston", 1), ("texas", 2)):
        model = model_artifact(root, vocab, keyword, model_id)
        _, evaluation, blessing = run_evaluator(
            root / keyword, examples, model,
            **{evaluator.MIN_EXACT_MATCH_KEY: 50.0,
               evaluator.QUANTIZATIONS_KEY: '["dynamic", "float16"]'})
        result[keyword] = (model, blessing, evaluation)
    return result


def run_pusher(destination, model, blessing, evaluation, out):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(out)
    executor.Executor().Do(
        {"model": [model], "model_blessing": [blessing], "evaluation": [evaluation]},
        {"pushed_model": [pushed]},
        {executor.PUSH_DESTINATION_KEY: str(destination)},
    )
    return pushed


def snapshot(root) -> dict[str, bytes]:
    """Every file under `root` (relative path → bytes)."""
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


def test_an_unblessed_model_is_never_pushed(evaluated, tmp_path):
    model, blessing, evaluation = evaluated["texas"]
    assert blessing.get_int_custom_property("blessed") == 0
    pushed = run_pusher(tmp_path / "dest", model, blessing, evaluation, tmp_path / "pushed")
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (tmp_path / "dest").exists()


def test_a_blessed_model_is_pushed_to_version_1_with_everything(evaluated, tmp_path):
    model, blessing, evaluation = evaluated["houston"]
    pushed = run_pusher(tmp_path / "dest", model, blessing, evaluation, tmp_path / "pushed")
    version_dir = tmp_path / "dest" / "1"
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_version") == "1"
    assert pushed.get_string_custom_property("pushed_destination") == str(version_dir)
    assert os.listdir(tmp_path / "dest") == ["1"]
    for name in ("model.tflite", "model_float16.tflite", "vocab.txt", "metrics.json",
                 "report.html", "manifest.json", "saved_model/saved_model.pb"):
        assert (version_dir / name).is_file(), name
    assert (version_dir / "model.tflite").read_bytes() == open(
        os.path.join(evaluation.uri, "tflite", "dynamic", "model.tflite"), "rb").read()
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["model_uri"] == model.uri
    assert "model.tflite" in manifest["files"] and "metrics.json" not in manifest["files"]
    assert json.loads((tmp_path / "pushed" / "manifest.json").read_text()) == manifest
    # What was pushed works: the TFLite file and the SavedModel answer the same.
    with inference.load_predictor(str(version_dir / "model.tflite")) as lite:
        assert open(lite.vocab_path).read() == (version_dir / "vocab.txt").read_text()
        assert inference.load_predictor(str(version_dir / "saved_model")).seq_len == lite.seq_len


def test_pushing_the_same_model_again_reports_the_same_version(evaluated, tmp_path):
    model, blessing, evaluation = evaluated["houston"]
    run_pusher(tmp_path / "dest", model, blessing, evaluation, tmp_path / "p1")
    before = snapshot(tmp_path / "dest")
    again = run_pusher(tmp_path / "dest", model, blessing, evaluation, tmp_path / "p2")
    assert again.get_string_custom_property("pushed_version") == "1"
    assert again.get_int_custom_property("pushed") == 1
    assert snapshot(tmp_path / "dest") == before


def test_versions_are_never_overwritten(evaluated, tmp_path):
    model, blessing, evaluation = evaluated["houston"]
    dest = tmp_path / "dest"
    (dest / "1").mkdir(parents=True)  # Someone else's version 1, without a manifest.
    (dest / "1" / "model.tflite").write_bytes(b"not ours")
    (dest / "notes").mkdir()  # Non-numeric entries are not versions.
    pushed = run_pusher(dest, model, blessing, evaluation, tmp_path / "pushed")
    assert pushed.get_string_custom_property("pushed_version") == "2"
    assert (dest / "1" / "model.tflite").read_bytes() == b"not ours"
    assert sorted(os.listdir(dest)) == ["1", "2", "notes"]


def test_an_unwritable_destination_fails_and_leaves_nothing(evaluated, tmp_path):
    model, blessing, evaluation = evaluated["houston"]
    blocker = tmp_path / "a_file"
    blocker.write_text("a regular file, not a directory")
    with pytest.raises(tf.errors.OpError):
        run_pusher(blocker / "dest", model, blessing, evaluation, tmp_path / "pushed")
    assert sorted(os.listdir(tmp_path)) == ["a_file"]
    assert blocker.read_text() == "a regular file, not a directory"


def test_a_failure_while_copying_leaves_no_version_to_serve(evaluated, tmp_path, monkeypatch):
    model, blessing, evaluation = evaluated["houston"]
    dest = tmp_path / "dest"
    (dest / "1").mkdir(parents=True)
    (dest / "1" / "model.tflite").write_bytes(b"earlier version")
    before = snapshot(dest)
    copy = tf.io.gfile.copy
    calls = []

    def failing_copy(source, target, overwrite=False):
        calls.append(target)
        if len(calls) == 3:  # e.g. the disk fills up in the middle of the push
            raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
        return copy(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", failing_copy)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        run_pusher(dest, model, blessing, evaluation, tmp_path / "pushed")
    assert len(calls) == 3
    # Version 2 stays claimed, its partial files removed: never served, never reused.
    assert snapshot(dest) == {**before, os.path.join("2", executor.CLAIM_FILE): mock.ANY}
    assert executor.complete_versions(str(dest)) == {}
    monkeypatch.setattr(tf.io.gfile, "copy", copy)
    pushed = run_pusher(dest, model, blessing, evaluation, tmp_path / "pushed")
    assert pushed.get_string_custom_property("pushed_version") == "3"
    assert executor.latest_complete_version(str(dest)) == 3


def test_a_blessing_of_another_model_is_refused(evaluated, tmp_path):
    _, blessing, evaluation = evaluated["houston"]
    other, _, _ = evaluated["texas"]
    with pytest.raises(ValueError, match="is for the model .*houston"):
        run_pusher(tmp_path / "dest", other, blessing, evaluation, tmp_path / "pushed")
    assert not (tmp_path / "dest").exists()


def test_the_blessing_matches_its_model_by_uri_when_ids_are_vertex_names(evaluated, tmp_path):
    """On Vertex AI a model's id is a hash of its resource name and the blessing's
    current_model_id is that name (TFX's entrypoint rewrites it): the URI decides."""
    houston, houston_blessing, evaluation = evaluated["houston"]
    model, blessing = standard_artifacts.Model(), standard_artifacts.ModelBlessing()
    model.uri, model.id = houston.uri, 3954212381796839818
    blessing.mlmd_artifact.CopyFrom(houston_blessing.mlmd_artifact)
    blessing.set_string_custom_property(
        "current_model_id", "projects/p/locations/l/metadataStores/default/artifacts/7")
    pushed = run_pusher(tmp_path / "dest", model, blessing, evaluation, tmp_path / "pushed")
    assert pushed.get_int_custom_property("pushed") == 1
    other = standard_artifacts.Model()  # another model: refused there too
    other.uri, other.id = evaluated["texas"][0].uri, 3954212381796839936
    with pytest.raises(ValueError, match="is for the model .*houston"):
        run_pusher(tmp_path / "dest2", other, blessing, evaluation, tmp_path / "pushed2")


def test_missing_evaluation_files_are_named_before_writing(evaluated, tmp_path):
    model, blessing, _ = evaluated["houston"]
    empty = standard_artifacts.ModelEvaluation()
    empty.uri = str(tmp_path / "evaluation")
    os.makedirs(empty.uri)
    (tmp_path / "evaluation" / "metrics.json").write_text('{"quantizations": ["dynamic"]}')
    with pytest.raises(FileNotFoundError, match="model.tflite"):
        run_pusher(tmp_path / "dest", model, blessing, empty, tmp_path / "pushed")
    assert not (tmp_path / "dest").exists()


def test_the_component_needs_a_destination():
    from tfx.types import channel

    with pytest.raises(ValueError, match="push_destination"):
        component.TFLitePusher(channel.Channel(type=standard_artifacts.Model),
                               channel.Channel(type=standard_artifacts.ModelBlessing),
                               channel.Channel(type=standard_artifacts.ModelEvaluation), "")
