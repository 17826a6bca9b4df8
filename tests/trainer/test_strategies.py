"""Every distribution strategy name: training in this process where it can run here."""

import json
import os

import pytest
import tensorflow as tf

from components.trainer import run_fn, strategies
from tests.trainer import fixtures


def encoder_moved(model_dir: str, hub: str) -> float:
    """How far training moved the encoder's embedding projection from the Hub module's
    (max |difference|): 0 for a frozen encoder, small for one fine-tuned from the module."""
    trained = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", "final"))
    (name,) = (n for n in trained.get_variable_to_shape_map()
               if n.endswith("word_embedding_proj/kernel/.ATTRIBUTES/VARIABLE_VALUE"))
    module = tf.train.load_checkpoint(os.path.join(hub, "variables", "variables"))
    initial = module.get_tensor("bert/embeddings/embedding_transformation/kernel")
    return float(abs(trained.get_tensor(name) - initial).max())


def checkpoint_step(model_dir: str) -> int:
    """The optimizer step saved in the final checkpoint under `model_dir`."""
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", "final"))
    return int(reader.get_tensor("optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.parametrize("name", ["off", "one_device", "mirrored"])
def test_single_worker_strategies_train_and_export(name, tiny_spec, window_files, tmp_path):
    spec = tiny_spec.replace(distribution_strategy=name)
    serving = run_fn.train_and_export(
        spec, window_files["train"], window_files["eval"], str(tmp_path / "serving"),
        str(tmp_path / "model"), train_steps=3, eval_steps=1,
    )
    assert serving == str(tmp_path / "serving")
    assert checkpoint_step(str(tmp_path / "model")) == 3
    assert 0 < encoder_moved(str(tmp_path / "model"), spec.uri) < 0.05  # fine-tuned, not frozen
    signature = tf.saved_model.load(serving).signatures["serving_default"]
    ids = tf.ones((2, fixtures.SEQ_LEN), tf.int32)
    out = signature(input_ids=ids, input_mask=ids, segment_ids=ids)
    assert out["start_logits"].shape == (2, fixtures.SEQ_LEN)
    assert os.listdir(tmp_path / "model" / "logs")  # TensorBoard


def test_strategy_types(tiny_spec):
    assert strategies.make_strategy(tiny_spec.replace(distribution_strategy="off")) is (
        tf.distribute.get_strategy()
    )
    one = strategies.make_strategy(tiny_spec.replace(distribution_strategy="one_device"))
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert one.extended.worker_devices == ("/job:localhost/replica:0/task:0/device:CPU:0",)
    mirrored = strategies.make_strategy(tiny_spec.replace(distribution_strategy="mirrored"))
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 1  # the CPU: no GPU here
    with pytest.raises(ValueError, match="num_gpus=2 but only 0 GPU"):
        strategies.make_strategy(tiny_spec.replace(distribution_strategy="mirrored", num_gpus=2))


@pytest.mark.parametrize("name", ["multi_worker_mirrored", "parameter_server"])
def test_cluster_strategies_without_tf_config_say_so(name, tiny_spec, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=f"{name}.*needs TF_CONFIG"):
        strategies.make_strategy(tiny_spec.replace(distribution_strategy=name))


def test_parameter_server_without_ps_role_names_the_roles(tiny_spec, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]},
        "task": {"type": "chief", "index": 0},
    }))
    with pytest.raises(ValueError, match=r"roles \['chief', 'worker', 'ps'\]; it has"):
        strategies.make_strategy(tiny_spec.replace(distribution_strategy="parameter_server"))


def test_malformed_tf_config_is_a_clear_error(tiny_spec, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{cluster:")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        strategies.make_strategy(tiny_spec.replace(distribution_strategy="multi_worker_mirrored"))


def test_tpu_resolver_gets_the_address():
    port = fixtures.free_ports(1)[0]
    resolver = strategies.tpu_cluster_resolver(f"grpc://127.0.0.1:{port}")
    assert resolver.master() == f"grpc://127.0.0.1:{port}"


def test_unreachable_tpu_names_its_address(tiny_spec):
    address = f"grpc://127.0.0.1:{fixtures.free_ports(1)[0]}"
    spec = tiny_spec.replace(distribution_strategy="tpu", tpu=address)
    with pytest.raises(RuntimeError, match=f"TPU at '{address}' is not reachable"):
        strategies.make_strategy(spec)


def test_tpu_without_address_says_what_to_set(tiny_spec):
    with pytest.raises(ValueError, match="needs spec.tpu"):
        strategies.make_strategy(tiny_spec.replace(distribution_strategy="tpu"))


def test_only_the_chief_writes_final_outputs(monkeypatch, tmp_path):
    assert strategies.is_chief(tf.distribute.get_strategy())
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}),
        task_type="worker", task_id=0,
    )

    class Worker(tf.distribute.MultiWorkerMirroredStrategy):
        def __init__(self):  # no cluster is started: only the resolver is read
            self._resolver = resolver

        @property
        def cluster_resolver(self):
            return self._resolver

    worker = Worker()
    assert not strategies.is_chief(worker)
    path = str(tmp_path / "serving")
    temp = strategies.write_dir(path, worker)
    assert temp == str(tmp_path / ".serving-tmp-worker-0")
    os.makedirs(temp)
    strategies.remove_temp_dir(path, worker)
    assert not os.path.exists(temp)
