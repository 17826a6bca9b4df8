"""SquadTransform in a real TFX pipeline (SquadExampleGen -> SquadTransform, LocalDagRunner)."""

import collections
import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from tfx import v1 as tfx
from tfx.types import artifact_utils, channel, standard_artifacts

from components.qa import contracts, squad
from components.qa import spec as spec_lib
from components.qa.windows import WindowConfig, WindowMaker, window_from_tf_example
from components.squad_example_gen.component import SquadExampleGen
from components.squad_transform import executor, length_buckets
from components.squad_transform.component import SquadTransform

NBSP_QUESTION = {  # BERT skips it: 'a\u00a0b' is one passage word, the answer reads 'a b'
    "id": "nbsp-answer", "question": "Which letters?", "is_impossible": False,
    "answers": [{"text": "a\u00a0b", "answer_start": 2}],
}


def _module_dir(data_dir, tmp_path) -> str:
    module = tmp_path / "module"
    (module / "assets").mkdir(parents=True)
    shutil.copy(data_dir / "vocab" / "vocab.txt", module / "assets" / "vocab.txt")
    return str(module)


def _read_split(examples, split: str) -> list[bytes]:
    files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    assert files, f"no files in split {split}"
    assert all(f.endswith(".gz") for f in files)
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _output(store, producer_type: str, artifact_class=standard_artifacts.Examples):
    """The artifact of `artifact_class` a component of the pipeline produced."""
    artifact_type = store.get_artifact_type(artifact_class.TYPE_NAME)
    for mlmd_artifact in store.get_artifacts_by_type(artifact_class.TYPE_NAME):
        artifact = artifact_utils.deserialize_artifact(artifact_type, mlmd_artifact)
        if producer_type in artifact.uri:
            return artifact
    raise AssertionError(f"no Examples artifact from {producer_type}")


@pytest.mark.parametrize("num_buckets", [16, 0])
def test_windows_every_split_in_a_local_pipeline(data_dir, tmp_path, caplog, num_buckets):
    caplog.set_level(logging.INFO)
    fixture = data_dir / "squad" / "dev-v2.0-first5articles.official.json"
    data = json.loads(fixture.read_text(encoding="utf-8"))
    article = data["data"][0]
    article["paragraphs"] = article["paragraphs"][:12] + [
        {"context": "x a\u00a0b y", "qas": [NBSP_QUESTION]}
    ]
    input_base = tmp_path / "input"
    input_base.mkdir()
    (input_base / "part.json").write_text(json.dumps({"version": "v2.0", "data": [article]}))
    model_spec = spec_lib.MobileBertQaSpec(
        uri=_module_dir(data_dir, tmp_path), seq_len=96, query_len=24, doc_stride=32)
    gen = SquadExampleGen(input_base=str(input_base))
    transform = SquadTransform(examples=gen.outputs["examples"], spec=model_spec,
                               length_buckets=num_buckets)
    metadata_path = str(tmp_path / "metadata.sqlite")
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="squad-transform-test",
        pipeline_root=str(tmp_path / "root"),
        components=[gen, transform],
        metadata_connection_config=connection,
    ))

    store = metadata_store.MetadataStore(connection)
    questions = _output(store, "SquadExampleGen")
    windows = _output(store, "SquadTransform")
    splits = artifact_utils.decode_split_names(windows.split_names)
    assert splits == artifact_utils.decode_split_names(questions.split_names) == ["train", "eval"]

    maker = WindowMaker(os.path.join(model_spec.uri, "assets", "vocab.txt"),
                        WindowConfig(96, 24, 32))
    stats = json.loads(tf.io.gfile.GFile(
        os.path.join(windows.uri, contracts.WINDOW_STATS_FILE)).read())
    skipped_ids = []
    total_windows = 0
    train_lengths = []
    for split in splits:
        expected = []
        split_questions = [squad.from_tf_example(r) for r in _read_split(questions, split)]
        for question in split_questions:
            if question.id == NBSP_QUESTION["id"]:
                skipped_ids.append(split)
                continue
            expected.extend(maker.make_windows(question, training=True))
        written = [window_from_tf_example(r, maker.tokenizer.vocab)
                   for r in _read_split(windows, split)]
        key = lambda w: (w.example_id, w.window_index)  # noqa: E731
        if split == "train":
            train_lengths = [sum(w.input_mask) for w in written]
        assert sorted(written, key=key) == sorted(expected, key=key)
        assert any(w.start_position > 0 for w in written)
        split_stats = stats["splits"][split]
        assert split_stats["questions"] == len(split_questions)
        assert split_stats["windows"] == len(written)
        _check_qa_statistics(stats["qa_statistics"][split], split_questions, expected, maker)
        progress_lines = [m for m in caplog.messages if m.startswith(f"SquadTransform [{split}]")]
        assert f": {len(split_questions)}/? questions" in progress_lines[-1]  # the DoFn's last
        total_windows += len(written)
    assert len(skipped_ids) == 1  # the skipped question is in one split, and listed there
    skipped_file = os.path.join(windows.uri, f"skipped-{skipped_ids[0]}.jsonl")
    [line] = tf.io.gfile.GFile(skipped_file).read().splitlines()
    assert json.loads(line)["id"] == NBSP_QUESTION["id"]
    assert windows.get_int_custom_property("num_windows") == total_windows
    assert windows.get_int_custom_property("num_skipped") == 1
    assert windows.get_int_custom_property("num_questions") == questions.get_int_custom_property(
        "num_examples")
    assert total_windows > 2 * windows.get_int_custom_property("num_questions")

    graph = _output(store, "SquadTransform", standard_artifacts.TransformGraph)
    if not num_buckets:
        assert stats["length_buckets"] is None and not tf.io.gfile.listdir(graph.uri)
        return
    table = length_buckets.read_padded_lengths(graph.uri, 96)
    # The train split's windows, and only they, were analysed (the analysis itself is
    # checked against numpy in test_length_buckets.py).
    assert table == length_buckets.analyze_lengths(train_lengths, num_buckets, 96,
                                                   str(tmp_path / "train_lengths_graph"))
    assert stats["length_buckets"]["padded_lengths"] == sorted(set(table))
    assert graph.get_string_custom_property("padded_lengths") == ",".join(
        map(str, sorted(set(table))))
    padded = [table[n] for n in train_lengths]
    assert all(p >= n and (p % 8 == 0 or p == 96)
               for p, n in zip(padded, train_lengths, strict=True))
    # Most windows are full (96 tokens): only a question's last window is shorter, so the
    # quantiles below 96 are those of the last windows (numpy's, up to tft's approximation).
    quantiles = np.quantile(train_lengths, np.arange(1, num_buckets) / num_buckets)
    expected = {min(96, -(-int(q) // 8) * 8) for q in quantiles} | {96}
    assert len(set(padded)) >= 3, collections.Counter(padded)
    assert all(min(abs(p - e) for e in expected) <= 8 for p in set(padded)), (padded, expected)


def _check_qa_statistics(qa: dict, split_questions, expected_windows, maker) -> None:
    """The split's QA statistics against the questions and the windows made here (passage
    and question lengths from the tokenizer over the whole text)."""
    windowed = [q for q in split_questions if q.id != NBSP_QUESTION["id"]]
    first = {w.example_id: w for w in expected_windows if w.window_index == 0}
    beyond = sum(not q.is_impossible and first[q.id].start_position == 0 for q in windowed)
    passages = [len(maker.tokenizer.encode(q.context)[0]) for q in windowed]
    queries = [len(maker.tokenizer.encode(q.question)[0]) for q in windowed]
    assert qa == {
        "questions": len(split_questions),
        "unanswerable_share": round(sum(q.is_impossible for q in windowed) / len(windowed), 4),
        "passage_tokens": {"mean": round(float(np.mean(passages)), 1), "max": max(passages)},
        "question_tokens": {"mean": round(float(np.mean(queries)), 1), "max": max(queries)},
        "windows_per_question": round(len(expected_windows) / len(windowed), 3),
        "beyond_first_window_share": round(beyond / len(windowed), 4),
    }
    # 96-token windows: many answers lie past the first one; SQuAD 2.0 has unanswerables.
    assert 0 < qa["beyond_first_window_share"] < 1 and qa["unanswerable_share"] > 0


def test_invalid_spec_fails_when_the_pipeline_is_built():
    examples = channel.Channel(type=standard_artifacts.Examples)
    with pytest.raises(ValueError, match="Unknown spec class"):
        SquadTransform(examples=examples, spec='{"class": "Nope", "params": {}}',
                       length_buckets=8)
    component = SquadTransform(examples=examples, spec=spec_lib.MobileBertQaSpec(),
                               length_buckets=8)
    uri, config = executor.read_windowing(component.exec_properties[executor.WINDOWING_KEY])
    assert uri == spec_lib.MobileBertQaSpec().uri
    assert config == WindowConfig(384, 64, 128, True)


def test_only_windowing_settings_are_the_cache_key():
    """TFX reuses an execution whose inputs and execution properties are the same."""
    examples = channel.Channel(type=standard_artifacts.Examples)
    spec = spec_lib.MobileBertQaSpec()

    def key(model_spec):
        return SquadTransform(examples=examples, spec=model_spec, length_buckets=8).exec_properties

    same = spec.replace(learning_rate=1e-3, distribution_strategy="mirrored",
                        default_batch_size=8, dropout_rate=0.2, model_dir="/tmp/elsewhere")
    assert key(same) == key(spec)
    assert key(spec_lib.BertQaSpec(uri=spec.uri, is_tf2=False)) == key(spec)
    for change in ({"seq_len": 256}, {"query_len": 32}, {"doc_stride": 64},
                   {"do_lower_case": False}, {"uri": "/models/other"}):
        assert key(spec.replace(**change)) != key(spec), change
    buckets = SquadTransform(examples=examples, spec=spec, length_buckets=16).exec_properties
    assert buckets != key(spec)  # the buckets are recomputed, with the windows


@pytest.mark.parametrize("num_buckets", [-1, 1])
def test_length_buckets_are_off_or_at_least_two(num_buckets):
    examples = channel.Channel(type=standard_artifacts.Examples)
    with pytest.raises(ValueError, match=f"length_buckets={num_buckets} must be 0 .off. or >= 2"):
        SquadTransform(examples=examples, spec=spec_lib.MobileBertQaSpec(),
                       length_buckets=num_buckets)


def test_a_whole_spec_is_read_too():
    """On Vertex AI the windowing property is the `spec` RuntimeParameter (a whole spec)."""
    spec = spec_lib.MobileBertQaSpec(seq_len=256, doc_stride=64)
    assert executor.read_windowing(spec.to_json()) == (spec.uri, WindowConfig(256, 64, 64))
    with pytest.raises(ValueError, match="must have exactly the keys"):
        executor.read_windowing('{"seq_len": 384}')
