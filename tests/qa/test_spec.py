"""The specs: Model Maker's signatures, JSON round trip, validation messages."""

import inspect
import json

import pytest

from components.qa import contracts
from components.qa import spec as spec_lib
from components.qa.spec import BertQaSpec, MobileBertQaSpec, MobileBertQaSquadSpec

MOBILEBERT_URI = "https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/1"

# Model Maker's documented signatures (tflite_model_maker.question_answer), written out.
MOBILEBERT_PARAMS = [
    ("uri", MOBILEBERT_URI),
    ("model_dir", None),
    ("seq_len", 384),
    ("query_len", 64),
    ("doc_stride", 128),
    ("dropout_rate", 0.1),
    ("initializer_range", 0.02),
    ("learning_rate", 4e-05),
    ("distribution_strategy", "off"),
    ("num_gpus", -1),
    ("tpu", ""),
    ("trainable", True),
    ("predict_batch_size", 8),
    ("do_lower_case", True),
    ("is_tf2", False),
    ("tflite_input_name", None),
    ("tflite_output_name", None),
    ("init_from_squad_model", False),
    ("default_batch_size", 32),
    ("name", "MobileBert"),
]
BERT_PARAMS = [
    ("uri", "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/1"),
    ("model_dir", None),
    ("seq_len", 384),
    ("query_len", 64),
    ("doc_stride", 128),
    ("dropout_rate", 0.1),
    ("initializer_range", 0.02),
    ("learning_rate", 8e-05),
    ("distribution_strategy", "mirrored"),
    ("num_gpus", -1),
    ("tpu", ""),
    ("trainable", True),
    ("predict_batch_size", 8),
    ("do_lower_case", True),
    ("is_tf2", True),
    ("tflite_input_name", None),
    ("tflite_output_name", None),
    ("init_from_squad_model", False),
    ("default_batch_size", 16),
    ("name", "Bert"),
]
SQUAD_OVERRIDES = {
    "uri": "https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/squadv1/1",
    "init_from_squad_model": True,
}
MOBILEBERT_SQUAD_PARAMS = [(k, SQUAD_OVERRIDES.get(k, v)) for k, v in MOBILEBERT_PARAMS]

P = inspect.Parameter


@pytest.mark.parametrize(
    "cls, expected, kind",
    [
        (BertQaSpec, BERT_PARAMS, P.POSITIONAL_OR_KEYWORD),
        (MobileBertQaSpec, MOBILEBERT_PARAMS, P.KEYWORD_ONLY),
        (MobileBertQaSquadSpec, MOBILEBERT_SQUAD_PARAMS, P.KEYWORD_ONLY),
    ],
)
def test_signature_matches_model_maker(cls, expected, kind):
    params = list(inspect.signature(cls).parameters.values())
    assert [(p.name, p.default) for p in params] == expected
    assert {p.kind for p in params} == {kind}
    # Float defaults compare exactly, and the types match too (4e-05 is not 4e-5 as a str).
    assert [type(p.default) for p in params] == [type(v) for _, v in expected]


def test_keyword_only_rejects_positional():
    with pytest.raises(TypeError):
        MobileBertQaSpec("https://example.com/module")  # keyword-only, like the partial
    assert BertQaSpec("/models/bert").uri == "/models/bert"


def test_defaults_are_stored():
    spec = MobileBertQaSpec()
    for name, default in MOBILEBERT_PARAMS:
        if default is not None and not name.startswith("tflite"):
            assert getattr(spec, name) == default, name
    assert spec.tflite_input_name == spec_lib.DEFAULT_TFLITE_INPUT_NAME
    assert spec.tflite_output_name == spec_lib.DEFAULT_TFLITE_OUTPUT_NAME
    assert MobileBertQaSquadSpec().init_from_squad_model is True


def test_default_tflite_names_are_copies():
    first, second = MobileBertQaSpec(), MobileBertQaSpec()
    first.tflite_input_name["ids"] = "changed"
    assert second.tflite_input_name["ids"] == "serving_default_input_ids:0"
    assert spec_lib.DEFAULT_TFLITE_INPUT_NAME["ids"] == "serving_default_input_ids:0"


@pytest.mark.parametrize("cls", [BertQaSpec, MobileBertQaSpec, MobileBertQaSquadSpec])
def test_json_round_trip(cls):
    spec = cls(
        uri="gs://bucket/módulo", model_dir="/tmp/run", seq_len=128, query_len=32,
        doc_stride=64, learning_rate=1e-3, distribution_strategy="MIRRORED", trainable=False,
        tflite_input_name={"ids": "a:0", "mask": "b:0", "segment_ids": "c:0"},
        default_batch_size=4, name="Tiny",
    )
    text = spec.to_json()
    assert json.loads(text)["class"] == cls.__name__
    restored = spec_lib.spec_from_json(text)
    assert type(restored) is cls
    assert restored == spec
    assert restored.to_json() == text
    assert restored.distribution_strategy == "mirrored"
    assert restored.tflite_input_name["ids"] == "a:0"
    assert restored.learning_rate == 1e-3


def test_equality_includes_the_class():
    params = MobileBertQaSpec().to_dict()["params"]
    assert MobileBertQaSpec() != MobileBertQaSquadSpec(**params)
    assert MobileBertQaSpec() != BertQaSpec(**params)
    assert MobileBertQaSpec() == MobileBertQaSpec()


def test_replace_validates_and_keeps_the_class():
    spec = MobileBertQaSquadSpec().replace(seq_len=128, query_len=32, doc_stride=64)
    assert type(spec) is MobileBertQaSquadSpec
    assert (spec.seq_len, spec.query_len, spec.doc_stride) == (128, 32, 64)
    with pytest.raises(ValueError, match=r"Unknown spec parameter\(s\) \['seqlen'\]"):
        spec.replace(seqlen=1)
    with pytest.raises(ValueError, match="doc_stride=128 must be < seq_len=128"):
        spec.replace(doc_stride=128)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"distribution_strategy": "horovod"},
         "distribution_strategy='horovod' is not one of"),
        ({"seq_len": 67}, r"query_len \+ 3 \(67\) must be < seq_len \(67\)"),
        ({"seq_len": 60, "doc_stride": 32}, r"query_len \+ 3 \(67\) must be < seq_len \(60\)"),
        ({"doc_stride": 384}, "doc_stride=384 must be < seq_len=384"),
        ({"tpu": "grpc://10.0.0.2:8470"},
         "tpu='grpc://10.0.0.2:8470' is set but distribution_strategy='off'"),
        ({"tpu": "grpc://x", "distribution_strategy": "mirrored"},
         "use distribution_strategy='tpu'"),
        ({"seq_len": "384"}, "seq_len='384' must be an integer"),
        ({"seq_len": 384.0}, "seq_len=384.0 must be an integer"),
        ({"query_len": True}, "query_len=True must be an integer"),
        ({"doc_stride": 0}, "doc_stride=0 must be a positive integer"),
        ({"default_batch_size": -1}, "default_batch_size=-1 must be a positive integer"),
        ({"learning_rate": "4e-5"}, "learning_rate='4e-5' must be a number"),
        ({"learning_rate": 0.0}, "learning_rate=0.0 must be > 0"),
        ({"dropout_rate": 1.0}, r"dropout_rate=1.0 must be in \[0, 1\)"),
        ({"initializer_range": -0.02}, "initializer_range=-0.02 must be > 0"),
        ({"num_gpus": -2}, r"num_gpus=-2 must be -1 \(all\) or >= 0"),
        ({"trainable": "yes"}, "trainable='yes' must be True or False"),
        ({"is_tf2": 1}, "is_tf2=1 must be True or False"),
        ({"uri": None}, "uri=None must be a string"),
        ({"uri": ""}, "uri must name a TF-Hub module"),
        ({"model_dir": 3}, "model_dir=3 must be None or a string"),
        ({"tflite_input_name": "ids"}, "tflite_input_name='ids' must be a dict of strings"),
        ({"tflite_output_name": {"logits": "x:0"}},
         r"tflite_output_name keys \['logits'\] must be"),
        ({"distribution_strategy": None}, "distribution_strategy=None must be a string"),
    ],
)
def test_validation_errors(overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        MobileBertQaSpec(**overrides)
    assert str(error.value).startswith("Invalid MobileBertQaSpec: ")


def test_validation_reports_every_error_at_once():
    with pytest.raises(ValueError) as error:
        BertQaSpec(seq_len=64, doc_stride=64, tpu="x")
    text = str(error.value)
    assert "query_len + 3 (67)" in text
    assert "doc_stride=64 must be < seq_len=64" in text
    assert "tpu='x' is set" in text


def test_tpu_strategy_accepts_tpu_address():
    spec = BertQaSpec(distribution_strategy="TPU", tpu="grpc://10.0.0.2:8470")
    assert spec.distribution_strategy == "tpu"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"class": "AlbertQaSpec", "params": {}}, "Unknown spec class 'AlbertQaSpec'"),
        ({"class": "BertQaSpec", "params": {"seq_length": 3}},
         r"Unknown spec parameter\(s\) \['seq_length'\]"),
        ({"class": "BertQaSpec"}, "A spec must be a dict"),
        (["BertQaSpec"], "A spec must be a dict"),
    ],
)
def test_spec_from_dict_errors(data, message):
    with pytest.raises(ValueError, match=message):
        spec_lib.spec_from_dict(data)


def test_spec_from_json_validates():
    data = MobileBertQaSpec().to_dict()
    data["params"]["doc_stride"] = 500
    with pytest.raises(ValueError, match="doc_stride=500 must be < seq_len=384"):
        spec_lib.spec_from_json(json.dumps(data))


def test_serving_names():
    assert contracts.SERVING_INPUTS == ("input_ids", "input_mask", "segment_ids")
    assert contracts.SERVING_OUTPUTS == ("start_logits", "end_logits")
