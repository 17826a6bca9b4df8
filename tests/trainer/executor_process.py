"""Runs the TFX Trainer's executor (`GenericExecutor.Do`) with `run_fn` in its own process.

As Vertex AI runs it on every replica of a training job: the same input and output
artifacts on every process, `TF_CONFIG` from the environment.
Usage: python executor_process.py '<json>' with `spec` (spec JSON), `examples_uri`,
`model_uri`, `model_run_uri`, `train_steps`, `eval_steps` and `custom_config` (more keys);
optional `transform_graph_uri` (the SquadTransform's length buckets).
"""

import json
import sys

from absl import logging


def main(argv: list[str]) -> int:
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    args = json.loads(argv[1])
    from tfx.components.trainer import executor
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    examples = standard_artifacts.Examples()
    examples.uri = args["examples_uri"]
    examples.split_names = json.dumps(["train", "eval"])
    model = standard_artifacts.Model()
    model.uri = args["model_uri"]
    model_run = standard_artifacts.ModelRun()
    model_run.uri = args["model_run_uri"]
    exec_properties = {
        "train_args": proto_utils.proto_to_json(
            trainer_pb2.TrainArgs(num_steps=args["train_steps"])),
        "eval_args": proto_utils.proto_to_json(
            trainer_pb2.EvalArgs(num_steps=args["eval_steps"])),
        "run_fn": "components.trainer.run_fn.run_fn",
        "custom_config": json.dumps({"spec": args["spec"], **args["custom_config"]}),
    }
    inputs = {"examples": [examples]}
    if args.get("transform_graph_uri"):
        inputs["transform_graph"] = [standard_artifacts.TransformGraph()]
        inputs["transform_graph"][0].uri = args["transform_graph_uri"]
    executor.GenericExecutor().Do(
        inputs, {"model": [model], "model_run": [model_run]},
        exec_properties,
    )
    logging.info("executor_process: Do returned")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
