"""Runs `train_and_export` in its own process, for the multi-process trainer tests.

Usage: python train_process.py '<json>' where the JSON holds `spec` (spec JSON) and the
keyword arguments of `train_and_export`; `TF_CONFIG` comes from the environment (a
parameter-server cluster's worker and ps tasks only serve: `strategies.serve_cluster_task`).
`"logical_cpus": N` splits the CPU into N logical devices first.
"""

import json
import sys

from absl import logging


def main(argv: list[str]) -> int:
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    args = json.loads(argv[1])
    logical_cpus = args.pop("logical_cpus", 0)
    if logical_cpus:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    from components.qa import spec as spec_lib
    from components.trainer import run_fn

    spec = spec_lib.spec_from_json(args.pop("spec"))
    result = run_fn.train_and_export(spec, **args)
    logging.info("train_process result: %s", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
