"""Fixtures of the trainer tests: one tiny MobileBERT Hub module and window files."""

from __future__ import annotations

import pytest

from tests.trainer import fixtures


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory) -> str:
    """A tiny random MobileBERT encoder in the TF2 Hub format (the package's tiny config)."""
    from components.qa import encoders

    return encoders.make_encoder(str(tmp_path_factory.mktemp("hub") / "tiny_mobilebert"))


@pytest.fixture(scope="session")
def window_files(tmp_path_factory) -> dict[str, str]:
    """Train and eval window TFRecords (seq_len 32), as globs."""
    root = tmp_path_factory.mktemp("windows")
    fixtures.write_windows(str(root / "Split-train" / "data.gz"), 96, seed=0)
    fixtures.write_windows(str(root / "Split-eval" / "data.gz"), 32, seed=1)
    return {"train": str(root / "Split-train" / "*"), "eval": str(root / "Split-eval" / "*")}


@pytest.fixture(scope="session")
def tiny_spec(tiny_hub):
    """A MobileBERT QA spec on the tiny module, seq_len 32."""
    from components.qa import spec as spec_lib

    return spec_lib.MobileBertQaSpec(
        uri=tiny_hub, is_tf2=True, seq_len=fixtures.SEQ_LEN, query_len=fixtures.QUERY_LEN,
        doc_stride=16, default_batch_size=8, learning_rate=1e-3,
    )
