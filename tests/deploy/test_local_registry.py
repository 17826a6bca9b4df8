"""The local Vertex AI run's pieces: the registry's queries, bucket mapping, task order."""

import json

import pytest

from deploy import local_registry, local_vertex

MODEL_TYPE = {"instanceSchema": "title: tfx.Model\ntype: object\n"}
BLESSING_TYPE = {"instanceSchema": "title: tfx.ModelBlessing\ntype: object\n"}
# The filters TFX 1.15's KubeflowV2 compiler writes for the latest-blessed-model resolver.
BLESSING_QUERY = ('schema_title="tfx.ModelBlessing" AND state=LIVE AND '
                  "metadata.blessed.number_value=1")
MODEL_QUERY = ('schema_title="tfx.Model" AND state=LIVE AND '
               "name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\"")


def _artifact(type_, uri, **metadata):
    return {"name": local_registry.new_artifact_name(), "type": type_, "uri": uri,
            "metadata": metadata}


@pytest.fixture()
def registry(tmp_path):
    return local_registry.Registry(str(tmp_path / "registry" / "metadata.sqlite"), "p")


def test_the_compiled_resolver_finds_the_latest_blessed_model_by_its_name(registry):
    models = [_artifact(MODEL_TYPE, f"/m{i}") for i in range(3)]
    for i, model in enumerate(models):
        registry.record_task("Trainer", f"job{i}", "COMPLETE", {}, {"model": [model]})
        blessing = _artifact(BLESSING_TYPE, f"/b{i}", blessed=float(i != 2),
                             current_model_id=model["name"])
        registry.record_task("QaEvaluator", f"job{i}", "COMPLETE", {"model": [model]},
                             {"blessing": [blessing]})
    resolver = {"outputArtifactQueries": {"model_blessing": {"filter": BLESSING_QUERY}}}
    component = {"outputDefinitions": {"artifacts": {
        "model_blessing": {"artifactType": BLESSING_TYPE}, "model": {"artifactType": MODEL_TYPE}}}}
    blessings = local_vertex.resolve(registry, resolver, component, {})["model_blessing"]
    assert [b["uri"] for b in blessings] == ["/b1"]  # the latest blessed; /b2 is not blessed
    resolver = {"outputArtifactQueries": {"model": {"filter": MODEL_QUERY}}}
    [model] = local_vertex.resolve(registry, resolver, component, {"input": blessings})["model"]
    assert (model["uri"], model["name"], model["type"]) == ("/m1", models[1]["name"], MODEL_TYPE)
    # Nothing blessed yet: no input, no output (Vertex AI's empty resolver output).
    assert local_vertex.resolve(registry, resolver, component, {"input": []}) == {"model": []}


def test_a_numeric_model_id_finds_no_model(registry):
    """The bug this run found: an id kept as a JSON number matches no artifact name."""
    model = _artifact(MODEL_TYPE, "/m")
    registry.record_task("Trainer", "job", "COMPLETE", {}, {"model": [model]})
    blessing = _artifact(BLESSING_TYPE, "/b", blessed=1.0, current_model_id=3.95421238179684e18)
    resolver = {"outputArtifactQueries": {"model": {"filter": MODEL_QUERY}}}
    component = {"outputDefinitions": {"artifacts": {"model": {"artifactType": MODEL_TYPE}}}}
    assert local_vertex.resolve(registry, resolver, component, {"input": [blessing]}) == {
        "model": []}


@pytest.mark.parametrize("bad_filter, message", [
    ('schema_title="tfx.Model" AND uri="/m"', "Unknown filter field 'uri'"),
    ('schema_title="tfx.Model" OR state=LIVE', "Unknown clause"),
    ('state=LIVE', "names no schema_title"),
])
def test_a_filter_the_registry_does_not_know_fails_naming_it(registry, bad_filter, message):
    registry.record_task("Trainer", "job", "COMPLETE", {}, {"model": [_artifact(MODEL_TYPE, "/m")]})
    with pytest.raises(ValueError, match=message):
        registry.query(bad_filter)


def test_a_placeholder_the_resolver_does_not_know_fails_naming_it(registry):
    resolver = {"outputArtifactQueries": {"model": {
        "filter": 'schema_title="tfx.Model" AND name="{{$.pipelineJobName}}"'}}}
    with pytest.raises(ValueError, match=r"\{\{\$\.pipelineJobName\}\}"):
        local_vertex.resolve(registry, resolver, {"outputDefinitions": {"artifacts": {}}}, {})


def test_mapped_buckets_become_local_paths_and_others_fail_naming_them(tmp_path):
    buckets = local_vertex.parse_bucket_map([f"gs://b={tmp_path}"])
    spec = json.dumps({"uri": "gs://b/encoder"})
    assert local_vertex.localize({"a": ["gs://b/x", "gs://b", spec]}, buckets) == {
        "a": [f"{tmp_path}/x", str(tmp_path), json.dumps({"uri": f"{tmp_path}/encoder"})]}
    assert local_vertex.localize("gs://bb/x", {**buckets, "gs://bb": "/y"}) == "/y/x"
    with pytest.raises(ValueError, match="gs://other is not mapped.*--local-bucket gs://other="):
        local_vertex.localize({"p": "gs://other/data"}, buckets)
    with pytest.raises(ValueError, match="not of the form gs://BUCKET=DIR"):
        local_vertex.parse_bucket_map(["gs://b/sub=/x"])


def test_tasks_run_after_the_tasks_they_depend_on():
    tasks = {
        "Pusher": {"dependentTasks": ["Evaluator", "Trainer"]},
        "Trainer": {"inputs": {"artifacts": {"base_model": {"taskOutputArtifact": {
            "producerTask": "resolver", "outputArtifactKey": "model"}}}}},
        "resolver": {},
        "Evaluator": {"dependentTasks": ["Trainer"]},
    }
    assert local_vertex.task_order(local_vertex.vertex_task_needs(tasks)) == [
        "resolver", "Trainer", "Evaluator", "Pusher"]
    with pytest.raises(ValueError, match="cycle"):
        local_vertex.task_order({"a": {"b"}, "b": {"a"}})
