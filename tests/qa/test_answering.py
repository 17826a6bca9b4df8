"""Answering with a model over sliding windows, and the `mbqa evaluate|predict|answer` commands.

The models are real: a SavedModel with the Trainer's serving contract whose logits are
known (it scores the word "houston") and its .tflite export with Task Library metadata.
A stand-in that returns the gold spans' logits checks the whole chain (windows → logits →
answers → official metrics) on real SQuAD 2.0 data.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from components.qa import answering, inference, metrics, squad_json
from components.qa import spec as spec_lib
from components.qa.squad import SquadExample
from components.qa.windows import AnswerNotFoundError, WindowConfig, WindowMaker
from pipelines import cli
from tests.evaluator import evaluator_fixtures

SEQ_LEN = 32
SPEC = spec_lib.MobileBertQaSpec(uri="unused", seq_len=SEQ_LEN, query_len=8, doc_stride=8)
CONFIG = WindowConfig.from_spec(SPEC)
FILLER = "the choir sang in a church near the river every sunday morning"
# "Houston" only in the last third of a passage much longer than one window.
LONG_CONTEXT = f"{FILLER} {FILLER} {FILLER}. She was born in Houston, Texas, in 1981."


@pytest.fixture(scope="module")
def vocab(data_dir) -> str:
    return str(data_dir / "vocab" / "vocab.txt")


def save_keyword_model(path, vocab_path: str, keyword: str = "houston") -> str:
    """The keyword model (known logits) at this module's SEQ_LEN."""
    return evaluator_fixtures.save_keyword_model(path, vocab_path, SEQ_LEN, keyword)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, vocab) -> str:
    return save_keyword_model(tmp_path_factory.mktemp("model") / "saved_model", vocab)


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory, saved_model, vocab) -> str:
    from components.qa import tflite

    out = tmp_path_factory.mktemp("tflite") / "model.tflite"
    return tflite.export_tflite(saved_model, str(out), SPEC, vocab, quantization="float32")


def _examples() -> list[SquadExample]:
    return [
        SquadExample(id="long", title="t", context=LONG_CONTEXT, question="Where was she born?",
                     answer_texts=("Houston",), answer_starts=(LONG_CONTEXT.index("Houston"),)),
        SquadExample(id="short", title="t", context="Houston is a city.",
                     question="Which city?", answer_texts=("Houston",), answer_starts=(0,)),
        SquadExample(id="none", title="t", context="Dallas is a city in Texas.",
                     question="Is Houston a city?", is_impossible=True),
    ]


def test_long_passages_are_read_whole(saved_model, vocab):
    maker = WindowMaker(vocab, CONFIG)
    windows = maker.make_windows(_examples()[0], training=False)
    assert len(windows) > 3
    assert "houston" not in windows[0].tokens  # a single 32-token window would miss it
    predictor = inference.load_predictor(saved_model)
    answers = answering.answer_questions(predictor, _examples(), maker,
                                         answering.AnswerSettings(batch_size=3))
    assert answers.predictions["long"] == "Houston"
    assert answers.predictions["short"] == "Houston"
    # The question's "Houston" scores too, but spans in the question are never answers.
    assert answers.predictions["none"] != "Houston"
    top = answers.nbest["long"][0]
    assert (top["start_logit"], top["end_logit"]) == pytest.approx((5.1, 5.0))
    assert answers.null_odds == {}


def test_version_2_null_odds_and_threshold(saved_model, vocab):
    maker = WindowMaker(vocab, CONFIG)
    predictor = inference.load_predictor(saved_model)
    answers = answering.answer_questions(predictor, _examples(), maker, answering.AnswerSettings(
        version_2_with_negative=True, null_score_diff_threshold=-1.0))
    # Null score 0 ([CLS] scores 0); best span: "houston" 10.1, else a passage token 0.1.
    assert answers.null_odds == pytest.approx({"long": -10.1, "short": -10.1, "none": -0.1})
    assert answers.predictions == {"long": "Houston", "short": "Houston", "none": ""}
    result = metrics.evaluate_examples(_examples(), answers.predictions, answers.null_odds)
    assert (result["exact"], result["HasAns_total"], result["NoAns_total"]) == (100.0, 2, 1)


def test_tflite_and_saved_model_give_the_same_answers(saved_model, tflite_model, vocab):
    maker = WindowMaker(vocab, CONFIG)
    version_2 = answering.AnswerSettings(version_2_with_negative=True)
    from_saved = answering.answer_questions(inference.load_predictor(saved_model), _examples(),
                                            maker, version_2)
    from_tflite = answering.answer_questions(inference.load_predictor(tflite_model),
                                             _examples(), maker, version_2)
    assert from_tflite.predictions == from_saved.predictions
    assert from_tflite.null_odds == pytest.approx(from_saved.null_odds)


class GoldSpanModel:
    """Returns logits that pick each window's gold span (training-mode positions), or the
    null position where the window holds no answer: a model that is always right."""

    def __init__(self, maker: WindowMaker, examples: list[SquadExample]):
        self.not_found = 0
        self._spans = collections.defaultdict(collections.deque)
        for example in examples:
            try:
                windows = maker.make_windows(example, training=True)
            except AnswerNotFoundError:
                self.not_found += 1
                windows = maker.make_windows(example, training=False)
            for w in windows:
                key = np.asarray(w.input_ids, np.int32).tobytes()
                self._spans[key].append((w.start_position, w.end_position))

    def predict(self, input_ids, input_mask, segment_ids):
        start = np.zeros(input_ids.shape, np.float32)
        end = np.zeros(input_ids.shape, np.float32)
        for row, ids in enumerate(np.asarray(input_ids, np.int32)):
            first, last = self._spans[ids.tobytes()].popleft()
            start[row, first] = end[row, last] = 10.0
        return start, end


def test_gold_spans_score_100_on_real_squad_v2(data_dir, vocab):
    examples, invalid = squad_json.read_squad_examples(
        str(data_dir / "squad" / "dev-v2.0-first5articles.official.json")
    )
    assert len(examples) == 1407 and not invalid
    maker = WindowMaker(vocab, WindowConfig(384, 64, 128))
    model = GoldSpanModel(maker, examples)
    assert model.not_found == 0
    answers = answering.answer_questions(
        model, examples, maker, answering.AnswerSettings(version_2_with_negative=True))
    result = metrics.evaluate_examples(examples, answers.predictions, answers.null_odds)
    assert (result["exact"], result["f1"], result["total"]) == (100.0, 100.0, 1407)
    assert all(odds > 0 for qid, odds in answers.null_odds.items()
               if not next(e for e in examples if e.id == qid).answer_texts)


# ------------------------------------------------------------------ the commands


def _mbqa(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _write_squad(path, examples: list[SquadExample], version: str) -> str:
    qas = [{
        "id": e.id, "question": e.question, "is_impossible": e.is_impossible,
        "answers": [{"text": t, "answer_start": s}
                    for t, s in zip(e.answer_texts, e.answer_starts, strict=True)],
    } for e in examples]
    if version == "1.1":
        for qa in qas:
            del qa["is_impossible"]
    data = [{"title": "t", "paragraphs": [{"context": e.context, "qas": [qa]}]}
            for e, qa in zip(examples, qas, strict=True)]
    path.write_text(json.dumps({"version": version, "data": data}), encoding="utf-8")
    return str(path)


def test_predict_then_evaluate_v2_with_tflite(capsys, tmp_path, tflite_model):
    squad = _write_squad(tmp_path / "dev.json", _examples(), "v2.0")
    out = tmp_path / "out" / "predictions.json"
    code, stdout, _ = _mbqa(capsys, "predict", "--model", tflite_model, "--squad", squad,
                            "--out", str(out), "--version-2",
                            "--null-score-diff-threshold", "-1", "--query-len", "8",
                            "--doc-stride", "8")
    assert code == 0
    assert str(out) in stdout and "predictions.null_odds.json" in stdout
    predictions = json.loads(out.read_text("utf-8"))
    assert predictions == {"long": "Houston", "short": "Houston", "none": ""}
    nbest = json.loads((out.parent / "predictions.nbest.json").read_text("utf-8"))
    assert nbest["long"][0]["text"] == "Houston"
    null_odds = out.parent / "predictions.null_odds.json"
    assert set(json.loads(null_odds.read_text("utf-8"))) == set(predictions)

    code, stdout, _ = _mbqa(capsys, "evaluate", "--squad", squad, "--predictions", str(out),
                            "--na-probs", str(null_odds))
    assert code == 0
    result = json.loads(stdout)
    assert result["exact"] == 100.0 and result["NoAns_total"] == 1
    assert "best_f1_thresh" in result

    # Outputs are never overwritten unless asked.
    code, _, stderr = _mbqa(capsys, "predict", "--model", tflite_model, "--squad", squad,
                            "--out", str(out), "--query-len", "8", "--doc-stride", "8")
    assert code == 2 and "--overwrite" in stderr and str(out) in stderr


def test_predict_takes_its_settings_from_the_tflite_metadata(capsys, tmp_path, saved_model,
                                                             vocab):
    """The evaluator writes query_len, doc_stride, the SQuAD version and threshold into the
    file's metadata: `mbqa predict` needs none of them; a flag still overrides."""
    from components.qa import contracts, inference, tflite

    serving_config = contracts.ServingConfig(
        seq_len=SPEC.seq_len, query_len=8, doc_stride=8, do_lower_case=True,
        version_2_with_negative=True, null_score_diff_threshold=-1.0)
    model = tflite.export_tflite(saved_model, str(tmp_path / "model.tflite"), SPEC, vocab,
                                 "float32", serving_config=serving_config)
    assert inference.load_predictor(model).serving_config == serving_config
    squad = _write_squad(tmp_path / "dev.json", _examples(), "v2.0")
    out = tmp_path / "predictions.json"
    code, stdout, _ = _mbqa(capsys, "predict", "--model", model, "--squad", squad,
                            "--out", str(out))
    assert code == 0 and "predictions.null_odds.json" in stdout
    assert json.loads(out.read_text()) == {"long": "Houston", "short": "Houston", "none": ""}
    code, _, _ = _mbqa(capsys, "predict", "--model", model, "--squad", squad, "--out",
                       str(out), "--null-score-diff-threshold", "100", "--overwrite")
    assert code == 0 and json.loads(out.read_text())["none"] != ""


def test_predict_v1_with_saved_model_and_evaluate(capsys, tmp_path, saved_model):
    examples = _examples()[:2]
    squad = _write_squad(tmp_path / "dev.json", examples, "1.1")
    out = tmp_path / "predictions.json"
    (tmp_path / "predictions.nbest.json").write_text("{}")
    code, stdout, _ = _mbqa(capsys, "predict", "--model", saved_model, "--squad", squad,
                            "--out", str(out), "--query-len", "8", "--doc-stride", "8",
                            "--overwrite")
    assert code == 0 and not (tmp_path / "predictions.null_odds.json").exists()
    assert json.loads(out.read_text()) == {"long": "Houston", "short": "Houston"}
    code, stdout, _ = _mbqa(capsys, "evaluate", "--squad", squad, "--predictions", str(out))
    assert code == 0 and json.loads(stdout) == {"exact_match": 100.0, "f1": 100.0}


def test_answer_prints_the_answer(capsys, tflite_model):
    for threads in ([], ["--threads", "1"], ["--threads", "2"]):
        code, stdout, _ = _mbqa(capsys, "answer", "--model", tflite_model, "--context",
                                LONG_CONTEXT, "--question", "Where was she born?",
                                "--query-len", "8", "--doc-stride", "8", *threads)
        assert code == 0 and stdout == "Houston\n"


def test_model_and_window_settings_are_checked(capsys, tmp_path, saved_model):
    code, _, stderr = _mbqa(capsys, "answer", "--model", saved_model, "--context", "x",
                            "--question", "y", "--seq-len", "64")
    assert code == 2 and "--seq-len=64" in stderr and "takes 32" in stderr
    code, _, stderr = _mbqa(capsys, "answer", "--model", saved_model, "--context", "x",
                            "--question", "y")  # query_len 64 does not fit 32 tokens
    assert code == 2 and "query_len" in stderr
    code, _, stderr = _mbqa(capsys, "answer", "--model", str(tmp_path / "missing.tflite"),
                            "--context", "x", "--question", "y")
    assert code == 2 and "missing.tflite" in stderr
    code, _, stderr = _mbqa(capsys, "answer", "--model", saved_model, "--context", "x",
                            "--question", "y", "--threads", "0")
    assert code == 2 and stderr.strip() == "mbqa answer: error: --threads=0 must be >= 1"


def test_evaluate_detects_the_version_and_names_bad_input(capsys, tmp_path):
    examples = _examples()
    v2 = _write_squad(tmp_path / "v2.json", examples, "v2.0")
    v1 = _write_squad(tmp_path / "v1.json", examples[:2], "1.1")
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"long": "houston", "short": "Dallas", "none": ""}))
    code, stdout, _ = _mbqa(capsys, "evaluate", "--squad", v2, "--predictions", str(preds))
    assert code == 0 and json.loads(stdout)["exact"] == pytest.approx(200 / 3)
    code, stdout, _ = _mbqa(capsys, "evaluate", "--squad", v1, "--predictions", str(preds))
    assert code == 0 and json.loads(stdout) == {"exact_match": 50.0, "f1": 50.0}
    na_probs = tmp_path / "na_probs.json"
    na_probs.write_text(json.dumps({"long": 0.1, "short": 0.9}))
    code, _, stderr = _mbqa(capsys, "evaluate", "--squad", v1, "--predictions", str(preds),
                            "--na-probs", str(na_probs))
    assert code == 2 and "SQuAD 2.0 files only" in stderr
    preds.write_text(json.dumps({"long": ["houston"]}))
    code, _, stderr = _mbqa(capsys, "evaluate", "--squad", v1, "--predictions", str(preds))
    assert code == 2 and str(preds) in stderr and "question long" in stderr
    preds.write_text(json.dumps({"long": "houston"}))
    code, _, stderr = _mbqa(capsys, "evaluate", "--squad", v2, "--predictions", str(preds))
    assert code == 2 and "'short'" in stderr and "no prediction" in stderr
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"version": "1.1", "data": [{"title": "t"}]}))
    code, _, stderr = _mbqa(capsys, "evaluate", "--squad", str(broken), "--predictions",
                            str(preds))
    assert code == 2 and str(broken) in stderr and "'paragraphs'" in stderr


# ------------------------------------------------------------------ questions without answers


def _unlabelled_squad(path) -> str:
    """The first two questions without answers: no `answers` field, then an empty list."""
    long, short = _examples()[:2]
    qas = [{"id": long.id, "question": long.question},
           {"id": short.id, "question": short.question, "answers": []}]
    data = [{"title": "t", "paragraphs": [{"context": e.context, "qas": [qa]}]}
            for e, qa in zip((long, short), qas, strict=True)]
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return str(path)


def _json_lines(path, lines: list[dict | str]) -> str:
    """A .jsonl file: objects as JSON, strings as given."""
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines), encoding="utf-8")
    return str(path)


LONG_RECORD = {"id": "long", "question": "Where was she born?", "context": LONG_CONTEXT,
               "title": "t"}
SHORT_RECORD = {"id": "short", "question": "Which city?", "context": "Houston is a city."}


def test_predict_answers_unlabelled_files_named_after_out_and_leaves_no_temp_dir(
    capsys, tmp_path, monkeypatch, tflite_model
):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    sources = {"dev_preds": _unlabelled_squad(tmp_path / "dev.json"),
               "jsonl_preds": _json_lines(tmp_path / "dev.jsonl", [LONG_RECORD, SHORT_RECORD])}
    out_dir = tmp_path / "out"
    for name, source in sources.items():  # two predictions into one folder
        code, stdout, stderr = _mbqa(capsys, "predict", "--model", tflite_model, "--squad",
                                     source, "--out", str(out_dir / f"{name}.json"),
                                     "--query-len", "8", "--doc-stride", "8")
        assert code == 0, stderr
        assert f"Answered 2 questions of {source}\n" in stdout
        assert json.loads((out_dir / f"{name}.json").read_text()) == {
            "long": "Houston", "short": "Houston"}
        nbest = json.loads((out_dir / f"{name}.nbest.json").read_text())
        assert nbest["long"][0]["text"] == "Houston"
    assert sorted(os.listdir(out_dir)) == ["dev_preds.json", "dev_preds.nbest.json",
                                           "jsonl_preds.json", "jsonl_preds.nbest.json"]
    code, stdout, _ = _mbqa(capsys, "answer", "--model", tflite_model, "--context",
                            "Houston is a city.", "--question", "Which city?",
                            "--query-len", "8", "--doc-stride", "8")
    assert code == 0 and stdout == "Houston\n"
    assert os.listdir(temp) == []  # the vocab extracted from the .tflite file is removed


def test_predict_skips_invalid_questions_only_when_asked(capsys, tmp_path, saved_model):
    source = _json_lines(tmp_path / "questions.jsonl", [
        LONG_RECORD, {"id": "no-context", "question": "Where?"}, '{"id": "cut", ', "",
        SHORT_RECORD,
    ])
    out = tmp_path / "preds.json"
    args = ["predict", "--model", saved_model, "--squad", source, "--out", str(out),
            "--query-len", "8", "--doc-stride", "8"]
    code, _, stderr = _mbqa(capsys, *args)
    assert code == 2 and not out.exists()
    assert stderr.strip() == (f"mbqa predict: error: {source}: line 2 (question no-context): "
                              "field 'context' is missing (pass --skip-invalid to skip such "
                              "questions)")
    code, stdout, stderr = _mbqa(capsys, *args, "--skip-invalid")
    assert code == 0, stderr
    assert stderr.splitlines() == [
        f"mbqa predict: skipped: {source}: line 2 (question no-context): field 'context' is "
        "missing",
        f"mbqa predict: skipped: {source}: line 3: is not valid JSON: Expecting property name "
        "enclosed in double quotes at column 15",
    ]
    assert f"Answered 2 questions of {source} (2 invalid skipped)" in stdout
    assert json.loads(out.read_text()) == {"long": "Houston", "short": "Houston"}
    # A SQuAD file's invalid question is named by its id.
    squad = tmp_path / "dev.json"
    squad.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [
        {"context": "Houston is a city.", "qas": [{"id": "q1", "question": ""}]}]}]}))
    code, _, stderr = _mbqa(capsys, "predict", "--model", saved_model, "--squad", str(squad),
                            "--out", str(out))
    assert code == 2
    assert f"{squad}: question q1: field 'question' is empty (pass --skip-invalid" in stderr


def test_evaluate_does_not_import_tensorflow(tmp_path):
    squad = tmp_path / "dev.json.gz"
    squad.write_bytes(gzip.compress(
        pathlib.Path(_write_squad(tmp_path / "dev.json", _examples()[:2], "1.1")).read_bytes()))
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps({"long": "Houston", "short": "Dallas"}))
    argv = ["evaluate", "--squad", str(squad), "--predictions", str(predictions)]
    script = (f"import sys\nfrom pipelines import cli\ncode = cli.main({argv!r})\n"
              "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
              "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=pathlib.Path(__file__).parents[2], timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"exact_match": 50.0, "f1": 50.0}
