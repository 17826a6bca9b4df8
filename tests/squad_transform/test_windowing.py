"""SquadTransform's TF-free Beam work: its tf.Example coders match TensorFlow's, and a worker
runs the DoFn without importing TensorFlow."""

import json
import pickle
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
from apache_beam.internal import pickler

from components.qa import squad, squad_json
from components.qa.windows import (
    AnswerNotFoundError,
    WindowConfig,
    WindowMaker,
    windows_to_tf_examples,
)
from components.squad_transform import executor, windowing

REPO = executor.__file__.rsplit("/components/", 1)[0]


@pytest.fixture(scope="module")
def questions(data_dir):
    examples, invalid = squad_json.read_squad_examples(
        str(data_dir / "squad" / "dev-v2.0-first5articles.official.json"))
    assert not invalid
    return examples[:300]  # answerable and unanswerable ones (plausible answers)


def _windows(maker, questions):
    windows = []
    for question in questions:
        try:
            windows.extend(maker.make_windows(question, training=True))
        except AnswerNotFoundError:
            pass
    return windows


def test_questions_decode_as_squad_from_tf_example(questions):
    assert any(q.is_impossible and q.plausible_answer_texts for q in questions)
    assert any(q.answer_texts for q in questions)
    records = [squad.to_tf_example(q).SerializeToString() for q in questions]
    assert windowing.questions_from_tf_examples(records) == [
        squad.from_tf_example(r) for r in records] == questions
    # A batch of unanswerable questions only: empty lists of both kinds everywhere.
    impossible = [r for r, q in zip(records, questions, strict=True) if q.is_impossible][:5]
    assert windowing.questions_from_tf_examples(impossible) == [
        squad.from_tf_example(r) for r in impossible]
    assert windowing.questions_from_tf_examples([]) == []


def expected_tf_example(window) -> tf.train.Example:
    """A window's tf.Example built with TensorFlow's proto classes (docs/architecture.md,
    "Windows"): the reference for the tfx_bsl encoding."""
    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    seq_len = len(window.input_ids)
    return tf.train.Example(features=tf.train.Features(feature={
        "example_id": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[window.example_id.encode("utf-8")])),
        "window_index": ints([window.window_index]),
        "input_ids": ints(window.input_ids),
        "input_mask": ints(window.input_mask),
        "segment_ids": ints(window.segment_ids),
        "start_positions": ints([window.start_position]),
        "end_positions": ints([window.end_position]),
        "token_to_orig_map": ints(
            [window.token_to_orig_map.get(i, -1) for i in range(seq_len)]),
        "token_is_max_context": ints(
            [int(window.token_is_max_context.get(i, False)) for i in range(seq_len)]),
    }))


@pytest.mark.parametrize("config", [WindowConfig(), WindowConfig(96, 24, 32)])
def test_windows_encode_as_tensorflow_protos(data_dir, questions, config):
    maker = WindowMaker(str(data_dir / "vocab" / "vocab.txt"), config)
    windows = _windows(maker, questions)
    assert len(windows) > len(questions) // 2
    encoded = windows_to_tf_examples(windows)
    assert len(encoded) == len(windows)
    for window, record in zip(windows, encoded, strict=True):
        assert tf.train.Example.FromString(record) == expected_tf_example(window)
    # The padding is there: -1 words and 0 flags outside the passage, 1 flags inside.
    features = tf.train.Example.FromString(encoded[-1]).features.feature
    orig = list(features["token_to_orig_map"].int64_list.value)
    max_context = list(features["token_is_max_context"].int64_list.value)
    assert len(orig) == len(max_context) == config.seq_len
    assert orig[0] == -1 and orig[-1] == -1 and max(orig) >= 0
    assert max_context[0] == 0 and max_context[-1] == 0 and 1 in max_context
    assert windows_to_tf_examples([]) == []


def test_a_worker_windows_without_tensorflow(data_dir, questions, tmp_path):
    """A Beam worker unpickles the DoFn and runs it: it must not import TensorFlow."""
    vocab = str(data_dir / "vocab" / "vocab.txt")
    config = WindowConfig(128, 32, 48)
    nbsp = squad.SquadExample(id="nbsp", title="t", context="x a\u00a0b y", question="Which?",
                              answer_texts=("a b",), answer_starts=(2,))
    batch = [*questions[:20], nbsp]
    records = [squad.to_tf_example(q).SerializeToString() for q in batch]
    (tmp_path / "dofn.pickle").write_bytes(
        pickler.dumps(windowing.MakeWindows(vocab, config, "train")))
    (tmp_path / "records.pickle").write_bytes(pickle.dumps(records))
    script = textwrap.dedent(f"""
        import pickle, sys
        from apache_beam.internal import pickler
        from apache_beam.pvalue import TaggedOutput
        dofn = pickler.loads(open({str(tmp_path / "dofn.pickle")!r}, "rb").read())
        records = pickle.load(open({str(tmp_path / "records.pickle")!r}, "rb"))
        dofn.setup()
        dofn.start_bundle()
        outputs = list(dofn.process(records[:7])) + list(dofn.process(records[7:]))
        dofn.teardown()
        windows = [o for o in outputs if not isinstance(o, TaggedOutput)]
        tagged = [o for o in outputs if isinstance(o, TaggedOutput)]
        skipped = [o.value for o in tagged if o.tag == {windowing.SKIPPED_TAG!r}]
        lengths = [n for o in tagged if o.tag == {windowing.LENGTHS_TAG!r}
                   for n in o.value.column(0).flatten().to_pylist()]
        pickle.dump((windows, skipped, lengths, sorted(sys.modules)),
                    open({str(tmp_path / "out.pickle")!r}, "wb"))
    """)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)
    windows, skipped, lengths, modules = pickle.loads((tmp_path / "out.pickle").read_bytes())
    assert not [m for m in modules if m == "tensorflow" or m.startswith(("tensorflow.", "tfx."))]
    assert [json.loads(line)["id"] for line in skipped] == ["nbsp"]
    expected = _windows(WindowMaker(vocab, config), batch)
    assert len(windows) == len(expected) > len(batch)
    assert lengths == [sum(w.input_mask) for w in expected]  # what the length buckets analyse
    assert len(set(lengths)) > 5
    for record, window in zip(windows, expected, strict=True):
        assert tf.train.Example.FromString(record) == expected_tf_example(window)

