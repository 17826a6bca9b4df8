"""`mbqa make-encoder` (a random MobileBERT as a TF-Hub module) and `mbqa synth` (data)."""

from __future__ import annotations

import argparse
import sys

# --flag -> MobileBERT config key; each overrides the --config file's value.
_SIZE_FLAGS = {
    "layers": "num_hidden_layers",
    "hidden": "hidden_size",
    "bottleneck": "intra_bottleneck_size",
    "heads": "num_attention_heads",
    "ffn_layers": "num_feedforward_networks",
    "intermediate": "intermediate_size",
    "embedding": "embedding_size",
    "max_seq_len": "max_position_embeddings",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `make-encoder` and `synth`."""
    encoder = subparsers.add_parser(
        "make-encoder",
        help="write a randomly initialized MobileBERT encoder as a TF-Hub module",
        description="Builds a MobileBERT encoder (TF Model Garden's MobileBERTEncoder) with "
        "random weights and saves it as a TF-Hub module with assets/vocab.txt, so the "
        "pipeline runs offline. Default: the tiny embedded config.",
    )
    encoder.add_argument("--out", required=True, help="new (or empty) output directory")
    encoder.add_argument(
        "--config", help="MobileBERT config JSON (bert_config.json keys; default: tiny)"
    )
    for flag, key in _SIZE_FLAGS.items():
        encoder.add_argument(
            f"--{flag.replace('_', '-')}", type=int,
            help=f"override the config's {key} (default: the config's)",
        )
    encoder.add_argument(
        "--vocab", help="WordPiece vocab file (default: the BERT uncased vocab shipped here)"
    )
    encoder.add_argument(
        "--no-lower-case", dest="do_lower_case", action="store_false",
        help="the vocab is cased (default: uncased, lower-case the text)",
    )
    encoder.add_argument(
        "--format", choices=("tf1", "tf2"), default="tf2",
        help="Hub format: tf2 (SavedModel, is_tf2=True) or tf1 (is_tf2=False: the published "
        "MobileBERT module's layout and variable names; the default spec's format) "
        "(default: tf2)",
    )
    encoder.add_argument(
        "--squad", action="store_true",
        help="tf1 only: add a `squad` signature (a random SQuAD head, as in the published "
        "SQuAD module; for init_from_squad_model) (default: no signature)",
    )
    encoder.add_argument("--seed", type=int, default=0,
                         help="random seed of the weights (default: 0)")
    encoder.set_defaults(handler=make_encoder_command)

    synth = subparsers.add_parser(
        "synth",
        help="write a learnable synthetic SQuAD data set (train/train.json, eval/eval.json)",
        description="Writes passages of generated facts with questions whose answers are "
        "spans of them, as SQuAD v1.1 (or v2.0 with unanswerable questions) JSON: "
        "<out>/train/train.json and <out>/eval/eval.json, usable as data_root.",
    )
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--n", type=int, default=2000, help="questions in all (default: 2000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument(
        "--eval-fraction", type=float, default=0.1,
        help="share of passages held out for eval (default: 0.1)",
    )
    synth.add_argument(
        "--unanswerable-fraction", type=float, default=0.0,
        help="share of unanswerable questions; > 0 writes SQuAD v2.0 (default: 0)",
    )
    synth.add_argument(
        "--questions-per-passage", type=int, default=4,
        help="questions asked about each passage (default: 4)",
    )
    synth.set_defaults(handler=synth_command)


def make_encoder_command(args: argparse.Namespace) -> int:
    """Handler of `mbqa make-encoder`."""
    from components.qa import encoders, mobilebert

    try:
        config = mobilebert.load_encoder_config(args.config or mobilebert.TINY_CONFIG_PATH)
        for flag, key in _SIZE_FLAGS.items():
            if getattr(args, flag) is not None:
                config[key] = getattr(args, flag)
        out = encoders.make_encoder(
            args.out, config, vocab_path=args.vocab, do_lower_case=args.do_lower_case,
            tf_format=args.format, seed=args.seed, squad=args.squad,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"mbqa make-encoder: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote the encoder to {out} (use it with uri={out!r}, is_tf2={args.format == 'tf2'})")
    return 0


def synth_command(args: argparse.Namespace) -> int:
    """Handler of `mbqa synth`."""
    from components.qa import synth

    try:
        paths = synth.make_synthetic_squad(
            args.out, n=args.n, seed=args.seed, eval_fraction=args.eval_fraction,
            unanswerable_fraction=args.unanswerable_fraction,
            questions_per_passage=args.questions_per_passage,
        )
    except (ValueError, FileExistsError) as error:
        print(f"mbqa synth: error: {error}", file=sys.stderr)
        return 2
    for split, path in paths.items():
        print(f"Wrote the {split} split to {path}")
    return 0
