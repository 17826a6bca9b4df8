"""The model card of a pushed version: `model_card.json` and `model_card.md`, same content.

The QaEvaluator writes both into its evaluation (the pusher ships the evaluation's files).
Anything absent (no windows artifact, no training record, no span) is stated as
`NOT_RECORDED`. The card's keys:
- `written_at` (UTC ISO), `model` {`uri`, `serving_dir`};
- `warning`: "No accuracy gate was applied to this model: ..." when the blessing's reasons
  say `gate.NO_GATE`, else None;
- `data`: `examples` {`uri`, `span`, `version`, `questions` {split: records counted},
  `invalid_records` {`num_questions`, `num_examples`, `num_skipped`} from SquadExampleGen's
  report}; `windows` {`uri`, `splits` {split: {questions, windows, skipped, no_windows}},
  `skipped_lists`} from SquadTransform's stats; `anomalies`: ExampleValidator's anomalies of
  the questions {`summary` ("no anomalies", "2 anomalies"), `anomalies` [{`split`,
  `feature`, `kind`, `description`}]}, or "not validated" when the evaluator got none
  (`components.qa.data_validation`); and metrics.json's `data`: `training_spans`,
  `evaluation_set`, `qa_statistics` (`components.evaluator.data_summary`);
- `spec`: `spec.to_dict()`; `training`: the Trainer's `assets.extra/training.json`;
- `evaluation`: `eval_split`, `num_questions`, `squad_version`, `null_score_diff_threshold`,
  `shipped`, `models` {name: `exact_match`, `f1`, TFLite files also `f1_vs_saved_model`
  (F1 − the SavedModel's), `size_bytes`, `task_library`, `agreement`, `latency_ms`},
  `task_library` (the shipped file answered in the Task Library: metrics.json's
  `task_library` without its `official` keys, `components.evaluator.device_scores`),
  `baseline` (None, or its EM/F1, URI and `difference` intervals), `blessing` {`blessed`,
  `reasons`, `checks`, `thresholds`};
- `versions`: {package: version or "not installed"}, `python` included.

model-card-toolkit is not used: no version of it installs on the pinned stack.
`uv pip install --dry-run -c constraints.txt model-card-toolkit` says "your requirements are
unsatisfiable": 2.x needs tensorflow-model-analysis<0.42, 1.2-1.3.2 tfx<1.6, older ones
ml-metadata<0.27 or tfma<0.34, against the pinned tfma 0.46.0, tfx 1.15.1, ml-metadata 1.15.0.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.types import artifact_utils

from components.evaluator import data_summary, device_scores
from components.evaluator.gate import NO_GATE
from components.qa import contracts, data_validation
from components.qa import spec as spec_lib

NOT_RECORDED = "not recorded"
PACKAGES = ("tensorflow", "tfx", "apache-beam", "tensorflow-hub", "tf-models-official",
            "tflite-support", "tensorflow-text")
SAVED_MODEL = "saved_model"


def _read_json(path: str) -> Any:
    """The file's JSON, or `NOT_RECORDED` when there is no such file."""
    value = contracts.read_artifact_json(path)
    return NOT_RECORDED if value is None else value


def _count_records(artifact: types.Artifact, split: str) -> int:
    """The records of one split's TFRecord files (gzip when named .gz)."""
    files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([artifact], split), "*"))
    return sum(int(tf.data.TFRecordDataset(p, "GZIP" if p.endswith(".gz") else "").reduce(
        np.int64(0), lambda n, _: n + 1)) for p in files)


def _int_property(artifact: types.Artifact, name: str) -> int | str:
    """A property, or a custom property as TFX's ExampleGens record `span`/`version`."""
    if artifact.has_property(name):
        return getattr(artifact, name)
    if artifact.has_custom_property(name):
        return artifact.get_int_custom_property(name)
    return NOT_RECORDED


def _examples_data(examples: types.Artifact) -> dict[str, Any]:
    report = _read_json(os.path.join(examples.uri, contracts.INVALID_RECORDS_FILE))
    if report != NOT_RECORDED:
        report = {k: report[k] for k in ("num_questions", "num_examples", "num_skipped")}
    return {
        "uri": examples.uri,
        **{p: _int_property(examples, p) for p in ("span", "version")},
        "questions": {split: _count_records(examples, split)
                      for split in artifact_utils.decode_split_names(examples.split_names)},
        "invalid_records": report,
    }


def _windows_data(transformed: types.Artifact | None) -> Any:
    if transformed is None:
        return NOT_RECORDED
    stats = _read_json(os.path.join(transformed.uri, contracts.WINDOW_STATS_FILE))
    lists = tf.io.gfile.glob(
        os.path.join(transformed.uri, contracts.SKIPPED_QUESTIONS_PREFIX + "*"))
    return {"uri": transformed.uri,
            "splits": stats if stats == NOT_RECORDED else stats["splits"],
            "skipped_lists": sorted(os.path.basename(p) for p in lists)}


def _anomalies_data(anomalies: Sequence[data_validation.Anomaly] | None) -> Any:
    if anomalies is None:
        return data_validation.NOT_VALIDATED
    return {"summary": data_validation.summary(anomalies),
            "anomalies": [a.to_dict() for a in anomalies]}


def _evaluation(summary: Mapping) -> dict[str, Any]:
    saved_f1 = summary["models"][SAVED_MODEL]["f1"]
    models = {}
    for name, result in summary["models"].items():
        models[name] = {"exact_match": round(result["exact_match"], 2),
                        "f1": round(result["f1"], 2)}
        if name != SAVED_MODEL:
            models[name].update(
                f1_vs_saved_model=round(result["f1"] - saved_f1, 2),
                **{k: result.get(k, NOT_RECORDED)
                   for k in ("size_bytes", "task_library", "agreement", "latency_ms")})
    blessing = summary["blessing"]
    return {
        **{k: summary[k] for k in ("eval_split", "num_questions", "shipped")},
        "squad_version": "2.0" if summary["version_2_with_negative"] else "1.1",
        "null_score_diff_threshold": contracts.ServingConfig.from_dict(
            summary["serving_config"]).null_score_diff_threshold,
        "models": models,
        "task_library": ({k: v for k, v in summary["task_library"].items() if k != "official"}
                         if "task_library" in summary else NOT_RECORDED),
        "baseline": None if summary["baseline"] is None else {
            k: summary["baseline"][k] for k in ("model_uri", "exact_match", "f1", "difference")},
        "blessing": {**{k: blessing[k] for k in ("blessed", "reasons", "checks")},
                     "thresholds": {k: v for k, v in blessing.items()
                                    if k not in ("blessed", "reasons", "checks")}},
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _recorded(value: Any) -> Any:
    """`value` with every None (absent) as `NOT_RECORDED`."""
    if isinstance(value, Mapping):
        return {k: _recorded(v) for k, v in value.items()}
    return NOT_RECORDED if value is None else value


def build_model_card(summary: Mapping, examples: types.Artifact,
                     transformed: types.Artifact | None, model: types.Artifact,
                     spec: spec_lib.BertQaSpec,
                     anomalies: Sequence[data_validation.Anomaly] | None = None) -> dict:
    """The card (keys in the module docstring) from the evaluator's metrics.json `summary`
    (`anomalies`: ExampleValidator's; None: the data was not validated)."""
    serving_dir = contracts.serving_dir(model)
    no_gate = [r for r in summary["blessing"]["reasons"] if NO_GATE in r]
    return {
        "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"uri": model.uri, "serving_dir": serving_dir},
        "warning": (
            "No accuracy gate was applied to this model: nothing checked its EM/F1 before it "
            f"was blessed ({no_gate[0].replace(NO_GATE + ': ', '')})." if no_gate else None),
        "data": {"examples": _examples_data(examples), "windows": _windows_data(transformed),
                 "anomalies": _anomalies_data(anomalies),
                 **_recorded(summary.get("data") or {})},
        "spec": spec.to_dict(),
        "training": _read_json(os.path.join(serving_dir, contracts.TRAINING_RECORD)),
        "evaluation": _evaluation(summary),
        "versions": {**{p: _version(p) for p in PACKAGES}, "python": platform.python_version()},
    }


def _cell(value: Any) -> str:
    """A value in a line or a table cell: floats to 2 decimals, unless that hides them."""
    if isinstance(value, float):
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.1 else f"{value:.2g}"
    return json.dumps(value, sort_keys=True) if isinstance(value, Mapping | list) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows] + [""]


def _pairs(value: Any) -> list[str]:
    """A key/value table of a dict, or the value in a line."""
    if not isinstance(value, Mapping):
        return [_cell(value), ""]
    return _table(("Key", "Value"), sorted(value.items()))


def _task_library(name: str, status: Any) -> str:
    if not isinstance(status, Mapping):
        return f"- {name}: {status}"
    if status["compatible"]:
        return f"- {name}: compatible (answered {status['answer']!r})"
    return f"- {name}: not compatible: " + "; ".join(status["problems"])


def _evaluation_md(ev: Mapping) -> list[str]:
    threshold = (f", null_score_diff_threshold {_cell(ev['null_score_diff_threshold'])}"
                 if ev["squad_version"] == "2.0" else " (no null threshold)")
    lines = ["## Evaluation", "", f"{ev['num_questions']} questions of split "
             f"`{ev['eval_split']}`, SQuAD {ev['squad_version']}{threshold}; shipped file: "
             f"{ev['shipped']}.", ""]
    lite = [(n, r) for n, r in ev["models"].items() if n != SAVED_MODEL]
    lines += _table(("Model", "EM", "F1", "F1 vs SavedModel", "Size (bytes)", "Latency (ms)",
                     "Agreement with the SavedModel"),
                    [(n, r["exact_match"], r["f1"], r.get("f1_vs_saved_model", "–"),
                      r.get("size_bytes", "–"), r.get("latency_ms", "–"),
                      r.get("agreement", "–")) for n, r in ev["models"].items()])
    lines += ["TFLite Task Library (BertQuestionAnswerer):", ""]
    lines += [_task_library(n, r["task_library"]) for n, r in lite] + [""]
    device = ev["task_library"]
    if isinstance(device, Mapping):
        lines += [f"On the device: {device_scores.describe(device)}.", ""] + _pairs(device)
    else:
        lines += [f"On the device: {device}.", ""]
    lines += ["## Baseline", ""]
    baseline = ev["baseline"]
    if baseline is None:
        lines += ["No baseline model (no earlier blessed model to compare with).", ""]
    else:
        lines += [f"Baseline `{baseline['model_uri']}` (its shipped file): EM "
                  f"{_cell(baseline['exact_match'])}, F1 {_cell(baseline['f1'])}.", ""]
        lines += _table(("Shipped − baseline", "Mean", "Low", "High", "Confidence"),
                        [(k, d["mean"], d["low"], d["high"], d["confidence"])
                         for k, d in sorted(baseline["difference"].items())])
    blessing = ev["blessing"]
    lines += ["## Blessing", "", "BLESSED" if blessing["blessed"] else "NOT BLESSED", ""]
    lines += _table(("Check", "Passed", "Reason"),
                    [(c["name"], c["passed"], c["detail"]) for c in blessing["checks"]])
    return lines + _pairs(blessing["thresholds"])


def _anomalies_md(anomalies: Any) -> list[str]:
    if not isinstance(anomalies, Mapping):
        return [f"Data anomalies (ExampleValidator): {anomalies}.", ""]
    lines = [f"Data anomalies (ExampleValidator): {anomalies['summary']}.", ""]
    if anomalies["anomalies"]:
        lines += _table(("Split", "Feature", "Kind", "Description"),
                        [(a["split"], a["feature"], a["kind"], a["description"])
                         for a in anomalies["anomalies"]])
    return lines


def _data_md(data: Mapping) -> list[str]:
    examples, windows = data["examples"], data["windows"]
    lines = ["## Data", "", f"Examples `{examples['uri']}`: span {examples['span']}, "
             f"version {examples['version']}.", ""]
    lines += _table(("Split", "Questions"), sorted(examples["questions"].items()))
    lines += ["Invalid records (SquadExampleGen):", ""] + _pairs(examples["invalid_records"])
    lines += _anomalies_md(data.get("anomalies", data_validation.NOT_VALIDATED))
    if "evaluation_set" in data:  # which spans trained and evaluated, the QA statistics
        sentences, header, rows = data_summary.describe(data)
        lines += [" ".join(sentences), ""] + _table(header, rows)
    lines += ["Windows (SquadTransform):", ""]
    if not isinstance(windows, Mapping):
        return lines + [windows, ""]
    lines += [f"`{windows['uri']}`; skipped questions listed in: "
              f"{', '.join(windows['skipped_lists']) or 'no file'}.", ""]
    if not isinstance(windows["splits"], Mapping):
        return lines + [windows["splits"], ""]
    return lines + _table(("Split", "Questions", "Windows", "Skipped", "No windows"),
                          [(s, c["questions"], c["windows"], c["skipped"], c["no_windows"])
                           for s, c in sorted(windows["splits"].items())])


def render_markdown(card: Mapping) -> str:
    """The card for people: every figure of the JSON, in sections and tables."""
    lines = ["# Model card: MobileBERT SQuAD question answering", ""]
    if card["warning"]:
        lines += [f"**{card['warning']}**", ""]
    lines += [f"Model `{card['model']['uri']}` (SavedModel `{card['model']['serving_dir']}`); "
              f"card written {card['written_at']}.", ""]
    lines += _evaluation_md(card["evaluation"]) + _data_md(card["data"])
    lines += ["## Spec", "", f"`{card['spec']['class']}`", ""] + _pairs(card["spec"]["params"])
    lines += ["## Training", ""] + _pairs(card["training"])
    lines += ["## Software versions", ""] + _pairs(card["versions"])
    return "\n".join(lines)


def write_model_card(card: Mapping, out_dir: str) -> dict[str, str]:
    """Writes `model_card.json` and `model_card.md` into `out_dir`; {file name: path}."""
    tf.io.gfile.makedirs(out_dir)
    paths = {name: os.path.join(out_dir, name)
             for name in (contracts.MODEL_CARD_JSON_FILE, contracts.MODEL_CARD_MARKDOWN_FILE)}
    with tf.io.gfile.GFile(paths[contracts.MODEL_CARD_JSON_FILE], "w") as f:
        json.dump(card, f, indent=2, ensure_ascii=False, sort_keys=True)
    with tf.io.gfile.GFile(paths[contracts.MODEL_CARD_MARKDOWN_FILE], "w") as f:
        f.write(render_markdown(card))
    return paths
