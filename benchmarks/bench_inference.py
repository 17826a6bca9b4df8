"""TFLite inference at the published MobileBERT size: `mbqa predict`'s path against a bare
`Interpreter.invoke()` loop, and latency per window for each format and thread count.

    python benchmarks/bench_inference.py [--squad dev-v1.1.json] [--questions 50]
        [--formats float32 float16 dynamic] [--threads 1 2] [--config JSON] [--work DIR]

Builds (once per `--work` directory; reused when its files exist) a MobileBERT QA model at
the published size from a TF1 Hub module with random weights (`mbqa make-encoder --config`
the published config; `MobileBertQaSpec` defaults: 384/64/128), exports the SavedModel and
converts it to each TFLite format with Task Library metadata (`tflite.export_tflite`).
Speed does not depend on the weights. Then, on the eval-mode windows of the first
`--questions` questions of the SQuAD file:
- latency: the median of `--invokes` timed `Interpreter.invoke()` calls on one window
  (`tflite.latency_ms`) per format and thread count;
- throughput, per format at TFLite's default thread count (one here; `mbqa predict` runs
  on all CPUs unless given `--threads`, and both sides here use the same count): the
  bare loop (set the three inputs and invoke, per window) against
  `answering.answer_questions` (what `mbqa predict` runs after reading its file: windowing,
  batching, the interpreter, postprocessing into answer texts), both over the same windows,
  each after one untimed warm-up (the first invoke prepares kernels; the first answers
  import tf-models-official's postprocessing).
Prints a markdown table and writes JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def build_models(work: pathlib.Path, formats: list[str],
                 config: str) -> tuple[dict[str, str], str]:
    """The .tflite file per format (built if missing) and the module's vocab path."""
    from components.qa import encoders, mobilebert, tflite
    from components.qa import model as model_lib
    from components.qa.spec import MobileBertQaSpec

    module = work / "mobilebert"
    if not (module / encoders.TF1_MODULE_FILE).exists():
        started = time.perf_counter()
        encoders.make_encoder(str(module), config or mobilebert.PUBLISHED_CONFIG_PATH,
                              tf_format=encoders.TF1)
        print(f"TF1 Hub module: {time.perf_counter() - started:.0f} s", flush=True)
    spec = MobileBertQaSpec(uri=str(module))
    vocab = encoders.module_vocab_path(str(module))
    serving = work / "serving"
    if not (serving / "saved_model.pb").exists():
        started = time.perf_counter()
        model_lib.export_serving_model(model_lib.build_qa_model(spec), str(serving), spec)
        print(f"SavedModel: {time.perf_counter() - started:.0f} s", flush=True)
    paths = {}
    for quantization in formats:
        path = work / f"model-{quantization}.tflite"
        if not path.exists():
            started = time.perf_counter()
            tflite.export_tflite(str(serving), str(path), spec, vocab, quantization=quantization)
            print(f"{quantization}: converted in {time.perf_counter() - started:.0f} s, "
                  f"{path.stat().st_size / 2**20:.1f} MiB", flush=True)
        paths[quantization] = str(path)
    return paths, vocab


def bare_loop_windows_per_s(path: str, arrays: list) -> float:
    """Windows per second of setting the three inputs and invoking, window after window
    (`TFLitePredictor.invoke_ns`: nothing else)."""
    from components.qa import inference

    with inference.TFLitePredictor(path) as predictor:
        predictor.invoke_ns(*(array[:1] for array in arrays))  # warm-up: kernels prepared
        started = time.perf_counter()
        for row in range(arrays[0].shape[0]):
            predictor.invoke_ns(*(array[row : row + 1] for array in arrays))
        return arrays[0].shape[0] / (time.perf_counter() - started)


def predict_windows_per_s(path: str, examples: list, vocab: str, windows: int) -> float:
    """Windows per second of `answer_questions` (mbqa predict's work) over `examples`, whose
    eval-mode windows number `windows`."""
    from components.qa import answering, inference
    from components.qa.windows import WindowConfig, WindowMaker

    with inference.TFLitePredictor(path) as predictor:
        maker = WindowMaker(vocab, WindowConfig())
        answering.answer_questions(predictor, examples[:1], maker)  # warm-up: imports, kernels
        started = time.perf_counter()
        answers = answering.answer_questions(predictor, examples, maker)
        seconds = time.perf_counter() - started
    assert len(answers.predictions) == len(examples)
    return windows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", default=str(DEFAULT_SQUAD))
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--formats", nargs="+", default=["float32", "float16", "dynamic"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--invokes", type=int, default=10)
    parser.add_argument("--config", help="MobileBERT config JSON (default: the published one; "
                        "a small one makes a quick check)")
    parser.add_argument("--work", help="keeps the built models for a rerun (default: temp)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "inference.json"))
    args = parser.parse_args()

    import numpy as np

    from components.qa import squad_json, tflite
    from components.qa.windows import WindowConfig, WindowMaker

    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        paths, vocab = build_models(work, args.formats, args.config)
        examples = squad_json.read_squad_examples(args.squad)[0][: args.questions]
        maker = WindowMaker(vocab, WindowConfig())
        windows = [w for e in examples for w in maker.make_windows(e, training=False)]
        arrays = [np.array([getattr(w, name) for w in windows], np.int32)
                  for name in tflite.WINDOW_INPUTS]
        rows = []
        for quantization, path in paths.items():
            row = {"format": quantization, "mib": os.path.getsize(path) / 2**20,
                   "load_1min": os.getloadavg()[0]}
            for threads in args.threads:
                row[f"latency_ms_{threads}t"] = tflite.latency_ms(
                    path, dict(zip(tflite.WINDOW_INPUTS, arrays, strict=True)), threads,
                    args.invokes)
            row["bare_windows_per_s"] = bare_loop_windows_per_s(path, arrays)
            row["windows"] = len(windows)
            row["predict_windows_per_s"] = predict_windows_per_s(path, examples, vocab,
                                                                  len(windows))
            row["ratio"] = row["predict_windows_per_s"] / row["bare_windows_per_s"]
            print(json.dumps(row), flush=True)
            rows.append(row)
    threads_cols = " | ".join(f"latency {t} thread{'s' if t > 1 else ''} ms"
                              for t in args.threads)
    print(f"\n{len(examples)} questions, {len(windows)} windows (384 tokens)\n")
    print(f"| format | MiB | {threads_cols} | invoke loop w/s | mbqa predict w/s | ratio |")
    print("|---" * (5 + len(args.threads)) + "|")
    for r in rows:
        lat = " | ".join(f"{r[f'latency_ms_{t}t']:.0f}" for t in args.threads)
        print(f"| {r['format']} | {r['mib']:.1f} | {lat} | {r['bare_windows_per_s']:.2f} | "
              f"{r['predict_windows_per_s']:.2f} | {r['ratio']:.3f} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"squad": args.squad, "questions": len(examples), "windows": len(windows),
                   "model": os.path.basename(args.config) if args.config else "published size",
                   "rows": rows}, f, indent=1)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
