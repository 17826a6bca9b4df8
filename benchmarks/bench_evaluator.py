"""The QaEvaluator's answering at the published MobileBERT size, on 1 and 2 Beam workers.

    python benchmarks/bench_evaluator.py [--squad dev-v1.1.json] [--questions 120]
        [--formats saved_model float32 float16 dynamic] [--runs 1x1 1x2 2x1] [--work DIR]

Builds (or reuses, with `bench_inference.py`'s `--work` directory) a QA model at the
published size with random weights, its SavedModel and TFLite files (speed does not depend
on the weights). Writes the first `--questions` questions of the SQuAD file as the
question records the evaluator reads, then answers them per format with
`scoring.answer_on_beam` (the evaluator's code) on the DirectRunner in `multi_processing`
mode, per `--runs` entry `WxT`: W worker processes of T CPU threads each (TFLite's
interpreter threads; TensorFlow's intra- and inter-op threads for the SavedModel). The
executor picks T = CPUs / W (`beam_executor.threads_per_worker`): 1x2 and 2x1 on 2 cores;
1x1 is the anchor of worker scaling. It reports per run:
- the whole run's seconds (Beam start, workers importing TensorFlow and loading the model,
  answering, collecting the answers);
- windows/s on the workers, first batch's start to last batch's end (`span`: worker
  start-up and model loading excluded, uneven shares and late starts included);
- windows/s at steady state: N × one worker's windows/s while answering beside the others
  (`steady`: what a long run tends to);
- the speed-up over the first run (1x1) by each measure;
- the estimated whole run over all eval windows of the SQuAD file: this run's seconds plus
  the remaining windows at the steady rate.
Checks that every run gives the same answers. The workers run with Python's
bytecode cached (`PYTHONPYCACHEPREFIX`), as an installed package is. Writes JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_inference  # noqa: E402
import bench_windows  # noqa: E402

REPO = bench_inference.REPO


def run(records: str, name: str, path: str, questions: list, vocab: str, workers: int,
        threads: int, work: pathlib.Path):
    """(ScoredModel, whole seconds) of answering `questions` with `workers` processes of
    `threads` threads."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.evaluator import scoring
    from components.qa import answering
    from components.qa.windows import WindowConfig

    options = PipelineOptions(["--direct_running_mode=multi_processing",
                               f"--direct_num_workers={workers}"])
    started = time.perf_counter()
    scored = scoring.answer_on_beam(
        beam.Pipeline(options=options), records, {name: path}, questions, vocab,
        WindowConfig(), answering.AnswerSettings(), str(work / f"answers-{name}-{workers}"),
        threads)
    return scored[name], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", default=str(bench_inference.DEFAULT_SQUAD))
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--formats", nargs="+",
                        default=["saved_model", "float32", "float16", "dynamic"])
    parser.add_argument("--runs", nargs="+", default=["1x1", "1x2", "2x1"],
                        help="WxT: W worker processes of T threads each; the first is the anchor")
    parser.add_argument("--config", help="MobileBERT config JSON (default: the published one; "
                        "a small one makes a quick check)")
    parser.add_argument("--work", help="keeps the built models for a rerun (default: temp)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "evaluator.json"))
    args = parser.parse_args()

    # The workers are new processes: with bytecode cached, as an installed package is.
    os.environ["PYTHONPYCACHEPREFIX"] = str(bench_windows.PYCACHE)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    import tensorflow as tf

    from components.qa import squad, squad_json
    from components.qa.windows import WindowConfig, WindowMaker

    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        lite_formats = [f for f in args.formats if f != "saved_model"]
        paths, vocab = bench_inference.build_models(work, lite_formats, args.config)
        if "saved_model" in args.formats:
            paths = {"saved_model": str(work / "serving"), **paths}
        all_questions = squad_json.read_squad_examples(args.squad)[0]
        maker = WindowMaker(vocab, WindowConfig())
        maker.tokenize_ahead(all_questions)
        all_windows = sum(len(maker.make_windows(q, training=False)) for q in all_questions)
        questions = all_questions[: args.questions]
        records = str(work / "questions.tfrecord.gz")
        with tf.io.TFRecordWriter(records, "GZIP") as writer:
            for question in questions:
                writer.write(squad.to_tf_example(question).SerializeToString())
        rows = []
        for name, path in paths.items():
            answers = None
            for setting in args.runs:
                workers, threads = map(int, setting.split("x"))
                scored, seconds = run(records, name, path, questions, vocab, workers, threads,
                                      work)
                if answers is not None and scored.answers.predictions != answers:
                    raise SystemExit(f"{name}: {setting} answered differently")
                answers = scored.answers.predictions
                steady = workers * scored.windows_per_worker_second
                row = {"format": name, "run": setting, "workers": workers, "threads": threads,
                       "windows": scored.windows,
                       "whole_seconds": seconds, "span_seconds": scored.seconds,
                       "batch_seconds": scored.batch_seconds,
                       "span_windows_per_s": scored.windows_per_second,
                       "steady_windows_per_s": steady, "all_windows": all_windows,
                       "estimated_all_minutes": (seconds + (all_windows - scored.windows)
                                                 / steady) / 60,
                       "load_1min": os.getloadavg()[0]}
                print(json.dumps(row), flush=True)
                rows.append(row)
    anchors = {r["format"]: r for r in rows if r["run"] == args.runs[0]}
    print(f"\n{len(questions)} questions, {rows[0]['windows']} windows (384 tokens); "
          f"{args.squad}: {len(all_questions)} questions, {all_windows} windows\n")
    print("| model | workers × threads | whole run s | span w/s | × | steady w/s | × | "
          "all windows, est. min | × |")
    print("|---" * 9 + "|")
    for r in rows:
        a = anchors[r["format"]]
        print(f"| {r['format']} | {r['run']} | {r['whole_seconds']:.0f} | "
              f"{r['span_windows_per_s']:.2f} | "
              f"{r['span_windows_per_s'] / a['span_windows_per_s']:.2f} | "
              f"{r['steady_windows_per_s']:.2f} | "
              f"{r['steady_windows_per_s'] / a['steady_windows_per_s']:.2f} | "
              f"{r['estimated_all_minutes']:.0f} | "
              f"{a['estimated_all_minutes'] / r['estimated_all_minutes']:.2f} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"squad": args.squad, "questions": len(questions),
                   "model": os.path.basename(args.config) if args.config else "published size",
                   "anchor": args.runs[0],
                   "rows": rows}, f, indent=1)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
