"""The serving config as every part reads and writes it (`contracts.ServingConfig`)."""

import json

import pytest

from components.qa import contracts
from components.qa.spec import MobileBertQaSpec


def test_the_serving_config_round_trips_through_a_metadata_description():
    config = contracts.ServingConfig.from_spec(
        MobileBertQaSpec(seq_len=256, query_len=32, doc_stride=64), True, -1.5)
    assert config.to_dict() == {"seq_len": 256, "query_len": 32, "doc_stride": 64,
                                "do_lower_case": True, "version_2_with_negative": True,
                                "null_score_diff_threshold": -1.5}
    description = f"Answers questions.\n{config.description_line()}"
    assert contracts.ServingConfig.from_description(description) == config
    assert contracts.ServingConfig.from_description("Answers questions.") is None
    assert contracts.ServingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_serving_config_with_a_missing_or_unknown_key_is_refused_by_name():
    values = contracts.ServingConfig.from_spec(MobileBertQaSpec(), False, 0.0).to_dict()
    del values["doc_stride"]
    with pytest.raises(ValueError, match="'doc_stride'"):
        contracts.ServingConfig.from_dict(values)
    with pytest.raises(ValueError, match="'stride'"):
        contracts.ServingConfig.from_dict({**values, "doc_stride": 128, "stride": 1})
