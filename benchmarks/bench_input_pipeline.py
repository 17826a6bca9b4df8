"""Training throughput fed by the Trainer's input pipeline vs. the same windows in memory.

    python benchmarks/bench_input_pipeline.py [--sizes demo published] [--squad PATH]
        [--questions 2000] [--demo-turns 10] [--published-turns 4]

Windows the first `--questions` questions of SQuAD dev-v1.1 (training mode, 384/64/128,
the BERT uncased vocab, `WindowMaker`; the demo's synthetic data if the file is absent),
writes them as SquadTransform does (`windows_to_tf_examples`, one gzipped TFRecord file),
then for each model size trains the Trainer's QA model (`build_qa_model`,
`compile_qa_model`, batch 32, the demo's spec) fed by:
- `records`: `make_window_dataset` on the file, as the Trainer reads it (shuffled, seeded);
- `memory`: the same windows as int32 arrays, `from_tensor_slices`, shuffled, repeated and
  batched alike.
With SQuAD windows, at the demo size, both again with `trim` (`trim_padding`, the
Trainer's default), and the distribution of the windows' lengths.

Each source's iterator is warmed up (the first step traces; the shuffle buffer), then the
sources take turns through the Keras train function that `fit` calls: `--*-turns` rounds
(every other one in reverse order) of 3 steps per source (1 at the published size), so that
load from elsewhere hits them alike. Windows/s is the median over a source's turns. Last,
each source alone (no model, both cores) for 200 batches: what feeding costs. Writes a
markdown table to stdout and JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_SQUAD = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
LENGTH_BOUNDS = (128, 192, 256, 320, 384)
SIZES = ("demo", "published")
TURN_STEPS = {"demo": 3, "published": 1}  # Steps in a row from one source.


def make_windows(squad_path: str, questions: int, work: pathlib.Path) -> tuple[list, str]:
    """Training windows of the first `questions` questions; and what they come from."""
    from components.qa import squad_json, synth
    from components.qa.windows import WindowConfig, WindowMaker
    from pipelines.demo import DEMO_FACTS_PER_PASSAGE, DEMO_SPEC

    if os.path.exists(squad_path):
        source = f"SQuAD dev-v1.1, first {questions} questions"
    else:
        print(f"{squad_path} not found: synthetic demo questions, no trim_padding measurement")
        squad_path = synth.make_synthetic_squad(
            str(work / "synth"), n=questions, seed=1, facts_per_passage=DEMO_FACTS_PER_PASSAGE
        )["train"]
        source = "synthetic demo questions"
    examples = squad_json.read_squad_examples(squad_path)[0][:questions]
    config = WindowConfig(*(DEMO_SPEC[k] for k in ("seq_len", "query_len", "doc_stride")))
    maker = WindowMaker(synth.BERT_VOCAB_PATH, config)
    windows, _ = maker.training_windows(examples)
    return windows, f"{source} ({len(examples)} q, {len(windows)} windows)"


def write_records(windows: list, path: str) -> None:
    """The windows as the SquadTransform writes them: tf.Examples in a GZIP TFRecord file."""
    import tensorflow as tf

    from components.qa.windows import windows_to_tf_examples
    from components.trainer.dataset import COMPRESSION

    with tf.io.TFRecordWriter(path, options=COMPRESSION) as writer:
        for record in windows_to_tf_examples(windows):
            writer.write(record)


def in_memory_dataset(windows: list, batch: int, trim: bool):
    """The windows as int32 tensors, shuffled, repeated and batched as the Trainer's pipeline."""
    import numpy as np
    import tensorflow as tf

    from components.qa import spec as spec_lib
    from components.trainer import dataset as dataset_lib
    from components.trainer.run_fn import SHUFFLE_SEED

    features = {name: np.array([getattr(w, name) for w in windows], np.int32)
                for name in spec_lib.SERVING_INPUTS}
    start_name, end_name = spec_lib.SERVING_OUTPUTS
    labels = {start_name: np.array([w.start_position for w in windows], np.int32),
              end_name: np.array([w.end_position for w in windows], np.int32)}
    dataset = (tf.data.Dataset.from_tensor_slices((features, labels))
               .shuffle(dataset_lib.SHUFFLE_BUFFER, seed=SHUFFLE_SEED)
               .repeat().batch(batch, drop_remainder=True))
    if trim:
        dataset = dataset.map(dataset_lib.trim_padding, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def time_sources(model, sources: dict, turns: int, turn_steps: int,
                 batch: int) -> tuple[dict[str, list[float]], float]:
    """Each source's windows/s in each of its turns, after warming it up; the warm-up's seconds.

    A source whose batches' spec is already traced is warmed up by one batch, the others by
    one step. Then `turns` rounds of `turn_steps` steps per source, every other round in
    reverse order.
    """
    train = model.make_train_function()
    iterators = {name: iter(dataset) for name, dataset in sources.items()}
    start, traced = time.perf_counter(), set()
    for iterator in iterators.values():
        if str(iterator.element_spec) in traced:
            next(iterator)
        else:
            float(train(iterator)["loss"])
            traced.add(str(iterator.element_spec))
    warmup_s = time.perf_counter() - start
    rates: dict[str, list[float]] = {name: [] for name in sources}
    for turn in range(turns):
        for name in list(iterators)[::-1 if turn % 2 else 1]:
            start = time.perf_counter()
            for _ in range(turn_steps):
                logs = train(iterators[name])
            float(logs["loss"])  # Waits for the last step.
            rates[name].append(turn_steps * batch / (time.perf_counter() - start))
    return rates, warmup_s


def pipeline_rate(dataset, batch: int, batches: int = 200) -> float:
    """Windows/s of a source alone, no model: `batches` batches after a first one."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def measure_size(size: str, windows: list, records: str, trim: bool, turns: int,
                 work: pathlib.Path) -> dict:
    """Windows/s of each source through the QA model of `size` (one model, this process)."""
    import tensorflow as tf

    from components.qa import encoders, tf1_hub
    from components.qa import model as model_lib
    from components.qa.spec import MobileBertQaSpec
    from components.trainer import dataset as dataset_lib
    from components.trainer.run_fn import SHUFFLE_SEED
    from pipelines.demo import DEMO_SPEC

    start = time.perf_counter()
    config = encoders.TINY_CONFIG_PATH if size == "demo" else tf1_hub.PUBLISHED_CONFIG_PATH
    module = encoders.make_encoder(str(work / f"encoder-{size}"), config,
                                   tf_format=encoders.TF1)
    spec = MobileBertQaSpec(uri=module, **DEMO_SPEC)
    tf.keras.backend.clear_session()
    model = model_lib.build_qa_model(spec)
    model_lib.compile_qa_model(model, spec, train_steps=1000)
    batch = spec.default_batch_size
    sources = {}
    for trimmed in (False, True) if trim else (False,):
        suffix = "+trim" if trimmed else ""
        sources["records" + suffix] = dataset_lib.make_window_dataset(
            records, batch, spec.seq_len, training=True, seed=SHUFFLE_SEED, trim=trimmed)
        sources["memory" + suffix] = in_memory_dataset(windows, batch, trimmed)
    setup_s = time.perf_counter() - start
    print(f"{size}: encoder written and model built in {setup_s:.0f} s; timing {list(sources)}",
          flush=True)
    load = os.getloadavg()[0]
    rates, warmup_s = time_sources(model, sources, turns, TURN_STEPS[size], batch)
    row = {"size": size, "parameters": model.count_params(), "batch": batch,
           "seq_len": spec.seq_len, "steps": turns * TURN_STEPS[size], "setup_s": round(setup_s, 1),
           "warmup_s": round(warmup_s, 1),
           "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
           "windows_per_s": {name: round(statistics.median(r), 2) for name, r in rates.items()},
           "turn_windows_per_s": {name: [round(x, 2) for x in r] for name, r in rates.items()},
           "alone_windows_per_s": {name: round(pipeline_rate(dataset, batch))
                                   for name, dataset in sources.items()}}
    if trim:
        lengths = [f["input_ids"].shape[1] for f, _ in sources["records+trim"].take(100)]
        row["mean_trimmed_length"] = sum(lengths) / len(lengths)
    return row


def length_shares(windows: list) -> dict[int, float]:
    """The share of windows whose last non-pad token is at most each of `LENGTH_BOUNDS`."""
    lengths = [sum(w.input_mask) for w in windows]
    return {bound: sum(n <= bound for n in lengths) / len(lengths) for bound in LENGTH_BOUNDS}


def print_table(rows: list[dict]) -> None:
    print("| model | params | trim (mean batch length) | timed steps | records windows/s | "
          "in-memory windows/s | ratio | records alone windows/s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        rates = row["windows_per_s"]
        for suffix in ("", "+trim"):
            if "records" + suffix in rates:
                real, memory = rates["records" + suffix], rates["memory" + suffix]
                length = (f"yes ({row['mean_trimmed_length']:.0f})" if suffix
                          else f"no ({row['seq_len']})")
                print(f"| {row['size']} | {row['parameters'] / 1e6:.1f} M | {length} | "
                      f"{row['steps']} | {real:.2f} | {memory:.2f} | {real / memory:.3f} | "
                      f"{row['alone_windows_per_s']['records' + suffix]:,} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--squad", default=str(DEFAULT_SQUAD))
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--demo-turns", type=int, default=10, help="timed turns per source")
    parser.add_argument("--published-turns", type=int, default=4, help="timed turns per source")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "input_pipeline.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        windows, source = make_windows(args.squad, args.questions, work)
        records = str(work / "windows.gz")
        write_records(windows, records)
        squad = os.path.exists(args.squad)
        rows = []
        for size in args.sizes:
            turns = args.demo_turns if size == "demo" else args.published_turns
            rows.append(measure_size(size, windows, records, squad and size == "demo", turns,
                                     work))
            print(json.dumps(rows[-1]), flush=True)
    result = {"windows": source, "rows": rows, "wall_s": round(time.time() - start, 1)}
    print(f"\n{source}; wall {result['wall_s']} s")
    print_table(rows)
    if squad:
        result["length_shares"] = shares = length_shares(windows)
        print("\n| last non-pad token <= | " + " | ".join(map(str, shares)) + " |")
        print("|---|" + "---|" * len(shares))
        print("| share of windows | " + " | ".join(f"{s:.1%}" for s in shares.values()) + " |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
