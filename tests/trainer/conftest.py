"""Fixtures of the trainer tests: one tiny MobileBERT Hub module and window files."""

from __future__ import annotations

import pytest

from tests.trainer import fixtures


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory) -> str:
    """A tiny random MobileBERT encoder in the TF1 Hub format: the default spec's format and
    the published module's layout (the package's tiny config)."""
    from components.qa import encoders

    return encoders.make_encoder(
        str(tmp_path_factory.mktemp("hub") / "tiny_mobilebert"), tf_format=encoders.TF1
    )


@pytest.fixture(scope="session")
def window_files(tmp_path_factory) -> dict[str, str]:
    """Train and eval window TFRecords (seq_len 32), as globs."""
    root = tmp_path_factory.mktemp("windows")
    fixtures.write_windows(str(root / "Split-train" / "data.gz"), 96, seed=0)
    fixtures.write_windows(str(root / "Split-eval" / "data.gz"), 32, seed=1)
    return {"train": str(root / "Split-train" / "*"), "eval": str(root / "Split-eval" / "*")}


@pytest.fixture(scope="session")
def tiny_spec(tiny_hub):
    """A MobileBERT QA spec (is_tf2=False, the default) on the tiny module, seq_len 32."""
    from components.qa import spec as spec_lib

    return spec_lib.MobileBertQaSpec(
        uri=tiny_hub, seq_len=fixtures.SEQ_LEN, query_len=fixtures.QUERY_LEN,
        doc_stride=16, default_batch_size=8, learning_rate=1e-3,
    )
