"""The pipeline's configuration: every setting, its default, and its checks, in one place.

A `PipelineConfig` is built from defaults, then the environment (`from_env`: what the TFX
CLI's runner files use), then `key=value` overrides (`with_overrides`: what `mbqa run --set`
uses). Spec parameters are overridden as `spec.<name>=<value>` (e.g. `spec.seq_len=128`).
`validate(target)` raises `ConfigError` naming the setting before any heavy work starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from components.evaluator.gate import GateConfig
from components.qa import spec as spec_lib

TARGETS = ("local", "kubeflow", "vertex")
LOCAL_ORCHESTRATORS = ("local", "beam")
QUANTIZATIONS = ("float32", "dynamic", "float16", "int8", "int16x8")
ENV_PREFIX = "MBQA_"
# A directory is a Hub module if it holds one of these (TF2 SavedModel / TF1 Hub format).
_HUB_MODULE_FILES = ("saved_model.pb", "tfhub_module.pb")
_REMOTE_PREFIXES = ("gs://", "http://", "https://")


class ConfigError(ValueError):
    """A setting that cannot work; the message names the setting."""


@dataclasses.dataclass
class PipelineConfig:
    """Every setting of the pipeline, with defaults for a local run.

    Attributes:
      pipeline_name: the pipeline's name in ML Metadata and on Vertex AI / Kubeflow.
      pipeline_root: where TFX writes artifacts (a local path, or gs:// on Vertex AI).
      metadata_path: the ML Metadata SQLite file of local runs ('' = under pipeline_root).
      data_root: the SQuAD JSON input base of SquadExampleGen.
      train_pattern: glob of the train split's files under data_root; may hold {SPAN}.
      eval_pattern: glob of the eval split's files under data_root; may hold {SPAN}.
      skip_invalid: count and skip invalid SQuAD records instead of failing.
      spec_class: the model spec class (a name in `components.qa.spec.SPECS`).
      spec: spec parameters overriding the class's defaults (uri, seq_len, ...).
      train_steps: training steps of the Trainer.
      eval_steps: evaluation steps of the Trainer.
      warm_start: start training from the last blessed model when it has the same variables
        and shapes (otherwise, and when False, training starts from the encoder).
      trim_padding: cut each training batch to its longest window (rounded up to 64
        tokens) instead of feeding seq_len tokens; not on TPUs.
      min_exact_match: the blessing threshold on exact match (0-100).
      min_f1: the blessing threshold on F1 (0-100).
      max_regression: how many points (EM and F1) the shipped file may lose against the last
        blessed model's before a significant difference blocks the push.
      regression_confidence: the paired bootstrap's confidence for a regression (0-1).
      max_quantization_drop: how many F1 points the shipped file may lose against its own
        SavedModel.
      require_task_library: push only a shipped file that answers in the TFLite Task
        Library's BertQuestionAnswerer (seq_len 384, query_len 64).
      null_score_diff_threshold: SQuAD 2.0: answer '' when the null score beats the best
        span by more than this (logits); written into the shipped file's metadata.
      tune_null_threshold: SQuAD 2.0: use instead the best-F1 threshold on the eval split.
      quantizations: TFLite quantizations the evaluator measures and the pusher ships.
      push_destination: where blessed models are pushed (local path or gs://).
      beam_pipeline_args: Beam options (DirectRunner settings, or Dataflow's).
      local_orchestrator: 'local' (TFX's LocalDagRunner) or 'beam' (BeamDagRunner).
      enable_cache: reuse finished components' outputs on reruns.
      with_data_validation: run StatisticsGen, SchemaGen and ExampleValidator on the questions.
      image: the container image of every step on Kubeflow / Vertex AI.
      gcp_project: the Google Cloud project of Vertex AI training ('' = train in the step).
      gcp_region: the Vertex AI region.
      vertex_machine_type: machine type of each GPU/CPU training replica.
      vertex_accelerator_type: GPU type of each replica when spec.num_gpus != 0.
      vertex_worker_count: replicas of multi-worker / parameter-server training, chief included.
      vertex_parameter_server_count: parameter servers of 'parameter_server' training.
      vertex_tpu_type: the TPU accelerator of 'tpu' training (a TPU VM).
      vertex_tpu_cores: TPU cores of 'tpu' training.
      vertex_service_account: service account of the Vertex AI training job ('' = default).
    """

    pipeline_name: str = "mobilebert-qa"
    pipeline_root: str = "runs/pipeline"
    metadata_path: str = ""
    data_root: str = "data/squad"
    train_pattern: str = "train/*.json"
    eval_pattern: str = "eval/*.json"
    skip_invalid: bool = False
    spec_class: str = "MobileBertQaSpec"
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_steps: int = 1000
    eval_steps: int = 100
    warm_start: bool = True
    trim_padding: bool = True
    min_exact_match: float = GateConfig.min_exact_match
    min_f1: float = GateConfig.min_f1
    max_regression: float = GateConfig.max_regression
    regression_confidence: float = GateConfig.regression_confidence
    max_quantization_drop: float = GateConfig.max_quantization_drop
    require_task_library: bool = GateConfig.require_task_library
    null_score_diff_threshold: float = 0.0
    tune_null_threshold: bool = False
    quantizations: list[str] = dataclasses.field(default_factory=lambda: ["dynamic"])
    push_destination: str = "runs/serving"
    beam_pipeline_args: list[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    )
    local_orchestrator: str = "local"
    enable_cache: bool = True
    with_data_validation: bool = True
    image: str = "gcr.io/my-project/mobilebert-qa-tfx:latest"
    gcp_project: str = ""
    gcp_region: str = "us-central1"
    vertex_machine_type: str = "n1-standard-8"
    vertex_accelerator_type: str = "NVIDIA_TESLA_T4"
    vertex_worker_count: int = 2
    vertex_parameter_server_count: int = 1
    vertex_tpu_type: str = "TPU_V3"
    vertex_tpu_cores: int = 8
    vertex_service_account: str = ""

    # ---- building -------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineConfig:
        """Defaults overridden by `MBQA_<SETTING>` variables (`MBQA_SPEC` is a JSON object)."""
        environ = os.environ if environ is None else environ
        overrides = []
        for field in dataclasses.fields(cls):
            name = ENV_PREFIX + field.name.upper()
            if name in environ:
                overrides.append(f"{field.name}={environ[name]}")
        return cls().with_overrides(overrides)

    def to_env(self) -> dict[str, str]:
        """The `MBQA_<SETTING>` variables that `from_env` turns back into this config."""
        env = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value != getattr(type(self)(), field.name):
                text = json.dumps(value) if isinstance(value, bool | list | dict) else str(value)
                env[ENV_PREFIX + field.name.upper()] = text
        return env

    def with_overrides(self, overrides: Iterable[str]) -> PipelineConfig:
        """A copy with `key=value` overrides applied; `spec.<param>=value` sets one spec value."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        types = typing.get_type_hints(type(self))
        values = dataclasses.asdict(self)
        for item in overrides:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"Override {item!r} is not of the form key=value")
            if key.startswith("spec."):
                values["spec"] = {**values["spec"], key[len("spec."):]: _parse_json_or_text(text)}
            elif key in fields:
                values[key] = _parse_value(key, types[key], text)
            else:
                raise ConfigError(
                    f"Unknown setting {key!r}; known: {sorted(fields)} and spec.<parameter>"
                )
        return type(self)(**values)

    # ---- derived values -------------------------------------------------------------------

    def build_spec(self) -> spec_lib.BertQaSpec:
        """The model spec (validated); raises ConfigError naming the bad parameter."""
        if self.spec_class not in spec_lib.SPECS:
            raise ConfigError(
                f"spec_class={self.spec_class!r} is not one of {sorted(spec_lib.SPECS)}"
            )
        try:
            return spec_lib.SPECS[self.spec_class](**self.spec)
        except TypeError as e:  # an unknown parameter name
            raise ConfigError(f"spec: {e}") from e
        except ValueError as e:
            raise ConfigError(f"spec: {e}") from e

    def resolved_metadata_path(self) -> str:
        """The ML Metadata SQLite file of local runs."""
        return self.metadata_path or os.path.join(self.pipeline_root, "metadata.sqlite")

    # ---- checks ---------------------------------------------------------------------------

    def validate(self, target: str = "local") -> None:
        """Raises ConfigError if the pipeline cannot run on `target` with these settings."""
        if target not in TARGETS:
            raise ConfigError(f"target={target!r} is not one of {TARGETS}")
        spec = self.build_spec()
        errors = []
        for name in ("train_steps", "eval_steps"):
            if getattr(self, name) <= 0:
                errors.append(f"{name}={getattr(self, name)} must be > 0")
        errors.extend(GateConfig(**{f.name: getattr(self, f.name)
                                    for f in dataclasses.fields(GateConfig)}).errors())
        unknown = [q for q in self.quantizations if q not in QUANTIZATIONS]
        if unknown or not self.quantizations:
            errors.append(f"quantizations={self.quantizations} must be a non-empty subset of "
                          f"{QUANTIZATIONS}")
        bad_args = [a for a in self.beam_pipeline_args if not a.startswith("--")]
        if bad_args:
            errors.append(f"beam_pipeline_args {bad_args} must be --flag=value options")
        if self.local_orchestrator not in LOCAL_ORCHESTRATORS:
            errors.append(f"local_orchestrator={self.local_orchestrator!r} is not one of "
                          f"{LOCAL_ORCHESTRATORS}")
        if not self.pipeline_name:
            errors.append("pipeline_name must not be empty")
        if target == "vertex" and not self.pipeline_root.startswith("gs://"):
            errors.append(
                f"pipeline_root={self.pipeline_root!r}: Vertex AI Pipelines needs a gs:// root"
            )
        if target in ("kubeflow", "vertex") and not self.image:
            errors.append("image must name the pipeline's container image")
        if target == "vertex" and self.gcp_project:
            if self.vertex_worker_count < 1 or self.vertex_parameter_server_count < 1:
                errors.append("vertex_worker_count and vertex_parameter_server_count must be >= 1")
        if errors:
            raise ConfigError("Invalid pipeline configuration: " + "; ".join(errors))
        if target == "local":
            check_hub_module(spec.uri)
            if not os.path.isdir(self.data_root):
                raise ConfigError(f"data_root={self.data_root!r} is not a directory")
            for name in ("pipeline_root", "push_destination"):
                check_writable(name, getattr(self, name))
            check_writable("metadata_path", os.path.dirname(self.resolved_metadata_path()))


def check_hub_module(uri: str) -> None:
    """Raises ConfigError unless a local `uri` is a Hub module directory with a vocab."""
    if uri.startswith(_REMOTE_PREFIXES):
        return
    if not os.path.isdir(uri):
        raise ConfigError(f"spec.uri={uri!r} is neither a URL, a gs:// path nor a directory")
    if not any(os.path.isfile(os.path.join(uri, f)) for f in _HUB_MODULE_FILES):
        raise ConfigError(
            f"spec.uri={uri!r} is not a TF-Hub module: it has neither of {_HUB_MODULE_FILES}"
        )
    if not os.path.isfile(os.path.join(uri, "assets", "vocab.txt")):
        raise ConfigError(
            f"spec.uri={uri!r} has no assets/vocab.txt: a BERT/MobileBERT module ships its "
            "WordPiece vocab there"
        )


def check_writable(name: str, path: str) -> None:
    """Raises ConfigError unless the local directory `path` can be created and written."""
    if path.startswith(_REMOTE_PREFIXES):
        return
    try:
        os.makedirs(path or ".", exist_ok=True)
        with tempfile.TemporaryFile(dir=path or "."):
            pass
    except OSError as e:
        raise ConfigError(f"{name}={path!r} is not a writable directory: {e}") from e


def _parse_json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_value(key: str, type_: Any, text: str) -> Any:
    """Parses an override's text as the setting's type; ConfigError names the setting."""
    origin = typing.get_origin(type_) or type_
    try:
        if origin is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("expected true or false")
            return lowered in ("true", "1", "yes")
        if origin in (int, float):
            return origin(text)
        if origin is list:
            value = json.loads(text) if text.strip().startswith("[") else [
                v.strip() for v in text.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ValueError("expected a JSON list or comma-separated values")
            return [str(v) for v in value]
        if origin is dict:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
        return text
    except (ValueError, json.JSONDecodeError) as e:
        raise ConfigError(f"Setting {key}={text!r} is not a valid {type_}: {e}") from e
