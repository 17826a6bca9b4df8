"""Training throughput: the Trainer's input pipeline vs. in memory; padding vs. length buckets.

    python benchmarks/bench_input_pipeline.py [--sizes demo published] [--squad PATH]
        [--questions 2000] [--demo-turns 10] [--published-turns 5] [--buckets 8]

Windows the first `--questions` questions of SQuAD dev-v1.1 (training mode, 384/64/128,
the BERT uncased vocab, `WindowMaker`; the demo's synthetic data if the file is absent),
writes them as SquadTransform does (`windows_to_tf_examples`, one gzipped TFRecord file),
then for each model size trains the Trainer's QA model (`build_qa_model`,
`compile_qa_model`, batch 32, the demo's spec) fed by:
- `records`: `make_window_dataset` on the file, as the Trainer reads it (shuffled, seeded);
- `memory`: the same windows as int32 arrays, `from_tensor_slices`, shuffled, repeated and
  batched alike (at the demo size only).
With SQuAD windows, each source three ways: every batch `seq_len` long; `+trim`, each batch
cut to its longest window (`trim_padding`); `+buckets`, batches of one length bucket
(`batch_by_length_bucket`), the `--buckets` buckets coming from the SquadTransform's
tf.Transform analysis (`length_buckets.analyze_lengths`) of these windows' lengths.

Each source's iterator is warmed up (the first step traces; the shuffle buffer), then the
sources take turns through the Keras train function that `fit` calls: `--*-turns` rounds
(every other one in reverse order) of 3 steps per source (1 at the published size; 3 times
as many with buckets, whose batches differ in cost), so that load from elsewhere hits them
alike. Windows/s is a source's windows over its seconds in all its turns. Its mean tokens per
batch is over exactly the batches it trained on (a source's batches come in the same order
from a new iterator). Last, each source alone (no model, both cores) for 200 batches: what
feeding costs. Writes a markdown table to stdout and JSON to `--out`.
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
BUCKET_TURN_FACTOR = 3  # Bucketed batches differ in cost: more of them per turn.
VARIANTS = ("", "+trim", "+buckets")


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


def in_memory_dataset(windows: list, batch: int, variant: str, padded_lengths: list[int]):
    """The windows as int32 tensors, shuffled, repeated and batched as the Trainer's pipeline
    (`variant`: one of `VARIANTS`)."""
    import numpy as np
    import tensorflow as tf

    from components.qa import contracts
    from components.trainer import dataset as dataset_lib
    from components.trainer.run_fn import SHUFFLE_SEED

    features = {name: np.array([getattr(w, name) for w in windows], np.int32)
                for name in contracts.SERVING_INPUTS}
    start_name, end_name = contracts.SERVING_OUTPUTS
    labels = {start_name: np.array([w.start_position for w in windows], np.int32),
              end_name: np.array([w.end_position for w in windows], np.int32)}
    dataset = (tf.data.Dataset.from_tensor_slices((features, labels))
               .shuffle(dataset_lib.SHUFFLE_BUFFER, seed=SHUFFLE_SEED).repeat())
    if variant == "+buckets":
        dataset = dataset_lib.batch_by_length_bucket(dataset, padded_lengths, batch)
    else:
        dataset = dataset.batch(batch, drop_remainder=True)
    if variant == "+trim":
        dataset = dataset.map(dataset_lib.trim_padding, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def time_sources(model, sources: dict, turns: int, turn_steps: dict[str, int],
                 batch: int) -> tuple[dict[str, list[float]], dict[str, float], float]:
    """Each source's windows/s in each of its turns and over all of them, after warming it up;
    the warm-up's seconds.

    A source whose batches' spec is already traced is warmed up by one batch, the others by
    one step. Then `turns` rounds of `turn_steps[source]` steps per source, every other round
    in reverse order.
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
    seconds = dict.fromkeys(sources, 0.0)
    for turn in range(turns):
        for name in list(iterators)[::-1 if turn % 2 else 1]:
            start = time.perf_counter()
            for _ in range(turn_steps[name]):
                logs = train(iterators[name])
            float(logs["loss"])  # Waits for the last step.
            elapsed = time.perf_counter() - start
            seconds[name] += elapsed
            rates[name].append(turn_steps[name] * batch / elapsed)
    overall = {name: turns * turn_steps[name] * batch / seconds[name] for name in sources}
    return rates, overall, warmup_s


def mean_batch_length(dataset, skip: int, batches: int) -> float:
    """The mean length of `batches` batches after the first `skip` (a new iterator)."""
    lengths = [f["input_ids"].shape[1] for f, _ in dataset.skip(skip).take(batches)]
    return sum(lengths) / len(lengths)


def pipeline_rate(dataset, batch: int, batches: int = 200) -> float:
    """Windows/s of a source alone, no model: `batches` batches after a first one."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def measure_size(size: str, windows: list, records: str, padded_lengths: list[int] | None,
                 turns: int, work: pathlib.Path) -> dict:
    """Windows/s of each source through the QA model of `size` (one model, this process);
    with `padded_lengths` (SQuAD windows) each source also trimmed and bucketed."""
    import tensorflow as tf

    from components.qa import encoders, mobilebert
    from components.qa import model as model_lib
    from components.qa.spec import MobileBertQaSpec
    from components.trainer import dataset as dataset_lib
    from components.trainer.run_fn import SHUFFLE_SEED
    from pipelines.demo import DEMO_SPEC

    start = time.perf_counter()
    config = mobilebert.TINY_CONFIG_PATH if size == "demo" else mobilebert.PUBLISHED_CONFIG_PATH
    module = encoders.make_encoder(str(work / f"encoder-{size}"), config,
                                   tf_format=encoders.TF1)
    spec = MobileBertQaSpec(uri=module, **DEMO_SPEC)
    tf.keras.backend.clear_session()
    model = model_lib.build_qa_model(spec)
    model_lib.compile_qa_model(model, spec, train_steps=1000)
    batch = spec.default_batch_size
    sources = {}
    for variant in VARIANTS if padded_lengths else VARIANTS[:1]:
        sources["records" + variant] = dataset_lib.make_window_dataset(
            records, batch, spec.seq_len, training=True, seed=SHUFFLE_SEED,
            trim=variant == "+trim",
            padded_lengths=padded_lengths if variant == "+buckets" else None)
        if size == "demo":
            sources["memory" + variant] = in_memory_dataset(windows, batch, variant,
                                                            padded_lengths)
    steps = {name: TURN_STEPS[size] * (BUCKET_TURN_FACTOR if name.endswith("+buckets") else 1)
             for name in sources}
    setup_s = time.perf_counter() - start
    print(f"{size}: encoder written and model built in {setup_s:.0f} s; timing {list(sources)}",
          flush=True)
    load = os.getloadavg()[0]
    rates, overall, warmup_s = time_sources(model, sources, turns, steps, batch)
    row = {"size": size, "parameters": model.count_params(), "batch": batch,
           "seq_len": spec.seq_len, "steps": {name: turns * n for name, n in steps.items()},
           "setup_s": round(setup_s, 1), "warmup_s": round(warmup_s, 1),
           "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
           "windows_per_s": {name: round(rate, 3) for name, rate in overall.items()},
           "median_turn_windows_per_s": {name: round(statistics.median(r), 3)
                                         for name, r in rates.items()},
           "turn_windows_per_s": {name: [round(x, 2) for x in r] for name, r in rates.items()},
           "mean_tokens_per_batch": {name: round(mean_batch_length(
               dataset, 1, turns * steps[name]), 1) for name, dataset in sources.items()},
           "alone_windows_per_s": {name: round(pipeline_rate(dataset, batch))
                                   for name, dataset in sources.items()}}
    return row


def length_shares(windows: list) -> dict[int, float]:
    """The share of windows whose last non-pad token is at most each of `LENGTH_BOUNDS`."""
    lengths = [sum(w.input_mask) for w in windows]
    return {bound: sum(n <= bound for n in lengths) / len(lengths) for bound in LENGTH_BOUNDS}


def print_table(rows: list[dict]) -> None:
    print("| model | params | batches | mean tokens per batch | timed steps | records "
          "windows/s | x padded to seq_len | x trimmed | in-memory windows/s | records / "
          "in-memory | records alone windows/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        rates = row["windows_per_s"]
        for variant in VARIANTS:
            name = "records" + variant
            if name not in rates:
                continue
            memory = rates.get("memory" + variant)
            trim = rates.get("records+trim")
            vs_trim = f"{rates[name] / trim:.2f}" if trim else ""
            print(f"| {row['size']} | {row['parameters'] / 1e6:.1f} M | "
                  f"{variant[1:] or 'padded'} | {row['mean_tokens_per_batch'][name]:.0f} | "
                  f"{row['steps'][name]} | {rates[name]:.2f} | "
                  f"{rates[name] / rates['records']:.2f} | {vs_trim} | "
                  f"{f'{memory:.2f}' if memory else ''} | "
                  f"{f'{rates[name] / memory:.3f}' if memory else ''} | "
                  f"{row['alone_windows_per_s'][name]:,} |")


def main() -> int:
    from pipelines.config import PipelineConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--squad", default=str(DEFAULT_SQUAD))
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--demo-turns", type=int, default=10, help="timed turns per source")
    parser.add_argument("--published-turns", type=int, default=5, help="timed turns per source")
    parser.add_argument("--buckets", type=int, default=PipelineConfig.length_buckets,
                        help="length buckets (quantiles)")
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
        padded_lengths = None
        if squad:
            from components.squad_transform import length_buckets

            padded_lengths = length_buckets.analyze_lengths(
                [sum(w.input_mask) for w in windows], args.buckets, len(windows[0].input_ids),
                str(work / "transform_graph"))
            print(f"length buckets: padded lengths {sorted(set(padded_lengths))}", flush=True)
        rows = []
        for size in args.sizes:
            turns = args.demo_turns if size == "demo" else args.published_turns
            rows.append(measure_size(size, windows, records, padded_lengths, turns, work))
            print(json.dumps(rows[-1]), flush=True)
    result = {"windows": source, "rows": rows, "wall_s": round(time.time() - start, 1),
              "padded_lengths": sorted(set(padded_lengths)) if padded_lengths else None}
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
