"""`mbqa windows`: a SQuAD file's sliding windows as JSON lines (what SquadTransform feeds
the model)."""

from __future__ import annotations

import argparse
import functools
import os
import sys

# Questions between two updates of the progress bar's window count (an update costs ~25 us).
_POSTFIX_EVERY = 256


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the data subcommands."""
    windows = subparsers.add_parser(
        "windows",
        help="cut a SQuAD file's questions into BERT's sliding windows (JSON lines)",
        description="One JSON object per window, in input order: example_id, window_index, "
        "input_ids, segment_ids, input_mask, start_position, end_position.",
    )
    windows.add_argument("--squad", required=True, help="SQuAD v1.1/v2.0 JSON (or .json.gz)")
    windows.add_argument("--vocab", required=True, help="WordPiece vocab.txt of the encoder")
    windows.add_argument("--seq-len", type=int, default=384,
                         help="tokens in a window (spec.seq_len; default: 384)")
    windows.add_argument("--query-len", type=int, default=64,
                         help="question tokens kept at most (spec.query_len; default: 64)")
    windows.add_argument("--doc-stride", type=int, default=128,
                         help="tokens between window starts (spec.doc_stride; default: 128)")
    windows.add_argument("--no-lower-case", dest="do_lower_case", action="store_false",
                         help="keep case and accents (cased vocabularies; default: lower-case)")
    windows.add_argument("--training", action="store_true",
                         help="set answer positions from each question's first answer; "
                         "questions whose answer is not in the passage are skipped and listed "
                         "(default: positions 0, for prediction)")
    windows.add_argument("--out", required=True, help="the .jsonl file to write")
    windows.add_argument("--overwrite", action="store_true",
                         help="replace --out if it exists (default: refuse)")
    windows.set_defaults(handler=_windows)


def _windows(args: argparse.Namespace) -> int:
    import orjson

    from components.qa import progress, squad_json
    from components.qa.windows import AnswerNotFoundError, WindowConfig, WindowMaker

    remote = "://" in args.out  # gs:// and other file systems through TensorFlow
    if remote:
        import tensorflow as tf

        exists, open_file = tf.io.gfile.exists, tf.io.gfile.GFile
        rename = functools.partial(tf.io.gfile.rename, overwrite=True)
    else:
        exists, open_file, rename = os.path.exists, open, os.replace
    if exists(args.out) and not args.overwrite:
        print(f"mbqa windows: {args.out} exists; pass --overwrite to replace it",
              file=sys.stderr)
        return 2
    try:
        config = WindowConfig(args.seq_len, args.query_len, args.doc_stride, args.do_lower_case)
        maker = WindowMaker(args.vocab, config)
        examples, _ = squad_json.read_squad_examples(args.squad)
    except (ValueError, OSError) as error:
        print(f"mbqa windows: {error}", file=sys.stderr)
        return 2

    maker.tokenize_ahead(examples)
    num_windows = 0
    skipped = []
    temporary = args.out + ".partial"
    with open_file(temporary, "wb") as f:
        bar = progress.progress(examples, desc="mbqa windows", unit="questions")
        for example in bar:
            try:
                windows = maker.make_windows(example, training=args.training)
            except AnswerNotFoundError as error:
                skipped.append(str(error))
                continue
            f.write(b"".join(orjson.dumps({
                "example_id": window.example_id,
                "window_index": window.window_index,
                "input_ids": window.input_ids,
                "segment_ids": window.segment_ids,
                "input_mask": window.input_mask,
                "start_position": window.start_position,
                "end_position": window.end_position,
            }, option=orjson.OPT_APPEND_NEWLINE) for window in windows))
            num_windows += len(windows)
            if bar.n % _POSTFIX_EVERY == 0:
                bar.set_postfix(windows=num_windows, refresh=False)
        bar.set_postfix(windows=num_windows, refresh=False)
    rename(temporary, args.out)
    for message in skipped:
        print(f"mbqa windows: skipped (answer not found in the passage): {message}",
              file=sys.stderr)
    print(f"Wrote {num_windows} windows of {len(examples) - len(skipped)} questions to "
          f"{args.out} ({len(skipped)} skipped)")
    return 0
