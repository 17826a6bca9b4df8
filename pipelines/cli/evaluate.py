"""`mbqa evaluate` (official SQuAD EM/F1), `mbqa predict` and `mbqa answer` (run a model).

`mbqa evaluate` only computes metrics: it does not import TensorFlow (except to read gs://
and other remote paths).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `evaluate`, `predict` and `answer`."""
    evaluate = subparsers.add_parser(
        "evaluate",
        help="official SQuAD v1.1/v2.0 exact match and F1 of a predictions file",
        description="Prints the official SQuAD metrics as JSON (the official scripts' keys). "
        "The file is evaluated as SQuAD 2.0 when its 'version' starts with 'v2' or any "
        "question has an 'is_impossible' field, else as SQuAD 1.1.",
    )
    evaluate.add_argument("--squad", required=True, help="SQuAD JSON file (.json or .json.gz)")
    evaluate.add_argument(
        "--predictions", required=True, help="JSON object: question id -> answer text"
    )
    evaluate.add_argument(
        "--na-probs", help="SQuAD 2.0: JSON object: question id -> no-answer probability/odds"
    )
    evaluate.add_argument(
        "--na-prob-thresh", type=float, default=1.0,
        help="SQuAD 2.0: predict no answer above this --na-probs value (default 1.0)",
    )
    evaluate.set_defaults(handler=evaluate_command)

    predict = subparsers.add_parser(
        "predict",
        help="answer every question of a SQuAD or JSON-lines file with a model (sliding "
        "windows)",
        description="Runs a .tflite file or a SavedModel over every window of every passage "
        "(long passages are read whole) and writes --out (question id -> answer), with "
        "<stem>.nbest.json and (SQuAD 2.0) <stem>.null_odds.json beside it "
        "(--out dev_preds.json: dev_preds.nbest.json, dev_preds.null_odds.json). Questions "
        "need no answers.",
    )
    _add_model_arguments(predict)
    predict.add_argument(
        "--squad", required=True,
        help="SQuAD JSON (.json or .json.gz), or JSON lines (.jsonl or .jsonl.gz) of "
        '{"id", "question", "context"} objects (optional "title")',
    )
    predict.add_argument("--out", required=True, help="the predictions JSON file to write")
    predict.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )
    predict.add_argument(
        "--skip-invalid", action="store_true",
        help="skip invalid questions (listed on stderr) instead of stopping at the first",
    )
    predict.set_defaults(handler=predict_command)

    answer = subparsers.add_parser(
        "answer",
        help="answer one question about one passage with a model",
        description="Prints the answer taken from the passage (an empty line when "
        "--version-2 finds no answer); the best candidate's probability is logged.",
    )
    _add_model_arguments(answer)
    answer.add_argument("--context", required=True, help="the passage")
    answer.add_argument("--question", required=True, help="the question")
    answer.set_defaults(handler=answer_command)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a .tflite file or a SavedModel dir")
    parser.add_argument(
        "--vocab",
        help="WordPiece vocab (default: the vocab.txt packed in the .tflite metadata, or the "
        "SavedModel's assets/vocab.txt)",
    )
    parser.add_argument(
        "--seq-len", type=int, help="window length (default: the model's input length)"
    )
    parser.add_argument(
        "--query-len", type=int,
        help="question tokens (default: the model's, from its metadata, else 64)",
    )
    parser.add_argument(
        "--doc-stride", type=int,
        help="window stride in tokens (default: the model's, from its metadata, else 128)",
    )
    parser.add_argument(
        "--no-lower-case", dest="do_lower_case", action="store_false", default=None,
        help="the vocab is cased (default: the model's, from its metadata, else uncased)",
    )
    parser.add_argument(
        "--version-2", dest="version_2_with_negative", action="store_true", default=None,
        help="SQuAD 2.0: the answer may be empty (default: as the model was evaluated, from "
        "its metadata)",
    )
    parser.add_argument(
        "--null-score-diff-threshold", type=float,
        help="SQuAD 2.0: answer '' when the null score beats the best span by more "
        "(default: the threshold the model was gated with, from its metadata, else 0)",
    )
    parser.add_argument(
        "--threads", type=int,
        help="threads of the TFLite interpreter (default: all CPUs of this machine); a "
        "SavedModel runs on TensorFlow's",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="windows per batch (default 8)")
    parser.add_argument("--n-best-size", type=int, default=20, help="candidates kept (default 20)")
    parser.add_argument(
        "--max-answer-length", type=int, default=30, help="longest answer in tokens (default 30)"
    )


def evaluate_command(args: argparse.Namespace) -> int:
    """Handler of `mbqa evaluate` (no TensorFlow: see the module docstring)."""
    from components.qa import metrics, squad_json

    try:
        squad, _ = squad_json.read_json(args.squad)
        if not isinstance(squad, dict) or not isinstance(squad.get("data"), list):
            raise ValueError(f"{args.squad}: is not a SQuAD file (no 'data' list)")
        predictions = _read_id_map(args.predictions, str)
        na_probs = _read_id_map(args.na_probs, (int, float)) if args.na_probs else None
        if is_squad_v2(squad):
            result = metrics.evaluate_v2(
                squad["data"], predictions, na_probs, na_prob_thresh=args.na_prob_thresh
            )
        elif na_probs is not None:
            raise ValueError(f"{args.squad}: --na-probs applies to SQuAD 2.0 files only")
        else:
            result = metrics.evaluate_v1(squad["data"], predictions)
    except KeyError as error:
        print(f"mbqa evaluate: error: {args.squad}: not SQuAD's layout: missing field {error}",
              file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"mbqa evaluate: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


def is_squad_v2(squad: dict) -> bool:
    """SQuAD 2.0 if `version` starts with 'v2' or any question has `is_impossible`."""
    if str(squad.get("version", "")).startswith("v2"):
        return True
    return any(
        "is_impossible" in qa
        for article in squad["data"]
        for paragraph in article.get("paragraphs", ())
        for qa in paragraph.get("qas", ())
    )


def _read_id_map(path: str, value_type) -> dict:
    """A JSON object of question id -> value, checked; errors name the file and the id."""
    from components.qa import squad_json

    data, bad_byte = squad_json.read_json(path)
    if bad_byte:
        raise ValueError(f"{path}: is not valid UTF-8: {bad_byte}")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must hold a JSON object (question id -> value)")
    for qid, value in data.items():
        if isinstance(value, bool) or not isinstance(value, value_type):
            raise ValueError(f"{path}: question {qid}: value {value!r} has the wrong type")
    return data


def _window_maker(args: argparse.Namespace, predictor):
    """The window maker that fits `predictor`. The unset flags (each named as a field of
    `contracts.ServingConfig`) take the model's serving config (a .tflite file's metadata),
    else the default spec's windows, SQuAD 1.1 and a null threshold of 0."""
    import dataclasses

    from components.qa import contracts, spec, windows

    default_spec = spec.MobileBertQaSpec()
    serving = predictor.serving_config or contracts.ServingConfig.from_spec(
        default_spec, version_2_with_negative=False, null_score_diff_threshold=0.0)
    for field in dataclasses.fields(serving):
        if field.name != "seq_len" and getattr(args, field.name) is None:
            setattr(args, field.name, getattr(serving, field.name))
    seq_len = args.seq_len or predictor.seq_len or default_spec.seq_len
    if predictor.seq_len is not None and seq_len != predictor.seq_len:
        raise ValueError(
            f"--seq-len={seq_len} but the model {args.model} takes {predictor.seq_len} tokens"
        )
    vocab = args.vocab or predictor.vocab_path
    if vocab is None:
        raise ValueError(f"The model {args.model} carries no vocab.txt: pass --vocab")
    try:
        qa_spec = spec.MobileBertQaSpec(
            seq_len=seq_len, query_len=args.query_len, doc_stride=args.doc_stride,
            do_lower_case=args.do_lower_case,
        )
    except ValueError as error:
        raise ValueError(f"--seq-len/--query-len/--doc-stride: {error}") from error
    maker = windows.WindowMaker(vocab, windows.WindowConfig.from_spec(qa_spec))
    logging.info("Model %s, vocab %s, windows %s, SQuAD %s (null threshold %s)", args.model,
                 vocab, maker.config, "2.0" if args.version_2_with_negative else "1.1",
                 args.null_score_diff_threshold)
    return maker


def _load_predictor(args: argparse.Namespace):
    """The `--model`, its TFLite interpreter on `--threads` threads (default: all CPUs)."""
    from components.qa import inference

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads={args.threads} must be >= 1")
    return inference.load_predictor(args.model, args.threads or inference.available_cpus())


def _answer(args: argparse.Namespace, predictor, maker, examples):
    from components.qa import answering

    return answering.answer_questions(predictor, examples, maker, answering.AnswerSettings(
        batch_size=args.batch_size, version_2_with_negative=args.version_2_with_negative,
        null_score_diff_threshold=args.null_score_diff_threshold,
        n_best_size=args.n_best_size, max_answer_length=args.max_answer_length,
    ))


def predict_command(args: argparse.Namespace) -> int:
    """Handler of `mbqa predict`."""
    import tensorflow as tf

    from components.qa import postprocess, squad_json

    try:
        examples, invalid = squad_json.read_squad_examples(
            args.squad, skip_invalid=args.skip_invalid, labelled=False
        )
        for record in invalid:
            print(f"mbqa predict: skipped: {record.message()}", file=sys.stderr)
        if not examples:
            raise ValueError(f"{args.squad}: has no valid questions")
        with _load_predictor(args) as predictor:
            maker = _window_maker(args, predictor)
            if not args.version_2_with_negative and any(e.is_impossible for e in examples):
                logging.warning("%s has unanswerable questions: consider --version-2",
                                args.squad)
            paths = postprocess.answer_file_paths(args.out, args.version_2_with_negative,
                                                  from_stem=True)
            existing = [p for p in paths.values() if tf.io.gfile.exists(p)]
            if existing and not args.overwrite:
                raise FileExistsError(
                    f"{existing} already exist; pass --overwrite to replace them"
                )
            answers = _answer(args, predictor, maker, examples)
    except squad_json.InvalidQuestionError as error:
        print(f"mbqa predict: error: {error} (pass --skip-invalid to skip such questions)",
              file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"mbqa predict: error: {error}", file=sys.stderr)
        return 2
    skipped = f" ({len(invalid)} invalid skipped)" if args.skip_invalid else ""
    print(f"Answered {len(examples)} questions of {args.squad}{skipped}")
    written = postprocess.write_answers(answers, args.out, args.version_2_with_negative,
                                        from_stem=True)
    for field, path in written.items():
        print(f"Wrote {field} for {len(getattr(answers, field))} questions to {path}")
    return 0


def answer_command(args: argparse.Namespace) -> int:
    """Handler of `mbqa answer`."""
    from components.qa.squad import SquadExample

    example = SquadExample(id="question", title="", context=args.context,
                           question=args.question)
    try:
        if not args.context.strip() or not args.question.strip():
            raise ValueError("--context and --question must not be empty")
        with _load_predictor(args) as predictor:
            answers = _answer(args, predictor, _window_maker(args, predictor), [example])
    except (ValueError, FileNotFoundError) as error:
        print(f"mbqa answer: error: {error}", file=sys.stderr)
        return 2
    best = answers.nbest[example.id][0]
    logging.info("Best candidate %r (probability %.3f)", best["text"], best["probability"])
    if example.id in answers.null_odds:
        logging.info("Null odds %.3f", answers.null_odds[example.id])
    print(answers.predictions[example.id])
    return 0
