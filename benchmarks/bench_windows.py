"""Windowing throughput and peak memory: SquadTransform on Beam vs. classic Python.

    python benchmarks/bench_windows.py [--squad dev-v1.1.json] [--workers 1 2] [--repeat N]

Runs, each in a fresh process, side by side on the same questions (training mode, seq_len
384, query_len 64, doc_stride 128, the BERT uncased vocab):
- `classic`: BERT's run_squad.py preprocessing as plain single-threaded Python
  (`tests/qa/classic_squad.py`, the independent implementation the tests compare against),
  the whole data set in memory, as Model Maker does it;
- `maker`: the windowing code of SquadTransform (`components.qa.windows.WindowMaker`, HF
  `tokenizers` WordPiece) in one process without Beam: the per-window cost alone;
- `beam-N`: the SquadTransform executor itself, on the Beam DirectRunner with N worker
  processes (`--direct_running_mode=multi_processing`), reading question TFRecords and
  writing window TFRecords.
Reports windows per second, per second and core, wall seconds and peak resident memory
(the largest process of the run: ru_maxrss of it and its children). Writes the table to
stdout and JSON to `--out`. `--repeat N` runs on N copies of the file (question ids
made unique), so that Beam's fixed start-up cost (worker processes importing TensorFlow)
weighs less.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
VOCAB = REPO / "components" / "qa" / "assets" / "vocab.txt"
SEQ_LEN, QUERY_LEN, DOC_STRIDE = 384, 64, 128


def repeat_squad(squad_path: str, repeat: int, work: pathlib.Path) -> str:
    """`squad_path` with its articles `repeat` times, ids suffixed `-r<k>`; returns the path."""
    with open(squad_path, encoding="utf-8") as f:
        data = json.load(f)
    articles = []
    for k in range(repeat):
        for article in data["data"]:
            copy = json.loads(json.dumps(article))
            for paragraph in copy["paragraphs"]:
                for qa in paragraph["qas"]:
                    qa["id"] = f"{qa['id']}-r{k}"
            articles.append(copy)
    path = work / "squad.json"
    path.write_text(json.dumps({"version": data.get("version", ""), "data": articles}))
    return str(path)


def prepare(squad_path: str, work: pathlib.Path) -> int:
    """Writes the questions as SquadExampleGen would (gzipped tf.Examples); returns how many."""
    import tensorflow as tf

    from components.qa import squad, squad_json

    examples, invalid = squad_json.read_squad_examples(squad_path)
    if invalid:
        raise ValueError(f"{squad_path}: {len(invalid)} invalid records")
    split_dir = work / "questions" / "Split-eval"
    split_dir.mkdir(parents=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(split_dir / "data.gz"), options) as writer:
        for example in examples:
            writer.write(squad.to_tf_example(example).SerializeToString())
    module = work / "module" / "assets"
    module.mkdir(parents=True)
    shutil.copy(VOCAB, module / "vocab.txt")
    return len(examples)


def run_classic(squad_path: str) -> dict:
    """Classic single-threaded preprocessing of the whole file, in memory."""
    from tests.qa import classic_squad

    start = time.perf_counter()
    tokenizer = classic_squad.ClassicTokenizer(str(VOCAB), do_lower_case=True)
    examples, skipped = classic_squad.read_squad_examples(squad_path, is_training=True)
    features = classic_squad.convert_examples_to_features(
        examples, tokenizer, SEQ_LEN, DOC_STRIDE, QUERY_LEN, is_training=True)
    return {"seconds": time.perf_counter() - start, "windows": len(features),
            "skipped": len(skipped)}


def run_maker(squad_path: str) -> dict:
    """SquadTransform's windowing code in this process, one question after the other."""
    from components.qa import squad_json
    from components.qa.windows import WindowConfig, WindowMaker

    start = time.perf_counter()
    maker = WindowMaker(str(VOCAB), WindowConfig(SEQ_LEN, QUERY_LEN, DOC_STRIDE))
    windows, skipped = maker.training_windows(squad_json.read_squad_examples(squad_path)[0])
    return {"seconds": time.perf_counter() - start, "windows": len(windows), "skipped": skipped}


def run_beam(work: pathlib.Path, workers: int) -> dict:
    """The SquadTransform executor on the DirectRunner with `workers` processes."""
    from tfx.types import artifact_utils, standard_artifacts

    from components.qa import spec as spec_lib
    from components.squad_transform import executor

    examples = standard_artifacts.Examples()
    examples.uri = str(work / "questions")
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    output = standard_artifacts.Examples()
    output.uri = str(work / f"windows-{workers}")
    spec = spec_lib.MobileBertQaSpec(uri=str(work / "module"), seq_len=SEQ_LEN,
                                     query_len=QUERY_LEN, doc_stride=DOC_STRIDE)
    beam_args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    start = time.perf_counter()
    executor.Executor(executor.Executor.Context(beam_pipeline_args=beam_args)).Do(
        {executor.EXAMPLES_KEY: [examples]},
        {executor.TRANSFORMED_EXAMPLES_KEY: [output]},
        {executor.SPEC_KEY: spec.to_json()},
    )
    seconds = time.perf_counter() - start
    stats = json.loads((work / f"windows-{workers}" / executor.STATS_FILE_NAME).read_text())
    return {"seconds": seconds, "windows": stats["num_windows"], "skipped": stats["num_skipped"]}


def measure(mode: str, args: argparse.Namespace, work: pathlib.Path) -> dict:
    """Runs one mode in a child process; adds its peak memory (MiB)."""
    command = [sys.executable, __file__, "--child", mode, "--squad", args.squad,
               "--work", str(work)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                    "PYTHONPATH": str(REPO)})
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{mode} failed (status {status})")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", default=str(DEFAULT_SQUAD))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="copies of the file to window")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "windows.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "classic":
            result = run_classic(args.squad)
        elif args.child == "maker":
            result = run_maker(args.squad)
        else:
            result = run_beam(pathlib.Path(args.work), int(args.child.split("-")[1]))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        source = args.squad
        if args.repeat > 1:
            args.squad = repeat_squad(source, args.repeat, work)
        questions = prepare(args.squad, work)
        rows = []
        for mode in ["classic", "maker"] + [f"beam-{n}" for n in args.workers]:
            print(f"Running {mode} on {questions} questions ...", flush=True)
            result = measure(mode, args, work)
            workers = int(mode.split("-")[1]) if mode.startswith("beam-") else 1
            cores = min(workers, os.cpu_count())
            result.update(mode=mode, cores=cores,
                          windows_per_s=result["windows"] / result["seconds"],
                          windows_per_s_per_core=result["windows"] / result["seconds"] / cores)
            rows.append(result)
    counts = {(r["windows"], r["skipped"]) for r in rows}
    if len(counts) != 1:
        raise RuntimeError(f"The implementations disagree on (windows, skipped): {counts}")
    print(f"\n{questions} questions ({args.repeat} x {source}) -> {rows[0]['windows']} windows "
          f"({rows[0]['skipped']} skipped: answer not in the passage's words)")
    print(f"{'mode':10} {'cores':>5} {'seconds':>8} {'windows/s':>10} {'w/s/core':>9} "
          f"{'peak MiB':>9}")
    for r in rows:
        print(f"{r['mode']:10} {r['cores']:>5} {r['seconds']:>8.1f} {r['windows_per_s']:>10.0f} "
              f"{r['windows_per_s_per_core']:>9.0f} {r['peak_rss_mib']:>9.0f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"squad": source, "repeat": args.repeat, "questions": questions, "rows": rows},
                  f, indent=1)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
