"""Windowing speed against Model Maker's own preprocessing, with every window compared.

    python benchmarks/bench_windows.py [--squad dev-v1.1.json] [--workers 1 2] [--repeat N]

Runs, each in a fresh process, on the same SQuAD file (seq_len 384, query_len 64,
doc_stride 128, the BERT uncased vocab):
- `squad_lib-train`, `squad_lib-eval` (the anchor): tf-models-official's
  `squad_lib.read_squad_examples` + `convert_examples_to_features` with its `FullTokenizer`,
  the code Model Maker's `MobileBertQaSpec` runs (training reads each question's first
  answer, as Model Maker's training files have one);
- `ours-train`, `ours-eval`: `components.qa.windows.WindowMaker` in one process
  (`tokenize_ahead` over all questions, then `make_windows` one question after the other);
- `mbqa-windows`: the `mbqa windows --training` command as a whole process (start-up, reading,
  windowing and writing its JSON lines);
- `beam-N`: the SquadTransform executor's `Do` on the Beam DirectRunner with N worker
  processes (`--direct_running_mode=multi_processing`), from question TFRecords to window
  TFRecords.

`seconds` is the timed work: windowing alone in process (reading the JSON is `read s`), the
whole process for `mbqa-windows` and the whole `Do` for `beam-N`; `process s` is the child
process's wall time. `x anchor` divides windows/s by squad_lib's in the same mode (in
process) or, for `mbqa-windows` and `beam-N`, by squad_lib-train's whole process. Peak MiB is
the largest resident set of the run's processes. Every field of every window (example id,
window index, tokens, input ids, mask, segment ids, start/end positions, token_to_orig_map,
token_is_max_context; the fields each output has) must equal squad_lib's, or the benchmark
fails. Children run with Python's bytecode cached (`PYTHONPYCACHEPREFIX`), as an installed
package is. Writes the table to stdout and JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
VOCAB = REPO / "components" / "qa" / "assets" / "vocab.txt"
SEQ_LEN, QUERY_LEN, DOC_STRIDE = 384, 64, 128
PYCACHE = pathlib.Path(tempfile.gettempdir()) / "mbqa-bench-pycache"
FIELDS = ("example_id", "window_index", "tokens", "input_ids", "input_mask", "segment_ids",
          "start_position", "end_position", "token_to_orig_map", "token_is_max_context")


def write_inputs(squad_path: str, repeat: int, work: pathlib.Path) -> int:
    """Writes `squad.json` (`repeat` copies, ids suffixed `-r<k>`), `squad-first-answer.json`
    (squad_lib's training input) and the question TFRecords of SquadExampleGen; returns the
    number of questions."""
    import tensorflow as tf

    from components.qa import squad, squad_json

    with open(squad_path, encoding="utf-8") as f:
        data = json.load(f)
    articles = []
    for k in range(repeat):
        for article in data["data"]:
            copy = json.loads(json.dumps(article))
            for paragraph in copy["paragraphs"]:
                for qa in paragraph["qas"]:
                    qa["id"] = f"{qa['id']}-r{k}" if repeat > 1 else qa["id"]
            articles.append(copy)
    (work / "squad.json").write_text(json.dumps({"version": data.get("version", ""),
                                                 "data": articles}))
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa["answers"] = qa["answers"][:1]
    (work / "squad-first-answer.json").write_text(
        json.dumps({"version": data.get("version", ""), "data": articles}))

    examples, invalid = squad_json.read_squad_examples(str(work / "squad.json"))
    if invalid:
        raise ValueError(f"{squad_path}: {len(invalid)} invalid records")
    split_dir = work / "questions" / "Split-train"
    split_dir.mkdir(parents=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(split_dir / "data.gz"), options) as writer:
        for example in examples:
            writer.write(squad.to_tf_example(example).SerializeToString())
    module = work / "module" / "assets"
    module.mkdir(parents=True)
    shutil.copy(VOCAB, module / "vocab.txt")
    return len(examples)


def run_squad_lib(work: pathlib.Path, training: bool) -> tuple[dict, list[dict]]:
    """Model Maker's preprocessing (tf-models-official squad_lib) over the whole file."""
    from official.nlp.data import squad_lib
    from official.nlp.tools import tokenization

    path = work / ("squad-first-answer.json" if training else "squad.json")
    with open(path, encoding="utf-8") as f:
        version_2 = json.load(f)["version"].startswith("v2")
    start = time.perf_counter()
    examples = squad_lib.read_squad_examples(str(path), training, version_2)
    read = time.perf_counter() - start
    start = time.perf_counter()
    features = []

    def collect(feature, is_padding: bool = False) -> None:  # eval mode passes is_padding
        features.append(feature)

    tokenizer = tokenization.FullTokenizer(str(VOCAB), do_lower_case=True)
    squad_lib.convert_examples_to_features(examples, tokenizer, SEQ_LEN, DOC_STRIDE, QUERY_LEN,
                                           training, collect, batch_size=1)
    seconds = time.perf_counter() - start
    windows = [{
        "example_id": examples[f.example_index].qas_id, "window_index": f.doc_span_index,
        "tokens": f.tokens, "input_ids": f.input_ids, "input_mask": f.input_mask,
        "segment_ids": f.segment_ids, "start_position": f.start_position,
        "end_position": f.end_position, "token_to_orig_map": f.token_to_orig_map,
        "token_is_max_context": f.token_is_max_context,
    } for f in features]
    return {"seconds": seconds, "read_s": read, "windows": len(windows)}, windows


def run_ours(work: pathlib.Path, training: bool) -> tuple[dict, list[dict]]:
    """`WindowMaker` over the whole file in this process."""
    from components.qa import squad_json
    from components.qa.windows import AnswerNotFoundError, WindowConfig, WindowMaker

    start = time.perf_counter()
    examples, _ = squad_json.read_squad_examples(str(work / "squad.json"))
    read = time.perf_counter() - start
    start = time.perf_counter()
    maker = WindowMaker(str(VOCAB), WindowConfig(SEQ_LEN, QUERY_LEN, DOC_STRIDE))
    maker.tokenize_ahead(examples)
    windows = []
    for example in examples:
        try:
            windows.extend(maker.make_windows(example, training))
        except AnswerNotFoundError:
            pass
    seconds = time.perf_counter() - start
    return ({"seconds": seconds, "read_s": read, "windows": len(windows)},
            [{f: getattr(w, f) for f in FIELDS} for w in windows])


def run_beam(work: pathlib.Path, workers: int) -> tuple[dict, list[dict]]:
    """The SquadTransform executor on the DirectRunner with `workers` processes."""
    import tensorflow as tf
    from tfx.types import artifact_utils, standard_artifacts

    from components.qa import spec as spec_lib
    from components.qa import windows as windows_lib
    from components.squad_transform import executor

    examples = standard_artifacts.Examples()
    examples.uri = str(work / "questions")
    examples.split_names = artifact_utils.encode_split_names(["train"])
    output = standard_artifacts.Examples()
    output.uri = str(work / f"windows-{workers}")
    spec = spec_lib.MobileBertQaSpec(uri=str(work / "module"), seq_len=SEQ_LEN,
                                     query_len=QUERY_LEN, doc_stride=DOC_STRIDE)
    beam_args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    start = time.perf_counter()
    executor.Executor(executor.Executor.Context(beam_pipeline_args=beam_args)).Do(
        {executor.EXAMPLES_KEY: [examples]},
        {executor.TRANSFORMED_EXAMPLES_KEY: [output]},
        {executor.WINDOWING_KEY: executor.windowing_json(spec)},
    )
    seconds = time.perf_counter() - start
    files = tf.io.gfile.glob(str(work / f"windows-{workers}" / "Split-train" / "*.gz"))
    windows = [windows_lib.window_from_tf_example(record.numpy())
               for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    stored = [f for f in FIELDS if f != "tokens"]
    return ({"seconds": seconds, "windows": len(windows)},
            [{f: getattr(w, f) for f in stored} for w in windows])


def child_env() -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO),
           "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(mode: str, work: pathlib.Path) -> dict:
    """Runs one mode in a child process; adds its wall time and peak memory (MiB)."""
    if mode == "mbqa-windows":
        command = [str(pathlib.Path(sys.executable).parent / "mbqa"), "windows", "--training",
                   "--squad", str(work / "squad.json"), "--vocab", str(VOCAB),
                   "--out", str(work / "windows.jsonl")]
    else:
        command = [sys.executable, __file__, "--child", mode, "--work", str(work)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               cwd=REPO, env=child_env())
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{mode} failed (status {status}): {stdout.decode()[-2000:]}")
    if mode == "mbqa-windows":
        with open(work / "windows.jsonl", encoding="utf-8") as f:
            windows = [json.loads(line) for line in f]
        with open(work / f"{mode}.pickle", "wb") as f:
            pickle.dump(windows, f)
        result = {"seconds": wall, "windows": len(windows)}
    else:
        result = json.loads(stdout.decode().strip().splitlines()[-1])
    result.update(mode=mode, process_s=wall, peak_rss_mib=usage.ru_maxrss / 1024)
    return result


def compare(mode: str, anchor: str, work: pathlib.Path) -> str:
    """Every window of `mode` against `anchor`'s, field by field; raises on a difference."""
    def load(name: str) -> dict:
        with open(work / f"{name}.pickle", "rb") as f:
            return {(w["example_id"], w["window_index"]): w for w in pickle.load(f)}

    ours, theirs = load(mode), load(anchor)
    if ours.keys() != theirs.keys():
        raise RuntimeError(f"{mode}: {len(ours.keys() ^ theirs.keys())} windows differ from "
                           f"{anchor}'s ({len(ours)} against {len(theirs)})")
    fields = [f for f in FIELDS if f in next(iter(ours.values()))]
    different = {f: sum(ours[k][f] != theirs[k][f] for k in ours) for f in fields}
    if any(different.values()):
        raise RuntimeError(f"{mode} differs from {anchor}: windows per field {different}")
    return f"{mode}: all {len(ours)} windows equal {anchor}'s in {len(fields)} fields"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", default=str(DEFAULT_SQUAD))
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="copies of the file to window")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "windows.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work = pathlib.Path(args.work)
        if args.child.startswith("beam-"):
            result, windows = run_beam(work, int(args.child.split("-")[1]))
        else:
            run = run_squad_lib if args.child.startswith("squad_lib") else run_ours
            result, windows = run(work, args.child.endswith("-train"))
        with open(work / f"{args.child}.pickle", "wb") as f:
            pickle.dump(windows, f)
        print(json.dumps(result))
        return

    # Bytecode for every module the children import, as an installed package has it.
    subprocess.run([sys.executable, "-c", "import tensorflow, tfx.types, "
                    "official.nlp.data.squad_lib, components.squad_transform.executor, "
                    "pipelines.cli.data"], check=True, cwd=REPO, env=child_env(),
                   stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        questions = write_inputs(args.squad, args.repeat, work)
        modes = ["squad_lib-train", "squad_lib-eval", "ours-train", "ours-eval", "mbqa-windows"]
        rows = []
        for mode in modes + [f"beam-{n}" for n in args.workers]:
            print(f"Running {mode} on {questions} questions ...", flush=True)
            rows.append(measure(mode, work))
        checks = [compare(r["mode"], "squad_lib-eval" if r["mode"].endswith("-eval")
                          else "squad_lib-train", work) for r in rows[2:]]
    by_mode = {r["mode"]: r for r in rows}
    for r in rows:
        r["windows_per_s"] = r["windows"] / r["seconds"]
        if r["mode"].endswith("-eval"):
            anchor = by_mode["squad_lib-eval"]["windows_per_s"]
        elif r["mode"].endswith("-train"):
            anchor = by_mode["squad_lib-train"]["windows_per_s"]
        else:
            anchor = by_mode["squad_lib-train"]["windows"] / by_mode["squad_lib-train"][
                "process_s"]
        r["x_anchor"] = r["windows_per_s"] / anchor
    print(f"\n{questions} questions ({args.repeat} x {args.squad})")
    print(f"{'mode':16} {'windows':>8} {'read s':>7} {'seconds':>8} {'windows/s':>10} "
          f"{'x anchor':>8} {'process s':>9} {'peak MiB':>9}")
    for r in rows:
        read = f"{r['read_s']:.2f}" if "read_s" in r else "-"
        print(f"{r['mode']:16} {r['windows']:>8} {read:>7} {r['seconds']:>8.2f} "
              f"{r['windows_per_s']:>10.0f} {r['x_anchor']:>8.2f} {r['process_s']:>9.1f} "
              f"{r['peak_rss_mib']:>9.0f}")
    print("\n".join(checks))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"squad": args.squad, "repeat": args.repeat, "questions": questions,
                   "rows": rows, "checks": checks}, f, indent=1)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
