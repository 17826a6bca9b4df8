"""The artifact registry of local Vertex AI runs: ML Metadata on SQLite, kept across runs.

Vertex ML Metadata keeps every artifact a pipeline's tasks produce, by resource name, with
its `metadata` (the JSON the executor wrote); the compiled resolver tasks query it. Here
the same facts live in an ML Metadata store, laid out as TFX's local runs lay theirs out
(artifact types named as TFX's, one `node` context per task named `<pipeline>.<task>`,
one execution per task run with its state, input and output events), so the reports of
`mbqa run` read it unchanged. `query` evaluates the filters the KubeflowV2 compiler
writes into `outputArtifactQueries`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

from google.protobuf import json_format, struct_pb2
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

# The resource names Vertex ML Metadata gives artifacts; `location` stands in for the region.
NAME_PREFIX = "projects/local/locations/local/metadataStores/default/artifacts/"
NODE_CONTEXT_TYPE = "node"
TASK_EXECUTION_TYPE = "vertex_task"
TFX_SCHEMA_PREFIX = "tfx."
# One clause of a filter: `field=value` or `field="value"`.
_CLAUSE = re.compile(r'\s*([\w.]+)\s*=\s*("(?:[^"\\]|\\.)*"|[\w.+-]+)\s*')
_STATES = {"COMPLETE": metadata_store_pb2.Execution.COMPLETE,
           "FAILED": metadata_store_pb2.Execution.FAILED}


def schema_title(artifact_type: dict[str, Any]) -> str:
    """The title of an `artifactType` (`schemaTitle`, or the title in `instanceSchema`)."""
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    match = re.search(r"^title:\s*(\S+)", artifact_type.get("instanceSchema", ""), re.M)
    if not match:
        raise ValueError(f"An artifact type without a title: {artifact_type}")
    return match.group(1)


def new_artifact_name() -> str:
    """A new artifact resource name."""
    return NAME_PREFIX + uuid.uuid4().hex


class Registry:
    """The artifacts and task runs of one pipeline's local Vertex AI runs."""

    def __init__(self, path: str, pipeline_name: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = path
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
        self.path = path
        self.pipeline_name = pipeline_name
        self.store = metadata_store.MetadataStore(config)
        self._type_ids: dict[tuple[type, str], int] = {}

    def record_task(self, task: str, job_id: str, state: str,
                    inputs: dict[str, list[dict]], outputs: dict[str, list[dict]]) -> None:
        """Records one run of `task`: its state, and its input and output RuntimeArtifacts
        (new outputs are registered LIVE under their names)."""
        store = self.store
        context_type = self._type_id(metadata_store_pb2.ContextType, NODE_CONTEXT_TYPE)
        context_name = f"{self.pipeline_name}.{task}"
        context = store.get_context_by_type_and_name(NODE_CONTEXT_TYPE, context_name)
        if context is None:
            [context_id] = store.put_contexts([metadata_store_pb2.Context(
                type_id=context_type, name=context_name)])
        else:
            context_id = context.id
        execution = metadata_store_pb2.Execution(
            type_id=self._type_id(metadata_store_pb2.ExecutionType, TASK_EXECUTION_TYPE),
            last_known_state=_STATES[state])
        execution.custom_properties["job_id"].string_value = job_id
        events = []
        for kind, artifacts in ((metadata_store_pb2.Event.INPUT, inputs),
                                (metadata_store_pb2.Event.OUTPUT, outputs)):
            for key, runtime_artifacts in artifacts.items():
                for index, runtime in enumerate(runtime_artifacts):
                    event = metadata_store_pb2.Event(type=kind)
                    event.path.steps.add().key = key
                    event.path.steps.add().index = index
                    events.append((self._artifact(runtime), event))
        store.put_execution(execution, events, [metadata_store_pb2.Context(
            id=context_id, type_id=context_type, name=context_name)])

    def query(self, filter_text: str) -> list[dict[str, Any]]:
        """The LIVE artifacts matching a compiled resolver filter, latest first, as
        RuntimeArtifact dicts (`name`, `uri`, `metadata`).

        Raises ValueError naming a clause this registry does not know.
        """
        conditions = parse_filter(filter_text)
        title = conditions.pop("schema_title", None)
        if title is None:
            raise ValueError(f"Filter {filter_text!r} names no schema_title")
        if conditions.pop("state", "LIVE") != "LIVE":
            raise ValueError(f"Filter {filter_text!r}: only state=LIVE is known here")
        type_name = title.removeprefix(TFX_SCHEMA_PREFIX)
        found = []
        for artifact in self.store.get_artifacts_by_type(type_name):
            if artifact.state != metadata_store_pb2.Artifact.LIVE:
                continue
            runtime = runtime_artifact(artifact)
            if all(_matches(runtime, field, value) for field, value in conditions.items()):
                found.append((artifact.create_time_since_epoch, artifact.id, runtime))
        return [runtime for *_, runtime in sorted(found, key=lambda f: f[:2], reverse=True)]

    def _type_id(self, type_class, name: str) -> int:
        """The id of the artifact, context or execution type `name` (registered if new)."""
        if (type_class, name) not in self._type_ids:
            put = {metadata_store_pb2.ArtifactType: self.store.put_artifact_type,
                   metadata_store_pb2.ContextType: self.store.put_context_type,
                   metadata_store_pb2.ExecutionType: self.store.put_execution_type}[type_class]
            self._type_ids[type_class, name] = put(type_class(name=name))
        return self._type_ids[type_class, name]

    def _artifact(self, runtime: dict[str, Any]) -> metadata_store_pb2.Artifact:
        """The stored artifact of a RuntimeArtifact dict (registered LIVE if new)."""
        type_name = schema_title(runtime["type"]).removeprefix(TFX_SCHEMA_PREFIX)
        by_name = self.store.get_artifact_by_type_and_name(type_name, runtime["name"])
        if by_name is not None:
            return by_name
        artifact = metadata_store_pb2.Artifact(
            type_id=self._type_id(metadata_store_pb2.ArtifactType, type_name),
            name=runtime["name"], uri=runtime["uri"], state=metadata_store_pb2.Artifact.LIVE)
        for key, value in (runtime.get("metadata") or {}).items():
            _set_value(artifact.custom_properties[key], value)
        [artifact.id] = self.store.put_artifacts([artifact])
        return artifact


def parse_filter(filter_text: str) -> dict[str, str]:
    """`a=1 AND b="x"` as {field: value text}; raises ValueError on anything else."""
    conditions = {}
    for clause in filter_text.split(" AND "):
        match = _CLAUSE.fullmatch(clause)
        if not match:
            raise ValueError(f"Unknown clause {clause.strip()!r} in filter {filter_text!r}")
        field, value = match.groups()
        conditions[field] = json.loads(value) if value.startswith('"') else value
    return conditions


def runtime_artifact(artifact: metadata_store_pb2.Artifact) -> dict[str, Any]:
    """A stored artifact as a RuntimeArtifact dict (without its type)."""
    return {"name": artifact.name, "uri": artifact.uri,
            "metadata": {key: _plain_value(value)
                         for key, value in artifact.custom_properties.items()}}


def _matches(runtime: dict[str, Any], field: str, expected: str) -> bool:
    if field == "name":
        return runtime["name"] == expected
    match = re.fullmatch(r"metadata\.(\w+)\.(number_value|string_value)", field)
    if not match:
        raise ValueError(f"Unknown filter field {field!r}")
    key, kind = match.groups()
    value = runtime["metadata"].get(key)
    if kind == "number_value":
        return isinstance(value, int | float) and not isinstance(value, bool) and (
            float(value) == float(expected))
    return value == expected


def _set_value(target: metadata_store_pb2.Value, value: Any) -> None:
    """A JSON value as an ML Metadata value (numbers as doubles, as Vertex AI keeps them)."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int | float):
        target.double_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    else:
        struct = struct_pb2.Struct()
        json_format.ParseDict({"value": value}, struct)
        target.struct_value.CopyFrom(struct)


def _plain_value(value: metadata_store_pb2.Value) -> Any:
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        return json_format.MessageToDict(value.struct_value)["value"]
    return getattr(value, kind) if kind else None
