"""The synthetic SQuAD data set: determinism, exact answers, multi-window passages."""

import argparse
import json
import re

import pytest
from tokenizers import BertWordPieceTokenizer

from components.qa import synth
from pipelines.cli import model as model_cli

FACT = re.compile(r"([A-Z]\w+) has the (\w+) (\w+)\.")
QUESTION = re.compile(r"What is the (\w+) of (\w+)\?")
# The demo's window: seq_len 128, query_len 32 -> at most 93 passage tokens a window.
PASSAGE_TOKENS_PER_WINDOW = 128 - 32 - 3


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _facts(context):
    """(attribute, entity, value) of every fact stated in `context`."""
    return [(a, e.lower(), v) for e, a, v in FACT.findall(context)]


def _paragraphs(data):
    return [p for article in data["data"] for p in article["paragraphs"]]


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_v1")
    return synth.make_synthetic_squad(str(out), n=300, seed=7, eval_fraction=0.2)


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_v2")
    return synth.make_synthetic_squad(str(out), n=300, seed=7, unanswerable_fraction=0.2)


def test_layout_and_counts(v1):
    assert v1["train"].endswith("train/train.json")
    assert v1["eval"].endswith("eval/eval.json")
    train, eval_ = _load(v1["train"]), _load(v1["eval"])
    assert train["version"] == eval_["version"] == "1.1"
    counts = {
        split: sum(len(p["qas"]) for p in _paragraphs(data))
        for split, data in (("train", train), ("eval", eval_))
    }
    assert counts["train"] + counts["eval"] == 300
    assert len(_paragraphs(eval_)) == round(len(_paragraphs(train) + _paragraphs(eval_)) * 0.2)
    ids = [qa["id"] for data in (train, eval_) for p in _paragraphs(data) for qa in p["qas"]]
    assert len(ids) == len(set(ids))


def test_same_seed_same_bytes_other_seed_differs(tmp_path, v1):
    again = synth.make_synthetic_squad(str(tmp_path / "a"), n=300, seed=7, eval_fraction=0.2)
    other = synth.make_synthetic_squad(str(tmp_path / "b"), n=300, seed=8, eval_fraction=0.2)
    for split in ("train", "eval"):
        with open(v1[split], "rb") as f, open(again[split], "rb") as g:
            assert f.read() == g.read()
        with open(v1[split], "rb") as f, open(other[split], "rb") as g:
            assert f.read() != g.read()


@pytest.mark.parametrize("split", ["train", "eval"])
def test_every_answer_is_the_stated_value(v1, split):
    for paragraph in _paragraphs(_load(v1[split])):
        context = paragraph["context"]
        facts = {(a, e): v for a, e, v in _facts(context)}
        # Each attribute is stated once, so the question has exactly one answer.
        assert len({a for a, _ in facts}) == len(facts) == len(_facts(context))
        for qa in paragraph["qas"]:
            attribute, entity = QUESTION.fullmatch(qa["question"]).groups()
            [answer] = qa["answers"]
            start, text = answer["answer_start"], answer["text"]
            assert context[start:start + len(text)] == text
            assert text == facts[(attribute, entity)]
            assert context[:start].endswith(f"{entity.capitalize()} has the {attribute} ")


def test_contexts_of_files_need_several_windows(v1):
    tokenizer = BertWordPieceTokenizer(synth.BERT_VOCAB_PATH, lowercase=True)
    for path in v1.values():
        for paragraph in _paragraphs(_load(path)):
            encoding = tokenizer.encode(paragraph["context"], add_special_tokens=False)
            assert PASSAGE_TOKENS_PER_WINDOW < len(encoding.ids) <= 300
            # Every word is one WordPiece: no [UNK], no "##" pieces.
            assert not any(t == "[UNK]" or t.startswith("##") for t in encoding.tokens)


def test_eval_passages_are_held_out(v1):
    def entities(path):
        return {e for p in _paragraphs(_load(path)) for _, e, _ in _facts(p["context"])}

    assert entities(v1["train"]).isdisjoint(entities(v1["eval"]))


def test_values_come_from_closed_sets(v1):
    for paragraph in _paragraphs(_load(v1["train"])):
        for attribute, _, value in _facts(paragraph["context"]):
            assert value in synth.ATTRIBUTES[attribute]


def test_unanswerable_questions_only_behind_the_option(v1, v2):
    assert not any("is_impossible" in qa for p in _paragraphs(_load(v1["train"]))
                   for qa in p["qas"])
    data = _load(v2["train"])
    assert data["version"] == "v2.0"
    qas = [(p["context"], qa) for p in _paragraphs(data) for qa in p["qas"]]
    impossible = [(c, qa) for c, qa in qas if qa["is_impossible"]]
    assert 0.1 < len(impossible) / len(qas) < 0.3
    for context, qa in impossible:
        attribute, entity = QUESTION.fullmatch(qa["question"]).groups()
        assert qa["answers"] == []
        assert f" has the {attribute} " not in context
        assert f"{entity.capitalize()} has the " in context
    assert all(len(qa["answers"]) == 1 for _, qa in qas if not qa["is_impossible"])


def test_existing_output_is_not_overwritten(v1):
    before = open(v1["train"], "rb").read()
    out_dir = v1["train"].rsplit("/train/", 1)[0]
    with pytest.raises(FileExistsError, match="train.json' exists"):
        synth.make_synthetic_squad(out_dir, n=10, seed=1)
    assert open(v1["train"], "rb").read() == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 1}, "n=1 must be >= 2"),
        ({"eval_fraction": 0.0}, r"eval_fraction=0.0 must be in \(0, 1\)"),
        ({"unanswerable_fraction": 1.0}, r"unanswerable_fraction=1.0 must be in \[0, 1\)"),
        ({"questions_per_passage": 0}, "questions_per_passage=0 must be >= 1"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        synth.make_synthetic_squad(str(tmp_path), **kwargs)


def test_cli_synth(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    model_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synth", "--out", str(tmp_path), "--n", "40", "--seed", "3"])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert f"Wrote the train split to {tmp_path}/train/train.json" in printed
    assert f"Wrote the eval split to {tmp_path}/eval/eval.json" in printed
    total = sum(len(p["qas"]) for split in ("train", "eval")
                for p in _paragraphs(_load(tmp_path / split / f"{split}.json")))
    assert total == 40
