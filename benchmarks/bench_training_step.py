"""Training step time at the published MobileBERT size, from a TF1 Hub module.

    python benchmarks/bench_training_step.py [--strategies off mirrored] [--batch 32]
        [--steps 3] [--module DIR]

Writes (or reuses, `--module`) a random MobileBERT with the published config
(`components/qa/configs/mobilebert_uncased_L-24_H-128_B-512_A-4_F-4_OPT.json`, 24 layers,
24.6 M parameters) in the TF1 Hub format with the published module's layout, then for each
strategy, in a fresh process: reads the module into the native encoder (`check_conversion`
included), builds and compiles the QA model under the strategy with Model Maker's recipe
at `seq_len` 384, and trains on random 384-token windows. Reports the load time, the first
step (tracing included) and the median of the next `--steps` steps, in seconds and
windows per second. Writes the table to stdout and JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_module(out_dir: str) -> str:
    from components.qa import encoders, mobilebert

    if not os.path.exists(os.path.join(out_dir, encoders.TF1_MODULE_FILE)):
        encoders.make_encoder(out_dir, mobilebert.PUBLISHED_CONFIG_PATH, tf_format=encoders.TF1)
    return out_dir


def measure(module: str, strategy_name: str, batch: int, steps: int) -> dict:
    """One strategy, in this process."""
    import numpy as np
    import tensorflow as tf

    from components.qa import encoders, tf1_hub
    from components.qa import model as model_lib
    from components.qa.spec import MobileBertQaSpec
    from components.trainer import strategies

    spec = MobileBertQaSpec(uri=module, distribution_strategy=strategy_name)
    strategy = strategies.make_strategy(spec)
    start = time.time()
    with strategy.scope():
        model = model_lib.build_qa_model(spec)
    difference = tf1_hub.check_conversion(encoders.resolve_module_dir(spec.uri),
                                          model.get_layer(tf1_hub.NATIVE_MODEL_NAME))
    with strategy.scope():
        model_lib.compile_qa_model(model, spec, train_steps=steps + 1)
    load_s = time.time() - start
    rng = np.random.default_rng(0)
    features = {
        "input_ids": rng.integers(1000, 30000, (batch, spec.seq_len)).astype(np.int32),
        "input_mask": np.ones((batch, spec.seq_len), np.int32),
        "segment_ids": np.repeat([[0] * 66 + [1] * (spec.seq_len - 66)], batch, 0).astype(
            np.int32
        ),
    }
    labels = {"start_logits": rng.integers(70, 380, batch).astype(np.int32),
              "end_logits": rng.integers(70, 380, batch).astype(np.int32)}
    dataset = tf.data.Dataset.from_tensors((features, labels)).repeat()
    times: list[float] = []

    class Timer(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch_index, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch_index, logs=None):
            times.append(time.perf_counter() - self._start)

    model.fit(dataset, epochs=1, steps_per_epoch=steps + 1, callbacks=[Timer()], verbose=0)
    median = statistics.median(times[1:])
    return {
        "strategy": strategy_name, "replicas": strategy.num_replicas_in_sync, "batch": batch,
        "parameters": model.count_params(), "load_s": round(load_s, 1),
        "conversion_max_abs_diff": difference, "first_step_s": round(times[0], 1),
        "step_s": round(median, 2), "windows_per_s": round(batch / median, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", nargs="+", default=["off", "mirrored"])
    parser.add_argument("--batch", type=int, default=32, help="MobileBertQaSpec's default 32")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    parser.add_argument("--module", help="the TF1 module directory (written if missing)")
    parser.add_argument("--out", default="bench_training_step.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one strategy
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.module, args.one, args.batch, args.steps)))
        return 0
    with tempfile.TemporaryDirectory() as work:
        module = make_module(args.module or os.path.join(work, "mobilebert_tf1"))
        rows = []
        for name in args.strategies:
            output = subprocess.run(
                [sys.executable, __file__, "--one", name, "--module", module,
                 "--batch", str(args.batch), "--steps", str(args.steps)],
                check=True, capture_output=True, text=True,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
            ).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print("| strategy | replicas | batch | load s | first step s | step s | windows/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strategy']} | {r['replicas']} | {r['batch']} | {r['load_s']} | "
              f"{r['first_step_s']} | {r['step_s']} | {r['windows_per_s']} |")
    pathlib.Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
