"""Size, latency and accuracy of every TFLite quantization of one SavedModel.

    python benchmarks/bench_quantization.py --saved_model DIR --vocab vocab.txt \\
        --eval eval.json --train train.json [--seq_len 384 --query_len 64 --doc_stride 128]
        [--quantizations dynamic float32 ...] [--threads 1 2] [--out results.json]

Exports the SavedModel (the Trainer's `Format-Serving` dir) in each quantization with
`components.qa.tflite.export_tflite` ('int8' and 'int16x8' calibrated on `--representative`
training windows: a seeded uniform sample of the train JSON's training-mode windows), then
for the SavedModel and each file:
- answers the eval JSON's questions over all their sliding windows
  (`components.qa.answering.answer_questions`) and scores them with the official metrics
  (`components.qa.metrics.evaluate_examples`): EM, F1 and the F1 drop from the SavedModel;
- times one `Interpreter.invoke()` on one window (`components.qa.tflite.latency_ms`: the
  median over `--latency_invokes` invokes after a warm-up, at each `--threads`), on the
  first eval windows.
Prints a markdown table and the load average around the timings (latency is wall-clock:
other processes on the cores inflate it), and writes the rows as JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import tempfile
import time

import numpy as np

from components.qa import answering, contracts, inference, metrics, squad_json, tflite
from components.qa import spec as spec_lib
from components.qa.windows import WindowConfig, WindowMaker

REPO = pathlib.Path(__file__).resolve().parents[1]

SAVED_MODEL = "SavedModel"


def window_arrays(windows) -> dict[str, np.ndarray]:
    """`WindowMaker` windows as the arrays `export_tflite`/`latency_ms` take."""
    return {name: np.array([getattr(w, name) for w in windows], np.int32)
            for name in tflite.WINDOW_INPUTS}


def representative_windows(train_json: str, maker: WindowMaker, n: int,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded uniform sample of `n` training-mode windows of the train JSON's questions."""
    examples, _ = squad_json.read_squad_examples(train_json)
    windows, _ = maker.training_windows(examples)
    sample = random.Random(seed).sample(windows, min(n, len(windows)))
    print(f"Calibration: {len(sample)} of {len(windows)} training windows of "
          f"{len(examples)} questions", flush=True)
    return window_arrays(sample)


def score(path: str, examples, maker: WindowMaker, version_2: bool) -> dict:
    """EM and F1 (official metrics) of the model at `path` on `examples`."""
    answers = answering.answer_questions(
        inference.load_predictor(path), examples, maker,
        answering.AnswerSettings(version_2_with_negative=version_2))
    official = metrics.evaluate_examples(examples, answers.predictions, version_2=version_2)
    em = official["exact_match"] if "exact_match" in official else official["exact"]
    return {"exact_match": float(em), "f1": float(official["f1"])}


def size_bytes(path: str) -> int:
    if os.path.isdir(path):
        return sum(f.stat().st_size for f in pathlib.Path(path).rglob("*") if f.is_file())
    return os.path.getsize(path)


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved_model", required=True, help="the Trainer's Format-Serving dir")
    parser.add_argument("--vocab", required=True, help="the encoder's vocab.txt")
    parser.add_argument("--eval", required=True, help="SQuAD JSON of the questions to score")
    parser.add_argument("--train", required=True, help="SQuAD JSON to draw calibration from")
    parser.add_argument("--seq_len", type=int, default=384)
    parser.add_argument("--query_len", type=int, default=64)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--quantizations", nargs="+", default=list(contracts.QUANTIZATIONS),
                        choices=contracts.QUANTIZATIONS)
    parser.add_argument("--representative", type=int, default=100,
                        help="training windows to calibrate int8/int16x8 on")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--latency_windows", type=int, default=10,
                        help="eval windows the latency is measured on")
    parser.add_argument("--latency_invokes", type=int, default=30,
                        help="timed invokes per file and thread count (the median is reported)")
    parser.add_argument("--work", help="where the .tflite files go (default: a temporary dir)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "quantization.json"))
    args = parser.parse_args()

    spec = spec_lib.MobileBertQaSpec(uri="unused", seq_len=args.seq_len,
                                     query_len=args.query_len, doc_stride=args.doc_stride)
    maker = WindowMaker(args.vocab, WindowConfig.from_spec(spec))
    examples, _ = squad_json.read_squad_examples(args.eval)
    version_2 = any(e.is_impossible for e in examples)
    eval_windows = [w for e in examples for w in maker.make_windows(e, training=False)]
    latency_windows = window_arrays(eval_windows[: args.latency_windows])
    representative = None
    if any(q in contracts.CALIBRATED_QUANTIZATIONS for q in args.quantizations):
        representative = representative_windows(args.train, maker, args.representative)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        print(f"Scoring the SavedModel on {len(examples)} questions ({len(eval_windows)} "
              "windows) ...", flush=True)
        rows = [{"format": SAVED_MODEL, "size_bytes": size_bytes(args.saved_model),
                 **score(args.saved_model, examples, maker, version_2)}]
        for quantization in args.quantizations:
            print(f"Exporting {quantization} ...", flush=True)
            started = time.perf_counter()
            path = tflite.export_tflite(
                args.saved_model, os.path.join(work, f"{quantization}.tflite"), spec,
                args.vocab, quantization, representative)
            row = {"format": quantization, "size_bytes": size_bytes(path),
                   "export_s": time.perf_counter() - started}
            row.update(score(path, examples, maker, version_2))
            rows.append(row)
            row["path"] = path
        # The timings last, together, so that they share one load.
        load_before = load_text()
        for row in rows[1:]:
            for threads in args.threads:
                row[f"latency_ms_{threads}t"] = tflite.latency_ms(
                    row["path"], latency_windows, threads=threads, repeats=args.latency_invokes)
        load_after = load_text()

    saved_f1 = rows[0]["f1"]
    for row in rows:
        row["f1_drop"] = saved_f1 - row["f1"]
        row.pop("path", None)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\n{args.saved_model}: {len(examples)} questions of {args.eval} ({len(eval_windows)} "
          f"windows, seq_len {args.seq_len}); {when}; {os.cpu_count()} CPUs, load average "
          f"(1, 5, 15 min) {load_before} before the timings, {load_after} after; latency = "
          f"median of {args.latency_invokes} invokes on {len(latency_windows['input_ids'])} "
          "eval windows\n")
    latency_heads = [f"ms/window {t} thread{'s' if t > 1 else ''}" for t in args.threads]
    heads = ["format", "size MB", *latency_heads, "EM", "F1", "F1 drop"]
    print("| " + " | ".join(heads) + " |")
    print("|" + "|".join("---" if h == "format" else "---:" for h in heads) + "|")
    for row in rows:
        latencies = [f"{row[f'latency_ms_{t}t']:.2f}" if f"latency_ms_{t}t" in row else "-"
                     for t in args.threads]
        cells = [row["format"], f"{row['size_bytes'] / 1e6:.2f}", *latencies,
                 f"{row['exact_match']:.1f}", f"{row['f1']:.1f}", f"{row['f1_drop']:.1f}"]
        print("| " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"saved_model": args.saved_model, "eval": args.eval, "when": when,
                   "load_before": load_before, "load_after": load_after,
                   "questions": len(examples), "windows": len(eval_windows), "rows": rows},
                  f, indent=1)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
