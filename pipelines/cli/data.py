"""`mbqa windows`: a SQuAD file's sliding windows as JSON lines (what SquadTransform feeds
the model)."""

from __future__ import annotations

import argparse
import json
import sys


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
    import tensorflow as tf

    from components.qa import progress, squad_json
    from components.qa.windows import AnswerNotFoundError, WindowConfig, WindowMaker

    if tf.io.gfile.exists(args.out) and not args.overwrite:
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

    num_windows = 0
    skipped = []
    temporary = args.out + ".partial"
    with tf.io.gfile.GFile(temporary, "w") as f:
        bar = progress.progress(examples, desc="mbqa windows", unit="questions")
        for example in bar:
            try:
                windows = maker.make_windows(example, training=args.training)
            except AnswerNotFoundError as error:
                skipped.append(str(error))
                continue
            for window in windows:
                f.write(json.dumps({
                    "example_id": window.example_id,
                    "window_index": window.window_index,
                    "input_ids": window.input_ids,
                    "segment_ids": window.segment_ids,
                    "input_mask": window.input_mask,
                    "start_position": window.start_position,
                    "end_position": window.end_position,
                }) + "\n")
            num_windows += len(windows)
            bar.set_postfix(windows=num_windows, refresh=False)
    tf.io.gfile.rename(temporary, args.out, overwrite=True)
    for message in skipped:
        print(f"mbqa windows: skipped (answer not found in the passage): {message}",
              file=sys.stderr)
    print(f"Wrote {num_windows} windows of {len(examples) - len(skipped)} questions to "
          f"{args.out} ({len(skipped)} skipped)")
    return 0
