"""The pipeline's configuration: every setting, its default, and its checks, in one place.

A `PipelineConfig` is built from defaults, then the environment (`from_env`: what the TFX
CLI's runner files use), then `key=value` overrides (`with_overrides`: what `mbqa run --set`
uses). Spec parameters are overridden as `spec.<name>=<value>` (e.g. `spec.seq_len=128`).
Default outputs go under `RUN_DIR` (~/mbqa-runs). Relative local paths (pipeline_root,
metadata_path, data_root, push_destination, a local spec.uri; `~` too) are made absolute
against the current directory whenever a config is built (`__post_init__`), so a pipeline
created in one directory runs from any other; gs:// and http(s) values stay as they are.
`validate(target)` raises `ConfigError` naming the setting before any heavy work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import json
import os
import re
import tempfile
import typing
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from components.evaluator.gate import GateConfig
from components.qa import contracts
from components.qa import spec as spec_lib
from components.trainer.vertex_training import MULTI_MACHINE_STRATEGIES, VertexTrainingSettings

TARGETS = ("local", "kubeflow", "vertex")
LOCAL_ORCHESTRATORS = ("local", "beam")
ENV_PREFIX = "MBQA_"
# A directory is a Hub module if it holds one of these (TF2 SavedModel / TF1 Hub format).
_HUB_MODULE_FILES = ("saved_model.pb", "tfhub_module.pb")
REMOTE_PREFIXES = ("gs://", "http://", "https://")
# The default run directory: every default output (and the default data root) is under it.
RUN_DIR = os.path.expanduser("~/mbqa-runs")
# The placeholder `image`: Kubeflow and Vertex AI runs need a real one.
PLACEHOLDER_IMAGE = "gcr.io/my-project/mobilebert-qa-tfx:latest"
# Path settings made absolute against the current directory when a config is built.
_LOCAL_PATH_SETTINGS = ("pipeline_root", "metadata_path", "data_root", "push_destination",
                        "schema_file")
_URL_PREFIXES = ("http://", "https://")
# TFX's span spec in an input pattern, with or without a width ({SPAN:4}): TFX's own
# `example_gen.utils.SPAN_FULL_REGEX` imports TensorFlow, which the settings checks do not.
SPAN_SPEC = r"\{SPAN(:\d+)?\}"
# Seconds a HEAD request to an http(s) spec.uri may take before the URL counts as unreachable.
_URL_TIMEOUT_S = 10
_TRUE_TEXTS = ("true", "yes", "1")
_FALSE_TEXTS = ("false", "no", "0")


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
      span: the span to read (train_pattern and eval_pattern hold {SPAN}); 0 = the latest.
        On Vertex AI a RuntimeParameter (`span`): a schedule or a submission may name it, and
        a span without files fails the run, naming the pattern and the spans that exist.
      training_spans: the spans the train split reads: 1 = the span only, N = the last N
        spans up to it, 0 = every span so far (the eval split reads the span only).
      fixed_eval_pattern: glob under data_root (no {SPAN}) of a fixed evaluation set that
        every run is evaluated and gated on; '' = the span's eval split.
      force_retrain: train even when the last blessed model was trained on the same data
        and spec (else the run stops before the Trainer: `mbqa run` exits 5).
      spec_class: the model spec class (a name in `components.qa.spec.SPECS`).
      spec: spec parameters overriding the class's defaults (uri, seq_len, ...).
      train_steps: training steps of the Trainer.
      eval_steps: evaluation steps of the Trainer.
      warm_start: start training from the last blessed model when it has the same variables
        and shapes (otherwise, and when False, training starts from the encoder).
      length_buckets: how many buckets of about equal counts the SquadTransform's
        tf.Transform analysis splits the training windows' lengths into; each training batch
        then holds windows of one bucket, padded to the bucket's length (TPUs too).
        0 turns it off (then trim_padding applies).
      trim_padding: without length buckets, cut each training batch to its longest window
        (rounded up to 64 tokens) instead of feeding seq_len tokens; not on TPUs.
      mixed_precision: the Trainer's Keras mixed precision policy: '' (float32),
        'mixed_float16' (GPUs) or 'mixed_bfloat16' (TPUs, CPUs); the exported model is float32.
      min_exact_match: the blessing threshold on exact match (0-100).
      min_f1: the blessing threshold on F1 (0-100).
      max_regression: how many points (EM and F1) the shipped file may lose against the last
        blessed model's before a significant difference blocks the push.
      regression_confidence: the paired bootstrap's confidence for a regression (0-1).
      max_quantization_drop: how many F1 points the shipped file may lose against its own
        SavedModel.
      require_task_library: push only a shipped file that answers in the TFLite Task
        Library's BertQuestionAnswerer (seq_len 384, query_len 64).
      min_task_library_f1: push only a shipped file whose F1, as the Task Library answers
        every eval question (its first window only, as on the device), reaches this (0: off).
      null_score_diff_threshold: SQuAD 2.0: answer '' when the null score beats the best
        span by more than this (logits); written into the shipped file's metadata.
      tune_null_threshold: SQuAD 2.0: use instead the best-F1 threshold on the eval split.
      quantizations: TFLite quantizations the evaluator measures and the pusher ships.
      push_destination: where blessed models are pushed (local path or gs://).
      beam_pipeline_args: Beam options (DirectRunner settings, or Dataflow's).
      local_orchestrator: 'local' (TFX's LocalDagRunner) or 'beam' (BeamDagRunner).
      enable_cache: reuse finished components' outputs on reruns.
      with_data_validation: run StatisticsGen, SchemaGen and ExampleValidator on the questions.
      schema_file: the approved schema (.pbtxt, `mbqa schema` writes one) the questions are
        validated against (ImportSchemaGen); '' infers it from each run's own statistics.
      stop_on_anomalies: stop before training (nothing trained or pushed) when
        ExampleValidator finds anomalies; None (auto): on when schema_file is set.
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
      kubeflow_accelerator_type: GKE GPU type (cloud.google.com/gke-accelerator) of the
        Kubeflow Trainer when it trains on GPUs ('' = no node selector).
      kubeflow_tpu_type: GKE TPU type (cloud.google.com/gke-tpu-accelerator) of the
        Kubeflow Trainer's 'tpu' training.
      kubeflow_tpu_topology: the single-host TPU slice (cloud.google.com/gke-tpu-topology) of
        the Kubeflow Trainer's 'tpu' training; it requests all its chips.
    """

    pipeline_name: str = "mobilebert-qa"
    pipeline_root: str = os.path.join(RUN_DIR, "pipeline")
    metadata_path: str = ""
    data_root: str = os.path.join(RUN_DIR, "data")
    train_pattern: str = "train/*.json"
    eval_pattern: str = "eval/*.json"
    skip_invalid: bool = False
    span: int = 0
    training_spans: int = 1
    fixed_eval_pattern: str = ""
    force_retrain: bool = False
    spec_class: str = "MobileBertQaSpec"
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_steps: int = 1000
    eval_steps: int = 100
    warm_start: bool = True
    length_buckets: int = 8
    trim_padding: bool = True
    mixed_precision: str = ""
    min_exact_match: float = GateConfig.min_exact_match
    min_f1: float = GateConfig.min_f1
    max_regression: float = GateConfig.max_regression
    regression_confidence: float = GateConfig.regression_confidence
    max_quantization_drop: float = GateConfig.max_quantization_drop
    require_task_library: bool = GateConfig.require_task_library
    min_task_library_f1: float = GateConfig.min_task_library_f1
    null_score_diff_threshold: float = 0.0
    tune_null_threshold: bool = False
    quantizations: list[str] = dataclasses.field(default_factory=lambda: ["dynamic"])
    push_destination: str = os.path.join(RUN_DIR, "serving")
    beam_pipeline_args: list[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    )
    local_orchestrator: str = "local"
    enable_cache: bool = True
    with_data_validation: bool = True
    schema_file: str = ""
    stop_on_anomalies: bool | None = None
    image: str = PLACEHOLDER_IMAGE
    gcp_project: str = ""
    gcp_region: str = VertexTrainingSettings.gcp_region
    vertex_machine_type: str = VertexTrainingSettings.vertex_machine_type
    vertex_accelerator_type: str = VertexTrainingSettings.vertex_accelerator_type
    vertex_worker_count: int = VertexTrainingSettings.vertex_worker_count
    vertex_parameter_server_count: int = VertexTrainingSettings.vertex_parameter_server_count
    vertex_tpu_type: str = VertexTrainingSettings.vertex_tpu_type
    vertex_tpu_cores: int = VertexTrainingSettings.vertex_tpu_cores
    vertex_service_account: str = VertexTrainingSettings.vertex_service_account
    kubeflow_accelerator_type: str = "nvidia-tesla-t4"
    kubeflow_tpu_type: str = "tpu-v5-lite-podslice"
    kubeflow_tpu_topology: str = "2x4"

    # ---- building -------------------------------------------------------------------------

    def __post_init__(self) -> None:
        """Makes relative local paths absolute against the current directory."""
        for name in _LOCAL_PATH_SETTINGS:
            setattr(self, name, _absolute(getattr(self, name)))
        if isinstance(self.spec.get("uri"), str):
            self.spec = {**self.spec, "uri": _absolute(self.spec["uri"])}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineConfig:
        """Defaults overridden by `MBQA_<SETTING>` variables (`MBQA_SPEC` is a JSON object).

        Raises:
          ConfigError: an `MBQA_` variable names no setting (the closest one is suggested).
        """
        environ = os.environ if environ is None else environ
        known = {ENV_PREFIX + field.name.upper(): field.name for field in dataclasses.fields(cls)}
        unknown = sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known)
        if unknown:
            raise ConfigError("; ".join(
                f"{name} is not a setting{_did_you_mean(name, known)}" for name in unknown
            ) + "; `mbqa settings` lists the settings")
        return cls().with_overrides(
            f"{field}={environ[name]}" for name, field in known.items() if name in environ
        )

    def to_env(self) -> dict[str, str]:
        """The `MBQA_<SETTING>` variables that `from_env` turns back into this config."""
        env = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value != getattr(type(self)(), field.name):
                env[ENV_PREFIX + field.name.upper()] = _env_text(value)
        return env

    def with_overrides(self, overrides: Iterable[str]) -> PipelineConfig:
        """A copy with `key=value` overrides applied; `spec.<param>=value` sets one spec value.

        Each text is parsed by its setting's type (a spec value by its spec class parameter's
        type; text values of a `spec=<JSON object>` too), booleans as true/yes/1 or false/no/0.
        """
        types = typing.get_type_hints(type(self))
        values = dataclasses.asdict(self)
        for item in overrides:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"Override {item!r} is not of the form key=value")
            if key.startswith("spec."):
                values["spec"] = {**values["spec"], key[len("spec."):]: text}
            elif key in types:
                values[key] = _parse_value(key, types[key], text)
            else:
                raise ConfigError(f"Unknown setting {key!r}{_did_you_mean(key, types)}; "
                                  "`mbqa settings` lists them (spec values: spec.<parameter>)")
        param_types = _spec_parameter_types(values["spec_class"])
        values["spec"] = {
            name: _parse_value(f"spec.{name}", param_types[name], value)
            if isinstance(value, str) and name in param_types else value
            for name, value in values["spec"].items()
        }
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

    def resolved_stop_on_anomalies(self) -> bool:
        """stop_on_anomalies, its auto value (None) resolved: on when schema_file is set."""
        if self.stop_on_anomalies is None:
            return bool(self.schema_file)
        return self.stop_on_anomalies

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
        if self.length_buckets < 0 or self.length_buckets == 1:
            errors.append(f"length_buckets={self.length_buckets} must be 0 (off) or >= 2")
        errors.extend(GateConfig(**{f.name: getattr(self, f.name)
                                    for f in dataclasses.fields(GateConfig)}).errors())
        unknown = [q for q in self.quantizations if q not in contracts.QUANTIZATIONS]
        if unknown or not self.quantizations:
            errors.append(f"quantizations={self.quantizations} must be a non-empty subset of "
                          f"{contracts.QUANTIZATIONS}")
        bad_args = [a for a in self.beam_pipeline_args if not a.startswith("--")]
        if bad_args:
            errors.append(f"beam_pipeline_args {bad_args} must be --flag=value options")
        if self.mixed_precision not in ("", *contracts.MIXED_PRECISION_POLICIES):
            errors.append(f"mixed_precision={self.mixed_precision!r} is not '' (off) or one of "
                          f"{contracts.MIXED_PRECISION_POLICIES}")
        elif self.mixed_precision == "mixed_float16" and spec.distribution_strategy == "tpu":
            errors.append("mixed_precision='mixed_float16' cannot run on TPUs "
                          "(spec.distribution_strategy='tpu'): TPUs use 'mixed_bfloat16'")
        errors.extend(self._data_validation_errors())
        errors.extend(self._span_errors())
        if self.local_orchestrator not in LOCAL_ORCHESTRATORS:
            errors.append(f"local_orchestrator={self.local_orchestrator!r} is not one of "
                          f"{LOCAL_ORCHESTRATORS}")
        if not self.pipeline_name:
            errors.append("pipeline_name must not be empty")
        if target != "local":
            errors.extend(self._container_errors(target, spec))
        if target == "vertex" and self.gcp_project:
            if self.vertex_worker_count < 1 or self.vertex_parameter_server_count < 1:
                errors.append("vertex_worker_count and vertex_parameter_server_count must be >= 1")
        if errors:
            raise ConfigError("Invalid pipeline configuration: " + "; ".join(errors))
        if target == "local":
            check_hub_module(spec.uri, spec.is_tf2)
            if not os.path.isdir(self.data_root):
                raise ConfigError(f"data_root={self.data_root!r} is not a directory")
            for name in ("pipeline_root", "push_destination"):
                check_writable(name, getattr(self, name))
            check_writable("metadata_path", os.path.dirname(self.resolved_metadata_path()))

    def has_spans(self) -> bool:
        """Whether both input patterns hold {SPAN} (`span` and `training_spans` apply)."""
        return all(re.search(SPAN_SPEC, getattr(self, name))
                   for name in ("train_pattern", "eval_pattern"))

    def _span_errors(self) -> list[str]:
        """Why the span settings cannot work."""
        errors = [f"{name}={getattr(self, name)} must be >= 0"
                  for name in ("span", "training_spans") if getattr(self, name) < 0]
        if (self.span or self.training_spans != 1) and not self.has_spans():
            errors.append(f"span={self.span} and training_spans={self.training_spans} need "
                          "{SPAN} in both train_pattern and eval_pattern")
        if re.search(SPAN_SPEC, self.fixed_eval_pattern):
            errors.append(f"fixed_eval_pattern={self.fixed_eval_pattern!r} must not hold {{SPAN}}:"
                          " it is the same set on every run")
        return errors

    def _data_validation_errors(self) -> list[str]:
        """Why the approved schema or the stop on anomalies cannot work."""
        errors = []
        if not self.with_data_validation:
            errors += [f"{name}={getattr(self, name)!r} needs with_data_validation=true"
                       for name in ("schema_file", "stop_on_anomalies") if getattr(self, name)]
        if (self.schema_file and not self.schema_file.startswith("gs://")
                and not os.path.isfile(self.schema_file)):
            errors.append(f"schema_file={self.schema_file!r} is not a file (`mbqa schema --out "
                          "FILE` writes one from a run's statistics)")
        return errors

    def _container_errors(self, target: str, spec: spec_lib.BertQaSpec) -> list[str]:
        """Why the steps could not run in their containers on Kubeflow / Vertex AI."""
        errors = []
        if self.image in ("", PLACEHOLDER_IMAGE):
            errors.append(f"image={self.image!r} is not the pipeline's image: build and push "
                          "deploy/Dockerfile, then set image (--set image=... or MBQA_IMAGE)")
        for name in ("pipeline_root", "data_root", "push_destination", "schema_file"):
            value = getattr(self, name)
            if not value.startswith("gs://") and (value or name != "schema_file"):
                errors.append(f"{name}={value!r}: the {target} steps run in containers that "
                              "see no local files; use a gs:// path")
        if not spec.uri.startswith(REMOTE_PREFIXES):
            errors.append(f"spec.uri={spec.uri!r}: the {target} steps run in containers that "
                          "see no local files; use a gs:// path or an http(s) URL")
        strategy = spec.distribution_strategy
        if strategy in MULTI_MACHINE_STRATEGIES and not (target == "vertex" and self.gcp_project):
            errors.append(f"spec.distribution_strategy={strategy!r} needs several machines, but "
                          f"the {target} Trainer is one container; train on Vertex AI "
                          "(--target vertex with gcp_project) or use 'mirrored'")
        if (target == "kubeflow" and strategy == "tpu"
                and not re.fullmatch(r"[1-9]\d*(x[1-9]\d*)+", self.kubeflow_tpu_topology)):
            errors.append(f"kubeflow_tpu_topology={self.kubeflow_tpu_topology!r} is not a TPU "
                          "topology such as 2x4 or 2x2x1")
        return errors


class Setting(typing.NamedTuple):
    """One setting as `mbqa settings` lists it."""

    name: str
    type: str
    default: str  # As the text of its environment variable.
    env_var: str
    description: str


def setting_descriptions() -> dict[str, str]:
    """Each setting's description (one line), from PipelineConfig's docstring `Attributes:`."""
    section = inspect.cleandoc(PipelineConfig.__doc__ or "").partition("\nAttributes:\n")[2]
    return {name: " ".join(text.split())
            for name, text in re.findall(r"^  (\w+): (.*(?:\n    .*)*)", section, re.M)}


def list_settings() -> list[Setting]:
    """Every setting of PipelineConfig with its type, default, variable and description."""
    descriptions = setting_descriptions()
    return [
        Setting(field.name, str(field.type), _env_text(
            field.default_factory() if field.default is dataclasses.MISSING else field.default
        ), ENV_PREFIX + field.name.upper(), descriptions[field.name])
        for field in dataclasses.fields(PipelineConfig)
    ]


def check_hub_module(uri: str, is_tf2: bool) -> None:
    """Raises ConfigError unless `uri` serves a Hub module in the format `is_tf2` names.

    A local directory must be a Hub module with assets/vocab.txt: in the TF1 Hub format
    (tfhub_module.pb, beside saved_model.pb) for is_tf2=False, a TF2 SavedModel (saved_model.pb
    only) for is_tf2=True. An http(s) URL in TF Hub's cache has its format checked, else it must
    answer a HEAD request. gs:// paths are not checked (reading them needs TensorFlow).
    """
    if uri.startswith(_URL_PREFIXES):
        cached = _tfhub_cache_path(uri)
        if os.path.isdir(cached) and os.listdir(cached):
            _check_hub_format(uri, cached, is_tf2)
        else:
            _check_url_reachable(uri)
        return
    if uri.startswith(REMOTE_PREFIXES):
        return
    if not os.path.isdir(uri):
        raise ConfigError(f"spec.uri={uri!r} is neither a URL, a gs:// path nor a directory")
    if not any(os.path.isfile(os.path.join(uri, f)) for f in _HUB_MODULE_FILES):
        raise ConfigError(
            f"spec.uri={uri!r} is not a TF-Hub module: it has neither of {_HUB_MODULE_FILES}"
        )
    _check_hub_format(uri, uri, is_tf2)
    if not os.path.isfile(os.path.join(uri, "assets", "vocab.txt")):
        raise ConfigError(
            f"spec.uri={uri!r} has no assets/vocab.txt: a BERT/MobileBERT module ships its "
            "WordPiece vocab there"
        )


def check_writable(name: str, path: str) -> None:
    """Raises ConfigError unless the local directory `path` can be created and written."""
    if path.startswith(REMOTE_PREFIXES):
        return
    try:
        os.makedirs(path or ".", exist_ok=True)
        with tempfile.TemporaryFile(dir=path or "."):
            pass
    except OSError as e:
        raise ConfigError(f"{name}={path!r} is not a writable directory: {e}") from e


def _absolute(path: str) -> str:
    """A local `path` made absolute (`~` expanded); '', gs:// and http(s) as they are."""
    if not path or path.startswith(REMOTE_PREFIXES):
        return path
    return os.path.abspath(os.path.expanduser(path))


def _check_hub_format(uri: str, path: str, is_tf2: bool) -> None:
    """Raises ConfigError unless the Hub module at `path` (spec.uri's) is in is_tf2's format."""
    tf1 = os.path.isfile(os.path.join(path, "tfhub_module.pb"))
    if tf1 and is_tf2:
        raise ConfigError(f"spec.uri={uri!r} is a TF1 Hub module (it has tfhub_module.pb) but "
                          "spec.is_tf2=True; set spec.is_tf2=False")
    if not tf1 and not is_tf2 and os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ConfigError(f"spec.uri={uri!r} is a TF2 SavedModel (saved_model.pb, no "
                          "tfhub_module.pb) but spec.is_tf2=False; set spec.is_tf2=True")


def _tfhub_cache_path(handle: str) -> str:
    """Where tensorflow_hub caches the module of a URL (its resolver's rule, without TF)."""
    cache_dir = (os.environ.get("TFHUB_CACHE_DIR")
                 or os.path.join(tempfile.gettempdir(), "tfhub_modules"))
    return os.path.join(cache_dir, hashlib.sha1(handle.encode("utf8")).hexdigest())


def _check_url_reachable(uri: str) -> None:
    """Raises ConfigError if a HEAD request to spec.uri `uri` fails or finds nothing."""
    try:
        with urllib.request.urlopen(urllib.request.Request(uri, method="HEAD"),
                                    timeout=_URL_TIMEOUT_S):
            pass
    except urllib.error.HTTPError as e:  # The server answered: only "no such module" is fatal.
        if e.code in (404, 410):
            raise ConfigError(f"spec.uri={uri!r} was not found (HTTP {e.code})") from e
    except OSError as e:  # URLError, timeouts.
        raise ConfigError(
            f"spec.uri={uri!r} cannot be reached ({getattr(e, 'reason', e)}); this machine may "
            "be offline: set spec.uri to a local Hub module (`mbqa make-encoder --out DIR` "
            "writes one)"
        ) from e


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' with the known name closest to `name`, or ''."""
    matches = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {matches[0]}?)" if matches else ""


def _env_text(value: Any) -> str:
    """A setting's value as the text of its `MBQA_<SETTING>` variable."""
    return json.dumps(value) if isinstance(value, bool | list | dict) else str(value)


def _spec_parameter_types(spec_class: str) -> dict[str, Any]:
    """The parameter types of a spec class's constructor ({} if unknown: build_spec says so)."""
    if spec_class not in spec_lib.SPECS:
        return {}
    types = typing.get_type_hints(spec_lib.SPECS[spec_class].__init__)
    types.pop("return", None)
    return types


def _parse_value(key: str, type_: Any, text: str) -> Any:
    """Parses a setting's (or spec parameter's) text as its type; ConfigError names it.

    Booleans are true/yes/1 or false/no/0 (any case); `X | None` also takes null or None.
    """
    if type(None) in typing.get_args(type_):
        if text.strip() in ("null", "None"):
            return None
        type_ = next(t for t in typing.get_args(type_) if t is not type(None))
    origin = typing.get_origin(type_) or type_
    try:
        if origin is bool:
            lowered = text.strip().lower()
            if lowered not in _TRUE_TEXTS + _FALSE_TEXTS:
                raise ValueError("expected true/false, yes/no or 1/0")
            return lowered in _TRUE_TEXTS
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
        name = getattr(type_, "__name__", str(type_))
        raise ConfigError(f"Setting {key}={text!r} is not a valid {name}: {e}") from e
