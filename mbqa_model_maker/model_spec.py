"""Model Maker's `model_spec` for question answering: the specs by name."""

from __future__ import annotations

import inspect
from typing import Any

from components.qa.spec import BertQaSpec, MobileBertQaSpec, MobileBertQaSquadSpec

QUESTION_ANSWER_MODELS = ["bert_qa", "mobilebert_qa", "mobilebert_qa_squad"]
_SPECS = dict(zip(QUESTION_ANSWER_MODELS, (BertQaSpec, MobileBertQaSpec, MobileBertQaSquadSpec),
                  strict=True))


def get(spec_or_str: Any) -> BertQaSpec:
    """A spec from its name (`QUESTION_ANSWER_MODELS`), its class, or itself."""
    if isinstance(spec_or_str, str):
        if spec_or_str not in _SPECS:
            raise KeyError(f"Unknown model spec {spec_or_str!r}; question answering has "
                           f"{QUESTION_ANSWER_MODELS}")
        spec_or_str = _SPECS[spec_or_str]
    if inspect.isclass(spec_or_str):
        return spec_or_str()
    if not isinstance(spec_or_str, BertQaSpec):
        raise TypeError(f"Not a question-answering model spec: {spec_or_str!r}")
    return spec_or_str
